"""`arrears`: one command, one verb per stage. `arrears demo` runs them all in order.

All state lives under ARREARS_HOME (default ./data). Every verb is safe to re-run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from serving.settings import get_settings

app = typer.Typer(
    help="Arrears risk-scoring and prioritisation: feeds → ledger → Feast features → MLflow models → a BentoML "
    "worklist with SHAP reasons → Evidently reports. State lives under ARREARS_HOME (default ./data).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
features_app = typer.Typer(help="Build snapshots from the ledger, apply the Feast repo, fill the online store.")
monitor_app = typer.Typer(help="Monitoring reports (Evidently).", no_args_is_help=True)
app.add_typer(features_app, name="features")
app.add_typer(monitor_app, name="monitor")

console = Console(stderr=True)
out = Console()


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the libraries' own log lines "
                                          "(MLflow, Feast, BentoML) as well as ours.")] = False,
) -> None:
    """Arrears risk-scoring and prioritisation. Run `arrears demo` for the whole job on a simulated portfolio."""
    import logging
    import os

    if not verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read by mlflow when it is first imported
        for name in ("mlflow", "feast", "alembic", "bentoml", "urllib3"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # Libraries' deprecation notices are for us, not for officers running the job. Feast re-enables them with
        # warnings.simplefilter at import, so route warnings through logging and hold that logger back instead.
        logging.captureWarnings(True)
        logging.getLogger("py.warnings").setLevel(logging.ERROR)


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


# -- simulate --------------------------------------------------------------------------------------------------


@app.command()
def simulate(
    tenancies: Annotated[int, typer.Option(help="Number of tenancies in the portfolio (100 to 1,000,000).")] = 3000,
    years: Annotated[float, typer.Option(help="Years of history to generate, ending at --end-date.")] = 2.0,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives identical files.")] = 42,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Delivery folder to write the feeds into. "
                                                    "Default: ARREARS_HOME/feeds/simulated.")] = None,
    dirty: Annotated[bool, typer.Option(help="Add realistic export faults in known quantities.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
) -> None:
    """Write a realistic simulated portfolio as feed files (tenancies, transactions, events) to the feed contract.

    The hidden ground truth (propensities, shocks) goes to a sibling folder '<out>_truth' that nothing reads.
    """
    from simulator import simulate_portfolio, write_portfolio

    settings = get_settings()
    target = out_dir or settings.feeds_dir / "simulated"
    with console.status(f"Simulating {tenancies:,} tenancies over {years:g} years…"):
        portfolio = simulate_portfolio(n_tenancies=tenancies, years=years, seed=seed, dirty=dirty)
        paths = write_portfolio(portfolio, target, fmt=fmt)
    for name, path in paths.items():
        console.print(f"  {name:<13} {path}")
    out.print(str(target))


# -- ingest ----------------------------------------------------------------------------------------------------


@app.command()
def ingest(
    delivery: Annotated[Path, typer.Argument(help="Folder holding one delivery: tenancies.csv, transactions.csv, "
                                             "and optionally events.csv, outcomes.csv (or .parquet).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    refresh_online: Annotated[bool, typer.Option(
        "--refresh-online/--no-refresh-online",
        help="Once features exist, recompute the touched tenancies' current features and push them to the online "
             "store, so the worklist reflects this delivery within seconds.")] = True,
) -> None:
    """Load a delivery into the ledger: bad rows go to quarantine with a reason, re-sent rows count as duplicates.

    Exits 2 (writing nothing) if the delivery cannot be read at all.
    """
    from features.db import DatabaseError
    from features.feeds.ingest import DeliveryRefused, ingest_delivery
    from features.ledger import open_ledger

    settings = get_settings()
    try:
        with open_ledger(settings.ledger) as ledger, console.status(f"Ingesting {delivery}…"):
            summary = ingest_delivery(ledger, delivery, settings.quarantine_dir)
    except DeliveryRefused as exc:
        _fail(f"delivery refused, nothing was written: {exc}")
    except DatabaseError as exc:
        _fail(str(exc))
    refreshed = _refresh_online(settings, summary.delivery_seq) if refresh_online else 0
    if as_json:
        out.print_json(json.dumps({**summary.to_dict(), "online_refreshed": refreshed}))
        return
    table = Table(title=f"Delivery {summary.delivery_seq}: {delivery}")
    for column in ("feed", "read", "accepted", "duplicate", "quarantined", "quarantine file"):
        table.add_column(column, justify="right" if column in ("read", "accepted", "duplicate", "quarantined") else "left")
    for feed in summary.feeds.values():
        table.add_row(feed.feed, f"{feed.read:,}", f"{feed.accepted:,}", f"{feed.duplicate:,}",
                      f"{feed.quarantined:,}", feed.quarantine_file or "")
    out.print(table)
    if refreshed:
        console.print(f"Online features refreshed for {refreshed:,} tenancies touched by this delivery.")


def _refresh_online(settings, delivery_seq: int) -> int:
    from features.store.offline import FeatureStageError
    from features.store.refresh import refresh_delivery

    try:
        return refresh_delivery(settings, delivery_seq)
    except FeatureStageError as exc:
        console.print(f"[yellow]Online features not refreshed: {exc}[/yellow]")
        return 0


# -- features --------------------------------------------------------------------------------------------------


@features_app.callback(invoke_without_command=True)
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
    from features.store.offline import FeatureStageError
    from features.store.refresh import refresh

    try:
        with console.status("Bringing features up to date…"):
            result = refresh(get_settings(), force_full=full)
    except FeatureStageError as exc:
        _fail(str(exc))
    console.print(f"Features: {result.mode} ({result.detail}) in {result.seconds:.1f} s.")


@features_app.command("build")
def features_build() -> None:
    """Compute weekly per-tenancy snapshots from the ledger into the offline store, and the current snapshot."""
    from features.store.offline import FeatureStageError, build_offline

    settings = get_settings()
    try:
        with console.status("Building snapshots from the ledger…"):
            result = build_offline(settings)
    except FeatureStageError as exc:
        _fail(str(exc))
    console.print(f"Snapshots: {result.rows:,} rows for {result.tenancies:,} tenancies, "
                  f"{result.first_as_of.date()} to {result.last_as_of.date()}; current as of "
                  f"{result.current_as_of.date()}")


@features_app.command("apply")
def features_apply() -> None:
    """Run `feast apply` on features/repo against this home's registry."""
    from features.store.feast import apply_repo
    from features.store.offline import FeatureStageError

    try:
        with console.status("feast apply…"):
            apply_repo(get_settings())
    except FeatureStageError as exc:
        _fail(str(exc))
    console.print("Feast repo applied.")


@features_app.command("materialize")
def features_materialize() -> None:
    """Push the current snapshot of every live tenancy to the online store."""
    from features.store.feast import materialize_latest
    from features.store.offline import FeatureStageError

    try:
        with console.status("Materialising the online store…"):
            latest = materialize_latest(get_settings())
    except (FeatureStageError, FileNotFoundError) as exc:
        _fail(f"{exc} (run `arrears features build` and `arrears features apply` first)")
    console.print(f"Online store holds snapshots as of {latest.date()}.")


# -- train / promote -------------------------------------------------------------------------------------------


@app.command()
def train(
    outcomes: Annotated[Optional[Path], typer.Option(help="CSV of your own labels (tenancy_id, as_of_date, "
                                                     "outcome 0/1) to train the risk model on instead.")] = None,
    model: Annotated[str, typer.Option(help="Which model to train: all, risk or payment_date.")] = "all",
) -> None:
    """Train the arrears-risk and payment-date models through their FeatureServices, evaluate them against the
    baselines (and backtest the cash forecast), log everything to MLflow and register each as `challenger`."""
    from training.labels import read_outcomes
    from training.train import train_payment_model, train_risk_model

    if model not in ("all", "risk", "payment_date"):
        _fail(f"--model must be all, risk or payment_date, not {model!r}")
    settings = get_settings()
    if model in ("all", "risk"):
        labels = read_outcomes(outcomes) if outcomes else None
        with console.status("Training the arrears-risk model…"):
            result = train_risk_model(settings, outcomes=labels)
        for note in result.notes:
            console.print(f"[yellow]note:[/] {note}")
        _metrics_table(f"arrears_risk version {result.version} (challenger)", result.metrics)
    if model in ("all", "payment_date"):
        with console.status("Training the payment-date model and backtesting the cash forecast…"):
            paid = train_payment_model(settings)
        _metrics_table(f"payment_date version {paid.version} (challenger)", paid.metrics)


def _metrics_table(title: str, metrics: dict[str, float]) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    out.print(table)


@app.command()
def promote() -> None:
    """Move each model's `champion` to its `challenger` if the gates pass (quality floors, the baselines, no
    regression against the champion on the same test weeks, bias); otherwise name the failing gate. Exits 1 if any
    model was refused. Every decision is recorded in MLflow (experiment `promotions`)."""
    from training.promotion import GATES, promote
    from training.registry import NoChampion

    refused = []
    for model in GATES:
        try:
            decision = promote(get_settings(), model)
        except NoChampion as exc:
            _fail(str(exc))
        if decision.promoted:
            out.print(f"{decision.model} version {decision.version} is now champion.")
        else:
            refused.append(f"{decision.model} version {decision.version} not promoted: "
                           + "; ".join(decision.failed_gates))
    if refused:
        _fail("\n".join(refused), 1)


@app.command()
def forecast(
    weeks: Annotated[int, typer.Option(help="Weeks ahead to forecast.")] = 13,
    as_json: Annotated[bool, typer.Option("--json", help="Print the forecast as JSON.")] = False,
) -> None:
    """Cash forecast for treasury: expected receipts per week with P10/P50/P90, portfolio-wide and per patch, from
    the champion payment-date model. Writes CSV, JSON and a fan chart (PNG) to the reports folder."""
    from features.store.offline import FeatureStageError
    from serving.cash_forecast import forecast_now, write_forecast
    from training.registry import NoChampion

    try:
        with console.status("Simulating receipts…"):
            result = forecast_now(get_settings(), weeks=weeks)
            files = write_forecast(result, get_settings().reports_dir)
    except (NoChampion, FeatureStageError) as exc:
        _fail(str(exc))
    if as_json:
        out.print_json(result.table.round(2).to_json(orient="records", date_format="iso"))
        return
    portfolio = result.table[result.table["scope"] == "portfolio"]
    table = Table(title=f"Expected receipts from {result.as_of.date()} (payment_date v{result.model_version})")
    for column in ("week", "week_start", "p10", "p50", "p90"):
        table.add_column(column, justify="right")
    for row in portfolio.itertuples():
        table.add_row(str(row.week), str(row.week_start), f"£{row.p10:,.0f}", f"£{row.p50:,.0f}", f"£{row.p90:,.0f}")
    out.print(table)
    console.print(f"Per patch and the fan chart: {files.csv}, {files.plot}")


# -- serve / worklist ------------------------------------------------------------------------------------------


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Start the BentoML worklist service (POST /score, POST /worklist) in the foreground."""
    import os

    from serving.server import serve_command

    settings = get_settings()
    os.environ.update(settings.child_env())  # for bentoml, which this process becomes
    command = serve_command(port, host)
    console.print(f"Serving on http://{host}:{port} (Ctrl-C to stop)")
    os.execvpe(command[0], command, os.environ)


def worklist_paths(settings) -> tuple[Path, Path]:
    return settings.reports_dir / "worklist.json", settings.reports_dir / "worklist.csv"


@app.command()
def worklist(
    top: Annotated[int, typer.Option(help="How many cases to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """Print the ranked worklist of the latest run (written by `arrears demo`), with reasons."""
    json_path, _ = worklist_paths(get_settings())
    if not json_path.exists():
        _fail(f"no worklist yet at {json_path}: run `arrears demo`, or `arrears serve` and POST /worklist.")
    payload = json.loads(json_path.read_text())
    rows = payload["rows"][:top]
    if as_json:
        out.print_json(json.dumps({**payload, "rows": rows}))
        return
    table = Table(title=f"Worklist as of {payload['as_of']} (model v{payload['model_version']})")
    for column in ("rank", "tenancy", "patch", "risk", "why"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row["rank"]), row["tenancy_id"], row.get("patch") or "", f"{row['risk_score']:.2f}",
                      "; ".join(r["text"] for r in row["reasons"]))
    out.print(table)


# -- monitoring ------------------------------------------------------------------------------------------------


@monitor_app.command("drift")
def monitor_drift() -> None:
    """Evidently drift report: the champion's training reference versus the latest snapshot (HTML and JSON)."""
    from monitoring.jobs import feature_drift

    with console.status("Computing drift…"):
        result = feature_drift(get_settings())
    console.print(f"Drifted share of features: {result.drifted_share:.0%} "
                  f"({', '.join(result.drifted_columns) or 'none'})")
    out.print(str(result.html))


# -- info / demo -----------------------------------------------------------------------------------------------


def _redact(url: str) -> str:
    """A URL without its password, for printing."""
    import re

    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", url)


def info_dict() -> dict[str, str]:
    settings = get_settings()
    return {
        "home": str(settings.home),
        "ledger": settings.ledger,
        "feature_repo": str(settings.feature_repo),
        "feast_profile": settings.feast_profile,
        "feature_store_yaml": str(settings.feature_store_yaml),
        "offline_store": str(settings.offline_dir) if settings.feast_profile == "local" else
        f"postgres table tenancy_snapshots ({_redact(settings.feast_postgres_url or settings.ledger_url or '')})",
        "online_store": str(settings.feast_dir / "online_store.db") if settings.feast_profile == "local" else
        f"redis {_redact(settings.redis_url)}",
        "mlflow_tracking_uri": settings.tracking_uri,
        "reports_dir": str(settings.reports_dir),
        "quarantine_dir": str(settings.quarantine_dir),
    }


@app.command()
def info(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Where this portfolio's state lives."""
    data = info_dict()
    if as_json:
        out.print_json(json.dumps(data))
        return
    for key, value in data.items():
        out.print(f"{key:<20} {value}")


@app.command()
def demo(
    tenancies: Annotated[int, typer.Option(help="Tenancies in the simulated portfolio.")] = 3000,
    years: Annotated[float, typer.Option(help="Years of history.")] = 2.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    top: Annotated[int, typer.Option(help="Rows of the worklist to fetch.")] = 100,
) -> None:
    """The main job on the embedded default: simulate → ingest → features → train → promote → serve over HTTP →
    worklist → drift report. Prints where everything is."""
    from arrears.demo import run_demo

    try:
        result = run_demo(get_settings(), tenancies=tenancies, years=years, seed=seed, top=top, console=console)
    except Exception as exc:  # the demo is the front door: say what failed and where to look
        _fail(f"demo failed: {exc}", 1)
    table = Table(title="Where everything is")
    table.add_column("what")
    table.add_column("where")
    for key, value in result.items():
        table.add_row(key, str(value))
    out.print(table)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
