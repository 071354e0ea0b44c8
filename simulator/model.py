"""The `Portfolio` a simulation returns: the three feeds a housing provider would export and the hidden truth.

It lives on its own so that everything that reads or writes a portfolio (`simulator.write`, `simulator.faults`)
can import it without importing the simulation (`simulator.portfolio`), which uses both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd


@dataclass(frozen=True)
class Portfolio:
    """The three feeds, as a housing provider would export them, and the hidden truth behind them.

    Clean frames use: ``string[pyarrow]`` ids, ``category`` vocabulary columns, ``datetime64[ns]`` dates (NaT for
    a live tenancy's end_date), ``float64`` money in pounds with 2 dp, ``bool`` vulnerable. Dirty frames
    (``dirty=True``) hold every column as text exactly as it would be written.
    """

    tenancies: pd.DataFrame
    transactions: pd.DataFrame
    events: pd.DataFrame
    ground_truth: dict[str, pd.DataFrame]
    window_start: date | None = None  #: first day of the observation window
    window_end: date | None = None  #: last day of the observation window (the end_date argument)
    dirty: bool = False

    def feeds(self) -> dict[str, pd.DataFrame]:
        """The three feeds by name, in the order they are written."""
        return {"tenancies": self.tenancies, "transactions": self.transactions, "events": self.events}
