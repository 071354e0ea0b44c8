"""Verbs that serve what the models say: `serve` (the HTTP service), `worklist` and `forecast`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from arrears.render import changes_table, console, fail, forecast_table, out, print_json, table, worklist_table
from casework.policy import QUEUES
from features.store.offline import FeatureStageError
from serving.runs.store import NoRun
from serving.settings import get_settings
from serving.treasury.kpis import kpis_now
from training.registry import NoChampion

# Lazy on purpose: the scoring stack (serving.runs.record and .worklist, serving.treasury.forecast: LightGBM,
# scikit-learn, SciPy) and `serve`'s HTTP client are imported inside the verbs that use them. At the top they made
# every command, `arrears --help` included, take 12.0 s instead of 5.7 s (1,899 modules loaded, not 931), the
# HTTP client alone 8.4 s (+76 modules): `uv run --frozen arrears --help`, median of 5 on 2 shared cores.


def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Start the BentoML service in the foreground: the API (POST /score, /worklist, /cash_forecast…, documented at
    /docs) and the web app for people at /app/."""
    from serving.api.process import serve_command

    command = serve_command(port, host)
    console.print(f"Serving on http://{host}:{port}: the web app at http://{host}:{port}/app/, the API's "
                  f"documentation at http://{host}:{port}/docs (Ctrl-C to stop)")
    os.execvpe(command[0], command, get_settings().child_process_env())


def record_worklist_run(settings, force: bool = False) -> None:
    """After features or the champion change: record a worklist run, and say what it holds (nothing to record
    before a champion exists)."""
    from serving.runs.record import record_run

    try:
        with console.status("Recording a worklist run: scoring, readiness, reasons…"):
            summary = record_run(settings, force=force)
    except (NoChampion, FeatureStageError) as exc:
        console.print(f"[dim]No worklist run recorded: {exc}[/dim]")
        return
    counts = ", ".join(f"{state} {n:,}" for state, n in sorted(summary.state_counts.items(), key=lambda x: -x[1]))
    verb = "recorded" if summary.recorded else "already current"
    console.print(f"Worklist run {summary.run['run_id']} {verb} (as of {summary.run['as_of']}): {counts}.")


def worklist(
    top: Annotated[int, typer.Option(help="How many cases to show.")] = 20,
    patch: Annotated[str | None, typer.Option(help="Only this patch's cases.")] = None,
    state: Annotated[list[str] | None, typer.Option(
        help=f"Readiness queue(s) to list (repeatable; default ready): {', '.join(QUEUES)}.")] = None,
    since_last: Annotated[bool, typer.Option("--since-last", help="Show what changed since the previous run "
                                             "instead: entered, left, state changes, score moves, payments.")] = False,
    refresh: Annotated[bool, typer.Option(help="Record a run now if the latest does not reflect the current "
                                          "features, champion, policy and officers' actions.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, as POST /worklist answers.")] = False,
    csv: Annotated[Path | None, typer.Option(help="Also write the list to this CSV file.")] = None,
    order: Annotated[str, typer.Option(help="risk: ready cases highest risk first; gain: highest expected gain "
                                       "first (needs an uplift champion).")] = "risk",
) -> None:
    """The ranked worklist from the latest recorded run: ready cases highest risk first (or other readiness queues),
    each with its reasons, readiness and next action; the same rows as POST /worklist. Runs are recorded by
    `arrears features`, `arrears ingest` and `arrears promote` once a champion exists."""
    from serving.runs.worklist import Worklister, worklist_frame

    states = state or ["ready"]
    if unknown := sorted(set(states) - set(QUEUES)):
        fail(f"unknown readiness state(s) {', '.join(unknown)}: use {', '.join(QUEUES)}")
    settings = get_settings()
    try:
        if refresh:
            record_worklist_run(settings)
        worklister = Worklister(settings)
        response = worklister.changes(patch) if since_last else worklister.worklist(top, patch, states, order)
    except (NoChampion, FeatureStageError, NoRun, ValueError) as exc:
        fail(str(exc))
    if since_last:
        print_json(response.model_dump()) if as_json else changes_table(response)
        return
    if csv is not None:
        worklist_frame(response.rows).to_csv(csv, index=False)
        console.print(f"Written to {csv}")
    if as_json:
        print_json(response.model_dump())
        return
    worklist_table(response)


def forecast(
    weeks: Annotated[int, typer.Option(help="Weeks ahead to forecast.")] = 13,
    as_json: Annotated[bool, typer.Option("--json", help="Print the forecast as JSON.")] = False,
) -> None:
    """Cash forecast for treasury: expected receipts per week with P10/P50/P90, portfolio-wide and per patch, from
    the champion payment-date model, for the tenancies live today (new lettings are not in it). Writes CSV, JSON
    and a fan chart (PNG) to the reports folder and keeps the forecast in the forecast history, where the weekly
    performance job sets each week against the receipts that came in."""
    from serving.treasury.forecast import forecast_now, record_forecast, write_forecast

    settings = get_settings()
    try:
        with console.status("Simulating receipts…"):
            result = forecast_now(settings, weeks=weeks)
    except (NoChampion, FeatureStageError) as exc:
        fail(str(exc))
    files = write_forecast(result, settings.reports_dir)
    record_forecast(settings, result)  # the history monitoring sets against what then came in
    if as_json:
        out.print_json(result.table.round(2).to_json(orient="records", date_format="iso"))
        return
    forecast_table(result)
    console.print(f"Per patch and the fan chart: {files.csv}, {files.plot}")


def kpis(
    months: Annotated[int, typer.Option(help="The last this many calendar months.", min=1, max=240)] = 12,
    patch: Annotated[str | None, typer.Option(help="The portfolio and this patch only.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the KPIs as JSON.")] = False,
) -> None:
    """Collection KPIs by month and patch from the ledger: rent due and collected, collection rate, current arrears
    as a share of the annual rent roll, former arrears, write-offs and days' rent outstanding (docs/treasury.md
    defines each). Writes collection_kpis.csv to the reports folder."""
    settings = get_settings()
    try:
        result = kpis_now(settings, patch, months)
    except LookupError as exc:
        fail(str(exc))
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    path = settings.reports_dir / "collection_kpis.csv"
    result.round(4).to_csv(path, index=False)
    if as_json:
        out.print_json(result.round(4).to_json(orient="records"))
        return
    portfolio = result[result["scope"] == "portfolio"]
    table(f"Collection KPIs, portfolio (ledger to {result.attrs['as_of']})",
          ["month", "rent due", "collected", "rate", "arrears", "% of roll", "former", "written off", "days"],
          [[r.month, f"£{r.rent_due:,.0f}", f"£{r.collected:,.0f}", f"{r.collection_rate:.1%}",
            f"£{r.current_arrears:,.0f}", f"{r.current_arrears_pct_of_roll:.2%}", f"£{r.former_arrears:,.0f}",
            f"£{r.written_off:,.0f}", f"{r.days_rent_outstanding:.1f}"] for r in portfolio.itertuples()],
          right=("rent due", "collected", "rate", "arrears", "% of roll", "former", "written off", "days"))
    console.print(f"Per patch: {path}")
