"""Day grid and recurring schedules for the portfolio simulator.

The simulator works in integer *day indices*: day 0 is the start of the simulation (a burn-in period before the
observation window), and every date is `grid.start + day`. Recurring things (rent due dates, paydays, Housing
Benefit runs, Universal Credit payment dates) are described by a schedule *kind* and a *residue*:

* ``KIND_P7`` / ``KIND_P14`` / ``KIND_P28``: every 7/14/28 days, on the days ``t`` with ``t % P == residue``;
* ``KIND_MONTHLY``: once a month on day-of-month ``residue`` (1..28, so every month has it).

`Calendar` groups tenancies by (kind, residue) once, so "who is due today" is a handful of array slices rather
than a scan over every tenancy.
"""

from __future__ import annotations

from datetime import date

import numpy as np

KIND_P7, KIND_P14, KIND_P28, KIND_MONTHLY = 0, 1, 2, 3
#: Length in days of the periodic kinds (monthly has none).
KIND_PERIOD = np.array([7, 14, 28, 0])
#: Weeks covered by one period of each kind (monthly = 52/12 weeks).
KIND_WEEKS = np.array([1.0, 2.0, 4.0, 52.0 / 12.0])
#: First key of each kind in the grouped index: P7 residues 0..6, P14 7..20, P28 21..48, monthly 49..76.
_KEY_OFFSET = np.array([0, 7, 21, 48])
_N_KEYS = 77
#: Extra days kept on the grid after the last simulated day, so schedules can look ahead without bounds checks.
GRID_PAD = 400


class DayGrid:
    """Calendar facts for every day index from 0 to ``n_days + GRID_PAD``."""

    def __init__(self, start: date, n_days: int):
        self.start = start
        self.n_days = n_days
        total = n_days + GRID_PAD
        self.dates = np.datetime64(start, "D") + np.arange(total)
        self.weekday = weekday_of(np.arange(total), start)
        self.dom = dom_of(np.arange(total), start)
        months = self.dates.astype("datetime64[M]")
        self.dim = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(np.int64)
        # The next weekday (Mon-Fri) on or after each day: banks post receipts on working days.
        shift = np.where(self.weekday == 5, 2, np.where(self.weekday == 6, 1, 0))
        self.roll = np.arange(total) + shift

    def day(self, when: date) -> int:
        """The day index of a date."""
        return (when - self.start).days


def weekday_of(days: np.ndarray, start: date) -> np.ndarray:
    """Weekday (0 = Monday) of day indices relative to ``start`` (negative indices allowed)."""
    return (start.weekday() + np.asarray(days)) % 7


def dom_of(days: np.ndarray, start: date) -> np.ndarray:
    """Day of month (1..31) of day indices relative to ``start`` (negative indices allowed)."""
    dates = np.datetime64(start, "D") + np.asarray(days)
    return (dates - dates.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1


def residue_for_weekday(weekday: np.ndarray, start: date, period: int, phase: np.ndarray | int = 0) -> np.ndarray:
    """The residue of a P7/P14/P28 schedule that falls on ``weekday`` (0 = Monday), in its ``phase``-th week."""
    return (np.asarray(weekday) - start.weekday()) % 7 + 7 * np.asarray(phase) % period


def days_to_next_monthly(grid: DayGrid, days: np.ndarray, residue: np.ndarray | int) -> np.ndarray:
    """Days from each of ``days`` (not negative) to the next day of month ``residue`` (1..28) after it: the length
    of the month from a day that is itself on ``residue``, less from a day between two of them."""
    days = np.asarray(days)
    dom, dim = grid.dom[days], grid.dim[days]
    return np.where(dom < residue, residue - dom, dim - dom + residue)


class Calendar:
    """Tenancies grouped by (schedule kind, residue) so the ones due on a day can be listed quickly."""

    def __init__(self, kind: np.ndarray, residue: np.ndarray, members: np.ndarray | None = None):
        idx = np.arange(len(kind)) if members is None else np.flatnonzero(members)
        key = _KEY_OFFSET[kind[idx]] + residue[idx]
        if idx.size and (key.min() < 0 or key.max() >= _N_KEYS):
            raise ValueError("schedule residue out of range")
        order = np.argsort(key, kind="stable")
        self._idx = idx[order]
        self._ptr = np.searchsorted(key[order], np.arange(_N_KEYS + 1))

    def due(self, t: int, dom: int) -> np.ndarray:
        """Indices of the tenancies whose schedule falls on day ``t`` (whose day of month is ``dom``)."""
        keys = [t % 7, 7 + t % 14, 21 + t % 28]
        if dom <= 28:
            keys.append(48 + dom)
        parts = [self._idx[self._ptr[key]:self._ptr[key + 1]] for key in keys if self._ptr[key + 1] > self._ptr[key]]
        if not parts:
            return np.empty(0, dtype=np.int64)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
