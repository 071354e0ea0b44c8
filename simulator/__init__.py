"""A realistic synthetic rent-arrears portfolio simulator, writing feeds that follow `features.feeds.contract`.

    from simulator import Change, simulate_portfolio, write_portfolio
    portfolio = simulate_portfolio(3000, years=2.0, seed=1)
    write_portfolio(portfolio, Path("deliveries/sim_0001"))   # truth goes to deliveries/sim_0001_truth
    letting = simulate_portfolio(3000, seed=1, shape="monthly_statement")   # one of SHAPES: no events feed
    slump = simulate_portfolio(3000, seed=1, changes=[Change("economic_shock", date(2025, 6, 1), 3.0)])

See `simulator.portfolio` for what the portfolio contains, `simulator.behaviour` for how payments are generated,
`simulator.statement` for the monthly-statement shape, `simulator.faults` for the injected export faults,
`simulator.changes` for changes injected from a date (a benefit delay, a rent rise, an economic shock, a group's
payments dropping), `simulator.causal` for a world whose payments answer to contacts (the causal truth experiments
and uplift are measured against), `simulator.suspense` for the receipts in suspense and the DWP's payment
schedules (with their hidden truth), `simulator.write` for the files and `simulator.plausibility` for the summary
figures used to check it looks like a real rent ledger.
"""

from simulator.changes import KINDS, Change, parse_change
from simulator.model import SHAPES, Portfolio
from simulator.portfolio import simulate_portfolio
from simulator.write import write_portfolio

__all__ = ["KINDS", "SHAPES", "Change", "Portfolio", "parse_change", "simulate_portfolio", "write_portfolio"]
