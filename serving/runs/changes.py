"""What changed between two recorded worklist runs, pure: cases that entered or left the ready list, readiness
state changes, big score moves, and the payments that arrived in between."""

from __future__ import annotations

import pandas as pd

from serving.runs.schemas import ChangesResponse, Payment, ScoreMove, StateChange


def _listed(rows: pd.DataFrame, capacity: int) -> set[str]:
    return set(rows.loc[(rows["readiness_state"] == "ready") & (rows["queue_rank"] <= capacity), "tenancy_id"])


def changes(run: dict, rows: pd.DataFrame, previous: dict | None, previous_rows: pd.DataFrame,
            payments: pd.DataFrame, score_move: float) -> ChangesResponse:
    """`rows`/`previous_rows`: the two runs' rows (tenancy_id, patch, readiness_state, queue_rank, risk_score)."""
    now = rows.set_index("tenancy_id")
    before = previous_rows.set_index("tenancy_id")
    listed_now = _listed(rows, int(run["patch_capacity"]))
    listed_before = _listed(previous_rows, int(previous["patch_capacity"])) if previous else set()
    both = now.join(before, how="outer", lsuffix="_now", rsuffix="_before")
    state_now, state_before = both["readiness_state_now"], both["readiness_state_before"]
    moved = both[state_now.fillna("") != state_before.fillna("")]
    patch = both["patch_now"].fillna(both["patch_before"])
    delta = (both["risk_score_now"] - both["risk_score_before"]).abs()
    return ChangesResponse(
        run_id=str(run["run_id"]), as_of=str(run["as_of"]),
        previous_run_id=str(previous["run_id"]) if previous else None,
        previous_as_of=str(previous["as_of"]) if previous else None,
        entered=sorted(listed_now - listed_before) if previous else [],
        left=sorted(listed_before - listed_now),
        state_changes=[StateChange(tenancy_id=str(t), patch=_text(patch[t]), before=_text(state_before[t]),
                                   after=_text(state_now[t])) for t in moved.index] if previous else [],
        score_moves=[ScoreMove(tenancy_id=str(t), patch=_text(patch[t]), before=float(both.at[t, "risk_score_before"]),
                               after=float(both.at[t, "risk_score_now"]))
                     for t in delta.index[(delta >= score_move).fillna(False)]],
        payments=[Payment(tenancy_id=str(p.tenancy_id), transaction_id=str(p.transaction_id),
                          posted_date=str(pd.Timestamp(p.posted_date).date()), amount=float(p.amount))
                  for p in payments.itertuples()],
    )


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
