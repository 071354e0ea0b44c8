"""Verbs that bring data in: `simulate`, `ingest`, and `features` with its sub-verbs.

The stages' modules are imported at the top: they cost `arrears --help` about 0.3 s (35 modules), because the heavy
libraries (DuckDB, Feast, Dask) are imported inside the feature stage's functions that use them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from arrears.cli.serving import record_worklist_run
from arrears.render import console, fail, ingest_table, out, print_json
from features.db import DatabaseError
from features.feeds.ingest import DeliveryRefused, clock_for, ingest_delivery
from features.ledger import open_ledger
from features.store.feast import apply_repo, materialize_latest
from features.store.offline import FeatureStageError, build_offline
from features.store.refresh import refresh, refresh_delivery
from serving.settings import get_settings
from simulator import SHAPES, simulate_portfolio, write_portfolio
from simulator.changes import parse_change

features_app = typer.Typer(help="Build snapshots from the ledger, apply the Feast repo, fill the online store.")


def simulate(
    tenancies: Annotated[int, typer.Option(help="Number of tenancies in the portfolio (100 to 1,000,000).")] = 3000,
    years: Annotated[float, typer.Option(help="Years of history to generate, ending at --end-date.")] = 2.0,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives identical files.")] = 42,
    end_date: Annotated[datetime | None, typer.Option(
        formats=["%Y-%m-%d"], help="Last day of the history (YYYY-MM-DD). Default 2026-10-31, so the same seed "
        "gives the same files whatever today's date is.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Delivery folder to write the feeds into. "
                                                    "Default: ARREARS_HOME/feeds/simulated.")] = None,
    dirty: Annotated[bool, typer.Option(help="Add realistic export faults in known quantities.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    shape: Annotated[str, typer.Option(
        help="weekly (default: mostly weekly rents, an events feed) or monthly_statement (a letting agent's "
             "export: every rent monthly on the 1st, irregular payment sums, no events feed).")] = "weekly",
    inject: Annotated[list[str] | None, typer.Option(
        "--inject", metavar="CHANGE",
        help="Inject a change from a date, to test monitoring against a known truth (repeatable): "
             "KIND:YYYY-MM-DD[:ATTRIBUTE=VALUE]...:size=NUMBER. KIND and its size: benefit_delay (days benefit "
             "paid to the landlord arrives late; with benefit_type=... only that benefit), rent_rise (share the "
             "rent rises by, e.g. 0.15; tenants' own payments do not rise), economic_shock (times the usual rate "
             "of shock episodes, e.g. 3), group_payment_drop (extra chance of missing each scheduled payment, "
             "e.g. 0.3). ATTRIBUTE=VALUE pairs (tenancies-feed columns: patch, tenure_type, rent_frequency, "
             "benefit_type, payment_method, preferred_channel, language, vulnerable true/false, age_band, sex, "
             "ethnicity, disability) pick the tenancies; none: all of them. The date must be inside the window. "
             "E.g. economic_shock:2025-06-01:size=3, "
             "benefit_delay:2025-06-01:benefit_type=universal_credit:size=14. The truth folder records each "
             "change (changes, change_tenancies).")] = None,
) -> None:
    """Write a realistic simulated portfolio as feed files (tenancies, transactions, events but for a
    monthly_statement) to the feed contract.

    The hidden truth (propensities, shocks, injected changes) goes to a sibling folder '<out>_truth' nothing reads.
    """
    if shape not in SHAPES:
        fail(f"--shape must be {' or '.join(SHAPES)}, not {shape!r}")
    changes = []
    for text in inject or ():
        try:
            changes.append(parse_change(text))
        except ValueError as exc:
            fail(f"--inject {exc}")
    target = out_dir or get_settings().feeds_dir / "simulated"
    with console.status(f"Simulating {tenancies:,} tenancies over {years:g} years ({shape})…"):
        try:
            dated = {"end_date": end_date.date()} if end_date else {}
            portfolio = simulate_portfolio(n_tenancies=tenancies, years=years, seed=seed, dirty=dirty, shape=shape,
                                           changes=changes, **dated)
        except ValueError as exc:
            fail(str(exc))
        paths = write_portfolio(portfolio, target, fmt=fmt)
    for name, path in paths.items():
        console.print(f"  {name:<13} {path}")
    out.print(str(target), soft_wrap=True)


def ingest(
    delivery: Annotated[Path, typer.Argument(help="Folder holding one delivery: tenancies.csv, transactions.csv, "
                                             "and optionally events.csv, outcomes.csv, suspense.csv, "
                                             "dwp_schedules.csv (or .parquet).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    refresh_online: Annotated[bool, typer.Option(
        "--refresh-online/--no-refresh-online",
        help="Once features exist, recompute the touched tenancies' current features and push them to the online "
             "store, so the worklist reflects this delivery within seconds.")] = True,
) -> None:
    """Load a delivery into the ledger: bad rows go to quarantine with a reason, re-sent rows count as duplicates.

    Exits 2 (writing nothing) if the delivery cannot be read at all.
    """
    settings = get_settings()
    try:
        with open_ledger(settings.ledger) as ledger, console.status(f"Ingesting {delivery}…"):
            summary = ingest_delivery(ledger, delivery, settings.quarantine_dir, clock_for(settings),
                                      settings.ingest_memory)
    except DeliveryRefused as exc:
        fail(f"delivery refused, nothing was written: {exc}")
    except DatabaseError as exc:
        fail(str(exc))
    refreshed = 0
    try:
        refreshed = refresh_delivery(settings, summary.delivery_seq) if refresh_online else 0
    except FeatureStageError as exc:
        console.print(f"[yellow]Online features not refreshed: {exc}[/yellow]")
    if refreshed:
        console.print(f"Online features refreshed for {refreshed:,} tenancies touched by this delivery.")
        record_worklist_run(settings)
    if as_json:
        print_json({**summary.to_dict(), "online_refreshed": refreshed})
        return
    ingest_table(summary)


def features(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option("--full", help="Rebuild everything even if little changed.")] = False,
) -> None:
    """With no sub-command: bring features up to date, doing only what changed since the last run.

    Nothing new: nothing to do. New deliveries within the same week: only the touched tenancies are recomputed
    (offline and online). A new week, changed feature code or `--full`: build, `feast apply`, fill the online store.
    Set ARREARS_DASK_SCHEDULER (tcp://host:8786, or 'local') to compute the build on a Dask cluster.
    """
    if ctx.invoked_subcommand is not None:
        return

    try:
        with console.status("Bringing features up to date…"):
            result = refresh(get_settings(), force_full=full)
    except FeatureStageError as exc:
        fail(str(exc))
    console.print(f"Features: {result.mode} ({result.detail}) in {result.seconds:.1f} s.")
    record_worklist_run(get_settings())


@features_app.command("build")
def features_build() -> None:
    """Compute weekly per-tenancy snapshots from the ledger into the offline store, and the current snapshot."""
    try:
        with console.status("Building snapshots from the ledger…"):
            result = build_offline(get_settings())
    except FeatureStageError as exc:
        fail(str(exc))
    console.print(f"Snapshots: {result.rows:,} rows for {result.tenancies:,} tenancies, "
                  f"{result.first_as_of.date()} to {result.last_as_of.date()}; current as of "
                  f"{result.current_as_of.date()}")


@features_app.command("apply")
def features_apply() -> None:
    """Run `feast apply` on features/repo against this home's registry."""
    try:
        with console.status("feast apply…"):
            apply_repo(get_settings())
    except FeatureStageError as exc:
        fail(str(exc))
    console.print("Feast repo applied.")


@features_app.command("materialize")
def features_materialize() -> None:
    """Push the current snapshot of every live tenancy to the online store."""
    try:
        with console.status("Materialising the online store…"):
            latest = materialize_latest(get_settings())
    except (FeatureStageError, FileNotFoundError) as exc:
        fail(f"{exc} (run `arrears features build` and `arrears features apply` first)")
    console.print(f"Online store holds snapshots as of {latest.date()}.")


features_app.callback(invoke_without_command=True)(features)
