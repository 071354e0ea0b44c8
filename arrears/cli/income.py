"""Income management: `income reconcile` (each DWP schedule line against the benefit posted: missing lines, unpaid,
short and late credits, per tenancy)."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import typer

from arrears.render import console, fail, out, print_json, table
from serving.income.schedules import FLAGS, flagged, reconcile_now
from serving.settings import get_settings

income_app = typer.Typer(
    help="Income management: receipts in suspense and the DWP's payment schedules (Universal Credit managed "
    "payments and Housing Benefit runs), reconciled against the rent accounts.", no_args_is_help=True)


def _pounds(pence) -> str:
    return "" if pd.isna(pence) else f"£{int(pence) / 100:,.2f}"


def _day(value) -> str:
    return "" if pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d}"


@income_app.command("reconcile")
def reconcile(
    last: Annotated[int, typer.Option(min=1, help="Show the latest this many flagged lines.")] = 50,
    flag: Annotated[str | None, typer.Option(help=f"Only lines with this flag: one of {', '.join(FLAGS)}.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the flagged lines and every settlement as JSON.")]
    = False,
) -> None:
    """Reconcile every DWP schedule line in the ledger with the benefit posted to its tenancy. Flags: missing_line
    (a tenancy on the scheme's earlier settlements, still live and on that benefit, with no line where its cycle
    expected one), unpaid (a line with no benefit posted within 21 days), short (less posted than the line), late
    (posted more than 3 days after the payment date), unmatched (a line no tenancy could be found for: neither its
    tenancy reference, an exact posting that day, nor its claimant reference on another line). Lines are matched to
    tenancies by the tenancy reference where the DWP gave one, else by the claimant reference."""
    if flag is not None and flag not in FLAGS:
        fail(f"--flag is one of {', '.join(FLAGS)}, not {flag!r}")
    try:
        with console.status("Reconciling the DWP's schedules…"):
            lines, settlements = reconcile_now(get_settings())
    except LookupError as exc:
        fail(str(exc))
    shown = flagged(lines)
    if flag is not None:
        shown = shown[shown[flag]]
    if as_json:
        columns = ["settlement_number", "line_reference", "scheme", "payment_date", "tenancy_id", "amount_pence",
                   "posted_pence", "posted_date", "flags"]
        print_json({"flagged": shown[columns].astype(object).where(shown[columns].notna(), None).to_dict("records"),
                    "settlements": settlements.astype(object).where(settlements.notna(), None).to_dict("records")})
        return
    table(f"DWP schedule lines flagged (latest {min(last, len(shown))} of {len(shown):,})",
          ["paid on", "settlement", "scheme", "tenancy", "line", "posted", "posted on", "flags"],
          [[_day(r.payment_date), "" if pd.isna(r.settlement_number) else str(r.settlement_number), str(r.scheme),
            "?" if pd.isna(r.tenancy_id) else str(r.tenancy_id), _pounds(r.amount_pence), _pounds(r.posted_pence),
            _day(r.posted_date), r.flags]
           for r in shown.head(last).itertuples(index=False)], right=("line", "posted"))
    counts = ", ".join(f"{name} {int(lines[name].sum()):,}" for name in FLAGS)
    out.print(f"{len(settlements):,} settlements, {int((~lines['missing_line']).sum()):,} lines: {counts}.")
