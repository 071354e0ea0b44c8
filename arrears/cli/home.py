"""Verbs about the whole portfolio: `info` (where its state lives) and `demo` (the main job end to end), and the
options every verb shares."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from arrears.render import fail, out, print_json, redact, table
from serving.settings import get_settings

# Lazy on purpose: `demo` imports arrears.demo (every stage) inside. At the top it made every command, `arrears
# --help` included, take 11.8 s instead of 5.7 s (1,903 modules loaded, not 931): `uv run --frozen arrears --help`,
# median of 5 on 2 shared cores.


def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the libraries' own log lines "
                                          "(MLflow, Feast, BentoML) as well as ours.")] = False,
) -> None:
    """Arrears risk-scoring and prioritisation. Run `arrears demo` for the whole job on a simulated portfolio."""
    if not verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read by mlflow when it is first imported
        for name in ("mlflow", "feast", "alembic", "bentoml", "urllib3"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # Libraries' deprecation notices are for us, not for officers running the job. Feast re-enables them with
        # warnings.simplefilter at import, so route warnings through logging and hold that logger back instead.
        logging.captureWarnings(True)
        logging.getLogger("py.warnings").setLevel(logging.ERROR)


def info_dict() -> dict[str, str]:
    settings = get_settings()
    local = settings.feast_profile == "local"
    return {
        "home": str(settings.home),
        "ledger": redact(settings.ledger),
        "feature_repo": str(settings.feature_repo),
        "feast_profile": settings.feast_profile,
        "feature_store_yaml": str(settings.feature_store_yaml),
        "offline_store": str(settings.offline_dir) if local else
        f"postgres table tenancy_snapshots ({redact(settings.feast_postgres_url or settings.ledger_url or '')})",
        "online_store": str(settings.feast_dir / "online_store.db") if local else f"redis {redact(settings.redis_url)}",
        "mlflow_tracking_uri": redact(settings.tracking_uri),
        "casework_database": redact(settings.casework_database),
        "reports_dir": str(settings.reports_dir),
        "quarantine_dir": str(settings.quarantine_dir),
    }


def info(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Where this portfolio's state lives (passwords hidden)."""
    data = info_dict()
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        out.print(f"{key:<20} {value}")


def demo(
    tenancies: Annotated[int, typer.Option(help="Tenancies in the simulated portfolio.")] = 3000,
    years: Annotated[float, typer.Option(help="Years of history.")] = 2.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    top: Annotated[int, typer.Option(help="Rows of the worklist to fetch.")] = 100,
) -> None:
    """The main job on the embedded default: simulate → ingest → features → train → promote → worklist → income
    (suspense matches, DWP schedules) → forecast → serve over HTTP → drift, bias and performance reports. Prints
    where everything is."""
    from arrears.demo import demo_sign_ins, run_demo

    settings = get_settings()
    try:
        result = run_demo(settings, tenancies=tenancies, years=years, seed=seed, top=top)
        sign_ins = demo_sign_ins(settings)
    except Exception as exc:  # the demo is the front door: say what failed and where to look
        fail(f"demo failed: {exc}", 1)
    table("Where everything is", ["what", "where"], [[key, str(value)] for key, value in result.items()])
    out.print("\n[bold]The web app[/]: `uv run arrears serve`, then open http://127.0.0.1:3000/app/ (auth is open in "
              "the demo: it opens as admin). To sign in as each role, serve with ARREARS_AUTH=required and use a token "
              "below (made for the simulated portfolio; `arrears users revoke NAME` ends one). The simulated history "
              f"ends on {result['data as of']}: serve with ARREARS_TODAY={result['data as of']} too, so what you "
              "record is dated on that day and the next run (`arrears worklist --refresh`) judges it "
              "(docs/casework.md):")
    for role, name, patches, token in sign_ins:  # one line each, never wrapped: a token is copied whole
        out.print(f"  {role:<15} {name:<20} {patches:<22} {token}", soft_wrap=True, highlight=False)
