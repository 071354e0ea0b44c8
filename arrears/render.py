"""What the `arrears` command prints: progress and errors on stderr, results (tables, JSON) on stdout."""

from __future__ import annotations

import json
import re

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 2) -> None:
    """Say what went wrong and what to do, then exit (2: bad input or missing state; 1: a refused step)."""
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def print_json(data: object) -> None:
    out.print_json(json.dumps(data, default=str))


def redact(url: str) -> str:
    """A URL without its password, for printing."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", url)


def table(title: str, columns: list[str], rows: list[list[str]], right: tuple[str, ...] = ()) -> None:
    """A titled table on stdout; the `right` columns are right-aligned (numbers)."""
    shown = Table(title=title)
    for column in columns:
        shown.add_column(column, justify="right" if column in right else "left")
    for row in rows:
        shown.add_row(*row)
    out.print(shown)


def metrics_table(title: str, metrics: dict[str, float]) -> None:
    table(title, ["metric", "value"], [[name, f"{value:.4f}"] for name, value in metrics.items()], right=("value",))


def ingest_table(summary) -> None:
    counts = ("read", "accepted", "duplicate", "quarantined")
    rows = [[feed.feed, *(f"{getattr(feed, c):,}" for c in counts), feed.quarantine_file or ""]
            for feed in summary.feeds.values()]
    title = f"Delivery {summary.delivery_seq}: {summary.delivery}"
    if summary.already_ingested:
        title += (" (already the ledger's last delivery: these files were ingested before, e.g. by a run that was "
                  "stopped after its commit; nothing new was recorded)")
    table(title, ["feed", *counts, "quarantine file"], rows, right=counts)


def worklist_table(response) -> None:
    gain = response.order == "gain" or any(row.expected_gain is not None for row in response.rows)
    rows = [[str(row.rank), row.tenancy_id, row.patch or "", f"{row.risk_score:.2f}"]
            + ([f"£{row.expected_gain:,.0f}" if row.expected_gain is not None else "-"] if gain else [])
            + [row.readiness_state, row.next_action, "; ".join(r.text for r in row.reasons)] for row in response.rows]
    by = " by expected gain" if response.order == "gain" else ""
    table(f"Worklist ({', '.join(response.states)}){by} as of {response.as_of}: model v{response.model_version}, "
          f"policy {response.policy_version}, {response.population:,} live tenancies",
          ["rank", "tenancy", "patch", "risk"] + (["gain"] if gain else []) + ["state", "next action", "why"], rows)
    counts = ", ".join(f"{state} {n:,}" for state, n in response.state_counts.items() if n)
    console.print(f"Readiness: {counts}.")
    if response.waiting:
        console.print("Waiting beyond each patch's capacity: "
                      + ", ".join(f"{patch} {n:,}" for patch, n in sorted(response.waiting.items())))


def changes_table(response) -> None:
    console.print(f"Run {response.run_id} (as of {response.as_of}) against {response.previous_run_id or 'none'} "
                  f"(as of {response.previous_as_of or '-'})")
    table("Entered and left the ready list", ["change", "tenancies"],
          [["entered", ", ".join(response.entered) or "-"], ["left", ", ".join(response.left) or "-"]])
    table("Readiness changes", ["tenancy", "patch", "before", "after"],
          [[c.tenancy_id, c.patch or "", c.before or "(not live)", c.after or "(not live)"]
           for c in response.state_changes])
    table("Risk score moves", ["tenancy", "patch", "before", "after"],
          [[m.tenancy_id, m.patch or "", f"{m.before:.2f}", f"{m.after:.2f}"] for m in response.score_moves])
    table("Payments since the previous run", ["tenancy", "date", "amount"],
          [[p.tenancy_id, p.posted_date, f"£{p.amount:,.2f}"] for p in response.payments], right=("amount",))


def forecast_table(forecast) -> None:
    portfolio: pd.DataFrame = forecast.table[forecast.table["scope"] == "portfolio"]
    rows = [[str(r.week), str(r.week_start), f"£{r.p10:,.0f}", f"£{r.p50:,.0f}", f"£{r.p90:,.0f}"]
            for r in portfolio.itertuples()]
    columns = ["week", "week_start", "p10", "p50", "p90"]
    table(f"Expected receipts from {forecast.as_of.date()} (payment_date v{forecast.model_version})", columns, rows,
          right=tuple(columns))
