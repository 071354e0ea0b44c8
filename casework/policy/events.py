"""Reading the facts' event dates: is something (a dispute, a claim, an arrangement) in force on the day?"""

from __future__ import annotations

import pandas as pd


def latest_is(facts: pd.DataFrame, opened: str, *closed: str) -> pd.Series:
    """True where the latest `opened` event is later than every `closed` one: the thing is in force."""
    started = pd.to_datetime(facts[opened])
    in_force = started.notna()
    for column in closed:
        ended = pd.to_datetime(facts[column])
        in_force &= ended.isna() | (started > ended)
    return in_force
