"""Keeping features fresh: after new deliveries, do as little as is correct.

- nothing changed since the last run (same deliveries, same definitions): nothing to do;
- new deliveries, same weekly dates: recompute only the touched tenancies (offline rows and online rows);
- a new week, changed definitions or no previous run: full build, `feast apply`, fill the online store.

"Same definitions" is a fingerprint of every source file of the feature layer (the feed contract, the ledger's
date handling, the transforms, the catalogue, the Feast repo…) and of the profile's configuration, so a change to
any of them rebuilds instead of leaving stale snapshots behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from features.crash import crash_point
from features.ledger import open_ledger
from features.settings import FeatureSettings
from features.store.feast import apply_repo, feast_variables, materialize_latest, push_online
from features.store.offline import (
    build_offline,
    compute_snapshots,
    current_snapshots,
    ledger_dates,
    live_path,
    load_ledger_slice,
    snapshot_path,
    update_live,
    write_offline,
)
from features.transforms import weekly_as_of_dates

MANIFEST_FILE = "manifest.json"
ONLINE_MARK_FILE = "online_mark.json"
#: The feature layer's source: everything the snapshots are computed by.
FEATURE_SOURCE = Path(__file__).resolve().parent.parent


def fingerprint_files(source: Path | None = None) -> list[Path]:
    """Every file the snapshots depend on besides the ledger's rows: the feature layer's Python and the Feast
    repo's configuration."""
    source = source or FEATURE_SOURCE
    return sorted([*source.rglob("*.py"), *(source / "repo").glob("*.yaml")])


def definitions_fingerprint(settings: FeatureSettings, source: Path | None = None) -> str:
    """A digest of the feature layer's files and of the profile's Feast variables."""
    source = source or FEATURE_SOURCE
    digest = hashlib.sha256()
    for path in fingerprint_files(source):
        digest.update(str(path.relative_to(source)).encode())
        digest.update(path.read_bytes())
    digest.update(json.dumps(feast_variables(settings), sort_keys=True).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Manifest:
    ledger_seq: int
    fingerprint: str
    last_weekly: str
    current_as_of: str


def manifest_path(settings: FeatureSettings) -> Path:
    return settings.feast_dir / MANIFEST_FILE


def read_manifest(settings: FeatureSettings) -> Manifest | None:
    path = manifest_path(settings)
    if not path.exists():
        return None
    try:
        return Manifest(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def _write_json(path: Path, data: dict) -> None:
    """Write a small JSON file whole or not at all (a reader sees the old one or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def write_manifest(settings: FeatureSettings, manifest: Manifest) -> None:
    _write_json(manifest_path(settings), asdict(manifest))


def _ledger_seq(settings: FeatureSettings) -> int:
    with open_ledger(settings.ledger) as ledger:
        return ledger.last_delivery_seq()


def refresh_tenancies(settings: FeatureSettings, tenancy_ids: Sequence[str], store=None) -> int:
    """Recompute the touched tenancies' current snapshot, push it online and update the live file.

    Called after an ingest, so the online store reflects a payment within seconds; the weekly (training)
    snapshots catch up at the next `arrears features`.
    """
    if not tenancy_ids or not live_path(settings).exists():
        return 0
    _, today = ledger_dates(settings)
    current = current_snapshots(load_ledger_slice(settings, tenancy_ids), today)
    pushed = push_online(settings, current, store)
    crash_point("online:pushed")
    update_live(settings, current, tenancy_ids)
    return pushed


def online_mark_path(settings: FeatureSettings) -> Path:
    return settings.feast_dir / ONLINE_MARK_FILE


def online_mark(settings: FeatureSettings) -> int | None:
    """The ledger delivery through which the online store and the live file are current (None: not recorded)."""
    path = online_mark_path(settings)
    try:
        return int(json.loads(path.read_text())["ledger_seq"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_online_mark(settings: FeatureSettings, ledger_seq: int) -> None:
    _write_json(online_mark_path(settings), {"ledger_seq": int(ledger_seq)})


def refresh_delivery(settings: FeatureSettings, delivery_seq: int) -> int:
    """After ingesting delivery `delivery_seq`: push the current features of the tenancies touched since the online
    store was last current (nothing before the first feature build). The mark is moved only after the push and
    the live file, so an ingest killed in between catches up when it (or any later ingest) runs again."""
    if not live_path(settings).exists():
        return 0
    with open_ledger(settings.ledger) as ledger:
        last = ledger.last_delivery_seq()
        mark = online_mark(settings)
        since = min(mark, last) if mark is not None else delivery_seq - 1
        touched = ledger.touched_tenancies(since)
    pushed = refresh_tenancies(settings, touched)
    write_online_mark(settings, last)
    return pushed


@dataclass(frozen=True)
class RefreshResult:
    mode: str  # "unchanged", "incremental" or "full"
    tenancies: int
    seconds: float
    detail: str


@dataclass(frozen=True)
class _State:
    """What the ledger and the code are now, and what the last run recorded."""

    manifest: Manifest
    previous: Manifest | None
    same_shape: bool  # same definitions, same weekly dates, outputs present: an incremental refresh is correct


def _state(settings: FeatureSettings) -> _State:
    first, today = ledger_dates(settings)
    weeks = weekly_as_of_dates(first, today)
    manifest = Manifest(_ledger_seq(settings), definitions_fingerprint(settings),
                        str(weeks[-1].date()) if len(weeks) else "", str(today.date()))
    previous = read_manifest(settings)
    same_shape = (previous is not None and previous.fingerprint == manifest.fingerprint
                  and previous.last_weekly == manifest.last_weekly and live_path(settings).exists()
                  and (settings.feast_profile == "production" or snapshot_path(settings).exists()))
    return _State(manifest, previous, same_shape)


def _incremental(settings: FeatureSettings, state: _State) -> tuple[int, str]:
    since, seq = state.previous.ledger_seq, state.manifest.ledger_seq
    with open_ledger(settings.ledger) as ledger:
        touched = ledger.touched_tenancies(since)
    if not touched:  # e.g. a delivery re-sent: every row a duplicate
        return 0, f"deliveries {since + 1}–{seq} changed no tenancy"
    weekly, current = compute_snapshots(settings, touched)
    write_offline(settings, weekly, replace_tenancies=touched)
    crash_point("features:offline-written")
    push_online(settings, current)
    crash_point("online:pushed")
    update_live(settings, current, touched)
    crash_point("features:live-written")
    return len(touched), f"recomputed {len(touched):,} tenancies touched by deliveries {since + 1}–{seq}"


def _full(settings: FeatureSettings) -> tuple[int, str]:
    result = build_offline(settings)
    crash_point("features:built")
    apply_repo(settings)
    materialize_latest(settings)
    # The live file changes after the online store, as in `_incremental`: a service that caches scores by the
    # file's stamp (`serving.runs.worklist`) never keeps one computed from the online rows this build replaced.
    os.utime(live_path(settings))
    return result.tenancies, (f"{result.rows:,} weekly snapshots of {result.tenancies:,} tenancies, "
                              f"{result.first_as_of.date()} to {result.last_as_of.date()}; current as of "
                              f"{result.current_as_of.date()}")


def refresh(settings: FeatureSettings, force_full: bool = False) -> RefreshResult:
    """Bring offline and online features up to date with the ledger, doing as little as is correct (see the
    module's docstring)."""
    started = time.perf_counter()
    state = _state(settings)
    if not force_full and state.same_shape and state.previous.ledger_seq == state.manifest.ledger_seq:
        return RefreshResult("unchanged", 0, time.perf_counter() - started,
                             f"features already reflect delivery {state.manifest.ledger_seq}")
    if not force_full and state.same_shape:
        tenancies, detail = _incremental(settings, state)
        mode = "incremental" if tenancies else "unchanged"
    else:
        (tenancies, detail), mode = _full(settings), "full"
    write_manifest(settings, state.manifest)
    write_online_mark(settings, state.manifest.ledger_seq)  # a full or incremental build pushed everything
    return RefreshResult(mode, tenancies, time.perf_counter() - started, detail)

