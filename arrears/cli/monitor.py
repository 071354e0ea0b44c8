"""Monitoring verbs: `monitor drift`."""

from __future__ import annotations

import typer

from arrears.render import console, out
from serving.settings import get_settings

monitor_app = typer.Typer(help="Monitoring reports (Evidently).", no_args_is_help=True)


@monitor_app.command("drift")
def monitor_drift() -> None:
    """Evidently drift report: the champion's training reference versus the latest snapshot (HTML and JSON)."""
    from monitoring.jobs import feature_drift

    with console.status("Computing drift…"):
        result = feature_drift(get_settings())
    console.print(f"Drifted share of features: {result.drifted_share:.0%} "
                  f"({', '.join(result.drifted_columns) or 'none'})")
    out.print(str(result.html))
