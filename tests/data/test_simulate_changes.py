"""Changes the simulator injects from a date (simulator.changes): none changes nothing, each kind has its effect
from its start and none before, the truth records them, and `arrears simulate --inject` says what it takes."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from features.feeds import contract
from simulator import Portfolio, write_portfolio
from simulator import simulate_portfolio as simulate
from simulator.changes import KINDS, SPEC_FORM, Change, check_window, parse_change
from tests.data.test_simulate import PINNED_WEEKLY, _written_digest
from tests.support.cli import invoke, ok, words

END = date(2026, 10, 31)
START = date(2026, 5, 1)
N, SEED = 1200, 21


def simulate_portfolio(*args, **kwargs) -> Portfolio:
    """The simulation alone, without the income feeds (`simulator.suspense`): they pick receipts from whatever
    payments a portfolio has, so a changed twin's would differ everywhere, not only where the change acts."""
    return simulate(*args, income=False, **kwargs)


@pytest.fixture(scope="module")
def unchanged() -> Portfolio:
    return simulate_portfolio(N, years=1.0, seed=SEED, end_date=END)


def _changed(*specs: str) -> Portfolio:
    return simulate_portfolio(N, years=1.0, seed=SEED, end_date=END, changes=[parse_change(s) for s in specs])


def _before(frame: pd.DataFrame, column: str, day: date) -> pd.DataFrame:
    return frame[frame[column] < pd.Timestamp(day)].reset_index(drop=True)


def _assert_same_before(unchanged: Portfolio, changed: Portfolio, day: date = START) -> None:
    """Every row dated before ``day`` is the same, ids included, and so is every shock episode starting before."""
    for name, column in (("transactions", "posted_date"), ("events", "event_date")):
        pd.testing.assert_frame_equal(_before(getattr(unchanged, name), column, day),
                                      _before(getattr(changed, name), column, day))
    pd.testing.assert_frame_equal(_before(unchanged.ground_truth["shocks"], "start_date", day),
                                  _before(changed.ground_truth["shocks"], "start_date", day))


def _members(portfolio: Portfolio, change: int = 1) -> set[str]:
    rows = portfolio.ground_truth["change_tenancies"]
    return set(rows.loc[rows["change"] == change, "tenancy_id"].astype(str))


def _ids(portfolio: Portfolio, mask: pd.Series) -> set[str]:
    return set(portfolio.tenancies.loc[mask, "tenancy_id"].astype(str))


def _live_from(portfolio: Portfolio, day: date) -> pd.Series:
    end = portfolio.tenancies["end_date"]
    return end.isna() | (end >= pd.Timestamp(day))


def _window(frame: pd.DataFrame, ids: set[str], lo: date, hi: date) -> pd.DataFrame:
    dates = frame["posted_date"]
    return frame[frame["tenancy_id"].astype(str).isin(ids) & (dates >= pd.Timestamp(lo)) & (dates < pd.Timestamp(hi))]


def _missed_share(portfolio: Portfolio, ids: set[str], lo: date, hi: date) -> float:
    """Share of (tenancy, month) with a rent charge but no payment by the tenant, from ``lo`` to before ``hi``."""
    rows = _window(portfolio.transactions, ids, lo, hi)
    rows = rows.assign(month=rows["posted_date"].dt.to_period("M"), tenancy=rows["tenancy_id"].astype(str))
    charged = rows[rows["type"] == "charge"].groupby(["tenancy", "month"]).size()
    paid = rows[rows["type"] == "payment"].groupby(["tenancy", "month"]).size().reindex(charged.index, fill_value=0)
    return float((paid == 0).mean())


def _paid_share(portfolio: Portfolio, ids: set[str], lo: date, hi: date) -> float:
    """Tenants' own payments as a share of the rent charged, from ``lo`` to before ``hi``."""
    rows = _window(portfolio.transactions, ids, lo, hi)
    paid, charged = (rows.loc[rows["type"] == kind, "amount"].sum() for kind in ("payment", "charge"))
    return float(-paid / charged)


def _next_working_day(day: pd.Timestamp) -> pd.Timestamp:
    return day + pd.Timedelta(days={5: 2, 6: 1}.get(day.weekday(), 0))


# -- (a) no change, no difference -----------------------------------------------------------------------------------


def test_no_change_gives_the_portfolio_as_before(tmp_path):
    plain = simulate_portfolio(300, years=1.0, seed=3, end_date=END)
    for changes in ((), []):
        same = simulate_portfolio(300, years=1.0, seed=3, end_date=END, changes=changes)
        for name, frame in plain.frames().items():
            pd.testing.assert_frame_equal(getattr(same, name), frame)
        assert same.ground_truth.keys() == plain.ground_truth.keys()
        assert not {"changes", "change_tenancies"} & same.ground_truth.keys()
        for name, frame in plain.ground_truth.items():
            pd.testing.assert_frame_equal(same.ground_truth[name], frame)
    # the files too, byte for byte (the digest pinned in test_simulate.py)
    paths = write_portfolio(simulate_portfolio(200, years=1.0, seed=7, end_date=END, changes=()), tmp_path / "d")
    assert _written_digest(paths, sorted(paths)) == PINNED_WEEKLY["all"]


# -- (b) each kind: its effect from its start, none before ------------------------------------------------------


def test_economic_shock_brings_more_shocks_and_missed_payments_from_its_start(unchanged):
    changed = _changed("economic_shock:2026-05-01:benefit_type=none:size=20")
    _assert_same_before(unchanged, changed)
    earners = _ids(unchanged, unchanged.tenancies["benefit_type"] == "none")
    assert _members(changed) == earners & _ids(changed, _live_from(changed, START))

    def shocks_from_start(portfolio: Portfolio, ids: set[str]) -> pd.DataFrame:
        shocks = portfolio.ground_truth["shocks"]
        return shocks[(shocks["start_date"] >= pd.Timestamp(START)) & shocks["tenancy_id"].astype(str).isin(ids)]

    assert len(shocks_from_start(changed, earners)) >= 3 * len(shocks_from_start(unchanged, earners))
    others = _ids(unchanged, unchanged.tenancies["benefit_type"] != "none")
    pd.testing.assert_frame_equal(shocks_from_start(changed, others).reset_index(drop=True),
                                  shocks_from_start(unchanged, others).reset_index(drop=True))
    window_start, after_end = date(2025, 11, 1), END + timedelta(days=1)
    before = _missed_share(changed, earners, window_start, START)
    assert before == _missed_share(unchanged, earners, window_start, START)
    # more missed payments after the start than the unchanged run's, and than before it (beyond the usual change)
    after, usual_after = _missed_share(changed, earners, START, after_end), _missed_share(unchanged, earners, START,
                                                                                        after_end)
    assert after > usual_after + 0.025
    assert after - before > usual_after - before + 0.025


def test_benefit_delay_makes_universal_credit_arrive_later(unchanged):
    changed = _changed("benefit_delay:2026-05-01:benefit_type=universal_credit:size=14")
    _assert_same_before(unchanged, changed)
    on_uc = _ids(unchanged, unchanged.tenancies["benefit_type"] == "universal_credit")
    assert _members(changed) == on_uc & _ids(changed, _live_from(changed, START))

    def managed_payments(portfolio: Portfolio, ids: set[str], lo: date, hi: date) -> set[tuple]:
        rows = _window(portfolio.transactions, ids, lo, hi)
        rows = rows[rows["reference"] == "UC managed payment"]
        return set(zip(rows["tenancy_id"].astype(str), rows["posted_date"], rows["amount"], strict=True))

    # nothing arrives in the fortnight after the start, though it used to ...
    fortnight = START + timedelta(days=14)
    assert managed_payments(unchanged, on_uc, START, fortnight)
    assert not managed_payments(changed, on_uc, START, fortnight)
    # ... and each payment arrives 14 days late (on the next working day), the same sum
    usual = managed_payments(unchanged, on_uc, START, END - timedelta(days=14))
    expected = {(tenancy, _next_working_day(day + pd.Timedelta(days=14)), amount) for tenancy, day, amount in usual}
    assert len(expected & managed_payments(changed, on_uc, fortnight, END + timedelta(days=1))) >= 0.9 * len(expected)
    # Housing Benefit runs (not delayed by a universal_credit delay) arrive as they did
    hb = []
    for portfolio in (unchanged, changed):
        rows = portfolio.transactions
        rows = rows[(rows["reference"] == "Housing Benefit") & (rows["posted_date"] >= pd.Timestamp(START))]
        hb.append(set(zip(rows["tenancy_id"].astype(str), rows["posted_date"], rows["amount"], strict=True)))
    assert len(hb[0] & hb[1]) >= 0.97 * len(hb[0]) > 0


def test_rent_rise_raises_the_groups_charges_by_the_share_and_not_the_payments(unchanged):
    changed = _changed("rent_rise:2026-05-01:tenure_type=secure:size=0.15")
    _assert_same_before(unchanged, changed)
    secure = _ids(unchanged, unchanged.tenancies["tenure_type"] == "secure")
    assert _members(changed) == secure & _ids(changed, _live_from(changed, START))
    after_end = END + timedelta(days=1)

    def rent_charges(portfolio: Portfolio) -> pd.DataFrame:
        rows = portfolio.transactions
        rows = rows[(rows["type"] == "charge") & (rows["posted_date"] >= pd.Timestamp(START))]
        return rows.assign(tenancy_id=rows["tenancy_id"].astype(str)).set_index(["tenancy_id", "posted_date"])

    both = rent_charges(unchanged)[["amount"]].join(rent_charges(changed)[["amount"]], rsuffix="_changed",
                                                     how="inner")
    member = both.index.get_level_values("tenancy_id").isin(secure)
    assert member.sum() > 1000 and (~member).sum() > 1000
    assert np.allclose(both.loc[member, "amount_changed"], np.round(both.loc[member, "amount"] * 1.15, 2), atol=0.011)
    assert (both.loc[~member, "amount_changed"] == both.loc[~member, "amount"]).all()
    rents = [p.tenancies.set_index(p.tenancies["tenancy_id"].astype(str))["rent_amount"] for p in (unchanged, changed)]
    live = sorted(_ids(changed, changed.tenancies["end_date"].isna()) & secure)
    assert np.allclose(rents[1][live], np.round(rents[0][live] * 1.15, 2), atol=0.011)
    # tenants' own payments do not rise with the rent (only their usual catch-ups on arrears make up some of the
    # difference): they pay a smaller share of it, and owe more
    paying = secure & _ids(unchanged, unchanged.tenancies["benefit_type"] == "none")
    assert _paid_share(changed, paying, START, after_end) < _paid_share(unchanged, paying, START, after_end) - 0.025
    balances = [p.ground_truth["tenancies"].set_index("tenancy_id")["closing_balance"] for p in (unchanged, changed)]
    assert balances[1][sorted(paying)].mean() > balances[0][sorted(paying)].mean() + 50


def test_group_payment_drop_lowers_only_that_groups_payments(unchanged):
    changed = _changed("group_payment_drop:2026-05-01:ethnicity=asian:size=0.3")
    _assert_same_before(unchanged, changed)
    # a monitoring-only attribute: the same people, the same attributes, exactly the tenancies the feed shows
    monitoring = list(contract.MONITORING_ONLY_COLUMNS)
    pd.testing.assert_frame_equal(changed.tenancies[monitoring], unchanged.tenancies[monitoring])
    group = _ids(changed, changed.tenancies["ethnicity"] == "asian")
    rest = _ids(changed, changed.tenancies["ethnicity"] != "asian")
    assert _members(changed) == group & _ids(changed, _live_from(changed, START)) and len(group) > 80
    after_end = END + timedelta(days=1)
    assert _missed_share(changed, group, START, after_end) > _missed_share(unchanged, group, START, after_end) + 0.1
    assert abs(_missed_share(changed, rest, START, after_end) - _missed_share(unchanged, rest, START, after_end)) < 0.02
    assert _paid_share(changed, group, START, after_end) < _paid_share(unchanged, group, START, after_end) - 0.05
    assert abs(_paid_share(changed, rest, START, after_end) - _paid_share(unchanged, rest, START, after_end)) < 0.02


def test_a_rent_rise_in_a_monthly_statement_comes_with_the_next_statement():
    kwargs = {"years": 1.0, "seed": 4, "end_date": END, "shape": "monthly_statement"}
    plain = simulate_portfolio(300, **kwargs)
    risen = simulate_portfolio(300, **kwargs, changes=[Change("rent_rise", date(2026, 5, 10), 0.1)])
    _assert_same_before(plain, risen, date(2026, 5, 10))
    charges = [p.transactions[(p.transactions["reference"] == "Rent") & (p.transactions["posted_date"] >= "2026-05-10")]
               .assign(tenancy_id=lambda f: f["tenancy_id"].astype(str)).set_index(["tenancy_id", "posted_date"])
               ["amount"] for p in (plain, risen)]
    both = pd.concat(charges, axis=1, join="inner", keys=["plain", "risen"])
    assert len(both) > 500 and (both.index.get_level_values("posted_date").day == 1).all()
    assert np.allclose(both["risen"], np.round(both["plain"] * 1.1, 2), atol=0.011)


# -- (c) the truth records every change ---------------------------------------------------------------------------


def test_the_truth_records_each_change_and_the_tenancies_it_reaches(tmp_path):
    changes = [parse_change("benefit_delay:2026-05-01:benefit_type=universal_credit:size=14"),
               Change("group_payment_drop", date(2026, 6, 15), 0.2, {"vulnerable": "true", "sex": "female"})]
    portfolio = simulate_portfolio(300, years=1.0, seed=6, end_date=END, changes=changes)
    table = portfolio.ground_truth["changes"]
    assert list(table.columns) == ["change", "kind", "start_date", "group", "size", "tenancies", "spec"]
    assert table["change"].tolist() == [1, 2]
    assert table["kind"].tolist() == ["benefit_delay", "group_payment_drop"]
    assert table["start_date"].tolist() == [pd.Timestamp("2026-05-01"), pd.Timestamp("2026-06-15")]
    assert table["group"].tolist() == ["benefit_type=universal_credit", "vulnerable=true:sex=female"]
    assert table["size"].tolist() == [14.0, 0.2]
    assert table["spec"].tolist() == ["benefit_delay:2026-05-01:benefit_type=universal_credit:size=14",
                                      "group_payment_drop:2026-06-15:vulnerable=true:sex=female:size=0.2"]
    assert [parse_change(spec) for spec in table["spec"]] == changes
    reached = portfolio.ground_truth["change_tenancies"]
    assert reached.groupby("change").size().tolist() == table["tenancies"].tolist()
    ten = portfolio.tenancies
    second = _ids(portfolio, ten["vulnerable"] & (ten["sex"] == "female") & _live_from(portfolio, date(2026, 6, 15)))
    assert _members(portfolio, 2) == second and second
    paths = write_portfolio(portfolio, tmp_path / "delivery")
    assert sorted(p.name for p in (tmp_path / "delivery").iterdir()) == ["events.csv", "tenancies.csv",
                                                                         "transactions.csv"]
    written = pd.read_csv(paths["truth/changes"])
    assert written["spec"].tolist() == table["spec"].tolist() and written["start_date"].tolist() == ["2026-05-01",
                                                                                                     "2026-06-15"]
    assert len(pd.read_csv(paths["truth/change_tenancies"])) == table["tenancies"].sum()


# -- what a change may be -------------------------------------------------------------------------------------------


def test_changes_say_what_is_wrong_with_them():
    assert set(KINDS) == {"benefit_delay", "rent_rise", "economic_shock", "group_payment_drop"}
    with pytest.raises(ValueError, match="kind 'recession' is not one of benefit_delay"):
        Change("recession", START, 2.0)
    with pytest.raises(ValueError, match="whole number of days from 1 to 365"):
        Change("benefit_delay", START, 2.5)
    with pytest.raises(ValueError, match="above 1 and at most 20"):
        Change("economic_shock", START, 1.0)
    with pytest.raises(ValueError, match="not a number"):
        Change("rent_rise", START, "a lot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="group attribute 'name' is not one of patch"):
        Change("rent_rise", START, 0.1, {"name": "Smith"})
    with pytest.raises(ValueError, match="group value 'martian' of ethnicity is not one of white"):
        Change("group_payment_drop", START, 0.1, {"ethnicity": "martian"})
    with pytest.raises(ValueError, match="outside the observation window 2025-10-31 to 2026-10-31"):
        check_window([Change("rent_rise", date(2025, 6, 1), 0.1)], date(2025, 10, 31), END)
    with pytest.raises(ValueError, match="names patch 'Nowhere-9', not one of this portfolio's patches"):
        simulate_portfolio(50, years=1.0, seed=1, end_date=END,
                           changes=[Change("rent_rise", START, 0.1, {"patch": "Nowhere-9"})])
    same = Change("rent_rise", START, 0.1, {"patch": "North-1"})
    assert same == parse_change("rent_rise:2026-05-01:patch=North-1:size=0.1") and same.spec().endswith("size=0.1")
    assert len({same, Change("rent_rise", START, 0.1, {"patch": "North-1"})}) == 1
    assert Change("rent_rise", START, 0.1, {"vulnerable": True}).group == {"vulnerable": "true"}


@pytest.mark.parametrize(("spec", "says"), [
    ("recession:2026-05-01:size=3", "'recession' is not a kind"),
    ("economic_shock", "the start '' is not a date"),
    ("economic_shock:1 June:size=3", "the start '1 June' is not a date YYYY-MM-DD"),
    ("economic_shock:2026-05-01", "size=NUMBER is missing"),
    ("economic_shock:2026-05-01:size=3:size=4", "'size=4' repeats"),
    ("benefit_delay:2026-05-01:universal_credit:size=14", "'universal_credit' is not ATTRIBUTE=VALUE"),
    ("benefit_delay:2026-05-01:benefit=universal_credit:size=14", "group attribute 'benefit' is not one of"),
    ("group_payment_drop:2026-05-01:size=1.5", "must be above 0 and at most 1"),
])
def test_parse_change_says_what_is_wrong_the_form_and_the_kinds(spec, says):
    with pytest.raises(ValueError) as raised:
        parse_change(spec)
    message = str(raised.value)
    assert says in message and SPEC_FORM in message and "benefit_delay, rent_rise, economic_shock" in message


# -- (d) arrears simulate --inject ----------------------------------------------------------------------------------


def test_simulate_verb_injects_changes_and_explains_bad_ones(home, tmp_path):
    help_text = words(invoke("simulate", "--help"))
    assert "--inject" in help_text and all(kind in help_text for kind in KINDS)
    for bad, says in (("economic_shock:2026-08-01", "size=NUMBER is missing"),
                      ("slump:2026-08-01:size=3", "'slump' is not a kind"),
                      ("economic_shock:2026-08-01:colour=red:size=3", "group attribute 'colour' is not one of"),
                      ("economic_shock:2019-08-01:size=3", "starts outside the observation window")):
        result = invoke("simulate", "--tenancies", "100", "--years", "0.5", "--inject", bad, "--out",
                        str(tmp_path / "bad"))
        assert result.exit_code == 2 and says in words(result), words(result)
        assert not (tmp_path / "bad").exists()
    assert "expected KIND:YYYY-MM-DD[:ATTRIBUTE=VALUE]...:size=NUMBER with KIND one of benefit_delay" in words(
        invoke("simulate", "--inject", "slump:2026-08-01:size=3", "--out", str(tmp_path / "bad")))
    ok("simulate", "--tenancies", "100", "--years", "0.5", "--out", str(tmp_path / "d"),
       "--inject", "economic_shock:2026-08-01:size=3",
       "--inject", "benefit_delay:2026-08-01:benefit_type=universal_credit:size=14")
    written = pd.read_csv(tmp_path / "d_truth" / "changes.csv")
    assert written["spec"].tolist() == ["economic_shock:2026-08-01:size=3",
                                        "benefit_delay:2026-08-01:benefit_type=universal_credit:size=14"]
