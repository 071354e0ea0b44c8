"""Crash safety: a verb killed with SIGKILL at each point where the order of its steps matters (`features.crash`),
then run again, leaves exactly what one uninterrupted run leaves: the ledger's rows (nothing lost, nothing twice),
the quarantine files, the offline and live feature files, the online store's values, the refresh manifest and the
online mark.

Each case starts from the same featurised home, restored at the same path (Feast's registry records where the
online store is, so a home is not moved). The killed run is a real `arrears` process; the run again and the
uninterrupted reference run the same verb in this process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from features.crash import VARIABLE
from serving.settings import get_settings
from simulator import simulate_portfolio, write_portfolio
from tests.support.cli import ok
from tests.support.deliveries import write_delivery
from tests.support.homes import isolated_home
from tests.support.portfolios import END

INGEST_POINTS = ["ingest:writing", "ingest:committed", "online:pushed"]
FEATURE_POINTS = ["features:offline-written", "online:pushed", "features:live-written"]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    """150 tenancies over a year, ingested and featurised, and a second delivery: payments for five tenancies, a
    row with an unreadable amount and one for an unknown tenancy."""
    root = tmp_path_factory.mktemp("crash")
    with isolated_home(root / "home"):
        write_portfolio(simulate_portfolio(n_tenancies=150, years=1.0, seed=11, end_date=END.date()), root / "feeds")
        ok("ingest", str(root / "feeds"))
        ok("features")
        from features.store.offline import live_tenancies

        busy = live_tenancies(get_settings()).sort_values("balance", ascending=False)["tenancy_id"].head(5).tolist()
    tx = pd.DataFrame({"transaction_id": [f"CR-{k}" for k in range(7)], "tenancy_id": [*busy, busy[0], "NOSUCH"],
                       "posted_date": [str(END.date())] * 7, "type": ["payment"] * 7,
                       "amount": ["-50.00"] * 5 + ["fifty", "-5.00"], "method": ["card"] * 7})
    shutil.copytree(root / "home", root / "pristine")
    return {"home": root / "home", "delivery": write_delivery(root / "second", transactions=tx), "root": root}


def _fresh(base: dict) -> Path:
    """The featurised home as the fixture made it, at its own path."""
    shutil.rmtree(base["home"])
    shutil.copytree(base["root"] / "pristine", base["home"])
    return base["home"]


def _killed(home: Path, point: str, *verb: str) -> None:
    """Run `arrears VERB` in a new process that SIGKILLs itself at `point`."""
    env = {**os.environ, "ARREARS_HOME": str(home), VARIABLE: point}
    done = subprocess.run([sys.executable, "-m", "arrears.cli", *verb], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == -signal.SIGKILL, f"{point} was not reached:\n{done.stdout}\n{done.stderr}"


def _state(home: Path) -> dict:
    """Everything a verb of the data path leaves, in a form two homes can be compared by."""
    from features.ledger import open_ledger
    from features.store.feast import online_features, open_store
    from features.store.offline import live_tenancies, read_offline
    from features.store.refresh import online_mark, read_manifest

    with isolated_home(home):
        settings = get_settings()
        with open_ledger(settings.ledger, read_only=True) as ledger:
            tables = {t: _sorted(ledger.read_table(t)) for t in ("tenancies", "transactions", "events", "quarantine")}
            deliveries = ledger.read_table("deliveries")[["delivery_seq", "delivery_id", "summary_json", "fingerprint"]]
            tables["deliveries"] = _sorted(deliveries.assign(  # the homes' paths differ, nothing else may
                summary_json=deliveries["summary_json"].str.replace(str(home), "HOME", regex=False)))
        live = live_tenancies(settings)
        as_of = pd.Timestamp(live["event_timestamp"].max()).tz_localize(None)
        online = online_features(open_store(settings), "arrears_risk_v1", sorted(live["tenancy_id"]), as_of)
        quarantine = {str(p.relative_to(settings.quarantine_dir)): p.read_text()
                      for p in sorted(settings.quarantine_dir.rglob("*")) if p.is_file()}
        manifest = read_manifest(settings)
        return {**tables, "live": _sorted(live), "offline": _sorted(read_offline(settings)), "online": online,
                "quarantine_files": quarantine, "mark": online_mark(settings),
                "manifest": (manifest.ledger_seq, manifest.last_weekly, manifest.current_as_of)}


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)


def _same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(got[key], value, obj=key)
        else:
            assert got[key] == value, key


@pytest.fixture(scope="module")
def ingested(base) -> dict:
    """The reference: the second delivery ingested without interruption."""
    home = _fresh(base)
    with isolated_home(home):
        ok("ingest", str(base["delivery"]))
    return _state(home)


@pytest.mark.parametrize("point", INGEST_POINTS)
def test_an_ingest_killed_and_run_again_leaves_what_one_run_leaves(base, ingested, point) -> None:
    home = _fresh(base)
    _killed(home, point, "ingest", str(base["delivery"]))
    with isolated_home(home):
        again = ok("ingest", str(base["delivery"]))
    _same(_state(home), ingested)
    transactions = ingested["transactions"]
    assert (transactions["transaction_id"].str.startswith("CR-")).sum() == 5  # accepted once, not twice
    assert len(ingested["deliveries"]) == 2 and ingested["quarantine_files"]
    if point != "ingest:writing":  # committed before the kill: the run again recognises the delivery
        assert "already the ledger's last delivery" in " ".join(again.output.split())


@pytest.fixture(scope="module")
def featurised(base) -> dict:
    """The reference: the second delivery ingested without an online refresh, then `arrears features`."""
    home = _fresh(base)
    with isolated_home(home):
        ok("ingest", "--no-refresh-online", str(base["delivery"]))
        ok("features")
    return _state(home)


@pytest.mark.parametrize("point", FEATURE_POINTS)
def test_a_feature_refresh_killed_and_run_again_leaves_what_one_run_leaves(base, featurised, point) -> None:
    home = _fresh(base)
    with isolated_home(home):
        ok("ingest", "--no-refresh-online", str(base["delivery"]))
    _killed(home, point, "features")
    with isolated_home(home):
        ok("features")
    _same(_state(home), featurised)
