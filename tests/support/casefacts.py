"""One tenancy judged as the service judges it, for tests of casework on a real case store: its facts on a day from
a weekly rent, a balance, the housing system's events and every action in the case store (releases included, as
events: `casework.cases.as_events`), then the readiness policy (`serving.runs.casework.judge_now` does the same from
the ledger)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import pandas as pd

from casework import cases
from casework.facts import circumstance_facts
from casework.policy import load_policy, readiness

TENANCY = "T1"
WEEKLY_PENCE = 10_000
NO_RECEIPTS = pd.DataFrame({"tenancy_id": pd.Series(dtype=str), "posted_date": pd.Series(dtype="datetime64[ns]"),
                            "amount_pence": pd.Series(dtype="int64"), "allocation": pd.Series(dtype=str)})


def judge(db, day: date, feed: Iterable[tuple[date, str]] = (), arrears_weeks: float = 6.0
          ) -> tuple[pd.Series, pd.Series]:
    """TENANCY on `day` owing `arrears_weeks` of a weekly rent, with the feed's (day, event type) events: its
    readiness row and its facts row."""
    policy, as_of = load_policy(), pd.Timestamp(day)
    register = pd.DataFrame({"tenancy_id": [TENANCY], "rent_amount_pence": [WEEKLY_PENCE],
                             "rent_frequency": ["weekly"], "vulnerable": [False]})
    balances = pd.DataFrame({"tenancy_id": [TENANCY], "balance_pence": [round(arrears_weeks * WEEKLY_PENCE)],
                             "reported_gap_pence": [float("nan")]})
    recorded = cases.actions(db, [TENANCY])
    events = pd.concat([pd.DataFrame({"tenancy_id": TENANCY, "event_date": [pd.Timestamp(d) for d, _ in feed],
                                      "type": [t for _, t in feed]}, columns=["tenancy_id", "event_date", "type"]),
                        cases.as_events(recorded)], ignore_index=True)
    events["event_date"] = pd.to_datetime(events["event_date"])
    facts = circumstance_facts(register, balances, NO_RECEIPTS, events, as_of, policy, cases.holds(recorded, as_of),
                               cases.reviews(recorded, as_of))
    return readiness(facts, as_of, policy).iloc[0], facts.iloc[0]
