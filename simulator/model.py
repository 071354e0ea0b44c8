"""The `Portfolio` a simulation returns: the feeds a housing provider would export and the hidden truth.

It lives on its own so that everything that reads or writes a portfolio (`simulator.write`, `simulator.faults`)
can import it without importing the simulation (`simulator.portfolio`), which uses both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

#: The shapes of portfolio the simulator makes: the default, mostly weekly rents with an events feed; and a
#: letting agent's monthly statement (`simulator.statement`): monthly rent on one statement day, irregular
#: payment sums, no events feed.
SHAPES = ("weekly", "monthly_statement")
#: The shapes whose exports have no events feed.
WITHOUT_EVENTS_FEED = ("monthly_statement",)


@dataclass(frozen=True)
class Portfolio:
    """The three feeds, as a housing provider would export them, and the hidden truth behind them. A portfolio
    of a shape without an events feed holds an empty ``events`` frame (with the contract's columns).

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
    shape: str = "weekly"  #: one of SHAPES
    #: Receipts in suspense and the DWP's payment schedules (`simulator.suspense`); None: not simulated.
    suspense: pd.DataFrame | None = None
    dwp_schedules: pd.DataFrame | None = None

    def frames(self) -> dict[str, pd.DataFrame]:
        """The three feed frames by name (``events`` empty for a shape without an events feed)."""
        return {"tenancies": self.tenancies, "transactions": self.transactions, "events": self.events}

    def income_feeds(self) -> dict[str, pd.DataFrame]:
        """The income team's feeds the portfolio holds: receipts in suspense and the DWP's schedules."""
        return {name: frame for name, frame in (("suspense", self.suspense), ("dwp_schedules", self.dwp_schedules))
                if frame is not None}

    def feeds(self) -> dict[str, pd.DataFrame]:
        """The feeds exported, by name, in the order they are written: tenancies, transactions and, unless the
        shape has no events feed, events; then suspense and dwp_schedules where simulated."""
        frames = self.frames()
        if self.shape in WITHOUT_EVENTS_FEED:
            del frames["events"]
        return frames | self.income_feeds()
