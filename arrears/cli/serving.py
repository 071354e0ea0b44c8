"""Verbs that serve what the models say: `serve` (the HTTP service), `worklist` and `forecast`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from arrears.render import console, fail, forecast_table, out, print_json, worklist_table
from serving.settings import get_settings


def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Start the BentoML worklist service (POST /score, POST /worklist) in the foreground."""
    from serving.process import serve_command

    command = serve_command(port, host)
    console.print(f"Serving on http://{host}:{port} (Ctrl-C to stop)")
    os.execvpe(command[0], command, get_settings().child_process_env())


def worklist(
    top: Annotated[int, typer.Option(help="How many cases to show.")] = 20,
    patch: Annotated[str | None, typer.Option(help="Only this patch's cases.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, as POST /worklist answers.")] = False,
    csv: Annotated[Path | None, typer.Option(help="Also write the list to this CSV file.")] = None,
) -> None:
    """The ranked worklist now, from the champion model and the current online features, with reasons: the same
    rows as POST /worklist. Run `arrears features` (or `arrears ingest`) first for a list as of the latest data."""
    from features.store.offline import FeatureStageError
    from serving.worklist import Worklister, worklist_frame
    from training.registry import NoChampion

    try:
        with console.status("Scoring live tenancies…"):
            response = Worklister(get_settings()).worklist(top, patch)
    except (NoChampion, FeatureStageError) as exc:
        fail(str(exc))
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
    the champion payment-date model. Writes CSV, JSON and a fan chart (PNG) to the reports folder."""
    from features.store.offline import FeatureStageError
    from serving.cash_forecast import forecast_now, write_forecast
    from training.registry import NoChampion

    settings = get_settings()
    try:
        with console.status("Simulating receipts…"):
            result = forecast_now(settings, weeks=weeks)
    except (NoChampion, FeatureStageError) as exc:
        fail(str(exc))
    files = write_forecast(result, settings.reports_dir)
    if as_json:
        out.print_json(result.table.round(2).to_json(orient="records", date_format="iso"))
        return
    forecast_table(result)
    console.print(f"Per patch and the fan chart: {files.csv}, {files.plot}")
