"""Tests for the synthetic portfolio simulator (simulator)."""

from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from features.feeds import contract
from features.feeds.ingest import Clock, ingest_delivery
from features.ledger import open_ledger
from simulator import SHAPES, Portfolio, simulate_portfolio, write_portfolio
from simulator.faults import FAULT_COLUMNS
from simulator.plausibility import balances, summarise, weekly_rent
from simulator.population import draw_population
from simulator.portfolio import _simulate, window_start_for
from simulator.statement import STATEMENT_DAY
from tests.support.cli import invoke, ok, words

END = date(2026, 10, 31)


@pytest.fixture(scope="module")
def clean() -> Portfolio:
    return simulate_portfolio(2000, years=2.0, seed=11, end_date=END)


@pytest.fixture(scope="module")
def dirty() -> Portfolio:
    return simulate_portfolio(600, years=1.0, seed=5, end_date=END, dirty=True)


def _text(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), None)


def _pairs(frame: pd.DataFrame, date_column: str) -> set[tuple[str, pd.Timestamp]]:
    """(tenancy_id, date) of each row."""
    return set(zip(frame["tenancy_id"].astype(str), frame[date_column], strict=True))


def _of_type(events: pd.DataFrame, *types: str) -> pd.DataFrame:
    return events[events["type"].isin(types)]


# -- determinism --------------------------------------------------------------------------------------------------


def test_same_arguments_give_identical_frames_and_different_seeds_differ():
    a = simulate_portfolio(300, years=1.0, seed=3)
    b = simulate_portfolio(300, years=1.0, seed=3)
    for name in ("tenancies", "transactions", "events"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert a.ground_truth.keys() == b.ground_truth.keys()
    for name in a.ground_truth:
        pd.testing.assert_frame_equal(a.ground_truth[name], b.ground_truth[name])
    c = simulate_portfolio(300, years=1.0, seed=4)
    assert not a.transactions[["tenancy_id", "amount"]].equals(c.transactions[["tenancy_id", "amount"]])
    assert not a.tenancies["rent_amount"].equals(c.tenancies["rent_amount"])


#: SHA-256 of the files `write_portfolio` writes for ``simulate_portfolio(200, years=1.0, seed=7, end_date=END)``
#: (the feeds, then the truth tables; each file's name then its bytes, in name order), as computed on commit ff5016d,
#: before the simulator had shapes: the default (weekly) shape must keep producing exactly these files (without the
#: income feeds, which move some postings: `tests/data/test_suspense_simulation.py` checks they move only those).
PINNED_WEEKLY = {
    "feeds": "af1e0eefa16ed1e240e8751ed3e01a8a489b60c513322cba0034fd204fb863dc",
    "dirty_feeds": "bc1ed2b541f04cd2a653cf79d6546bac62627bbeee7bbd51848310ac96aec9d3",
    "all": "3cf90d72d22bd5d324baf77968a072dfc09604e72ff1cc9ddb6df628a98aa18f",
}


def _written_digest(paths: dict, names) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        digest.update(paths[name].read_bytes())
    return digest.hexdigest()


def test_default_output_is_byte_identical_to_before_shapes(tmp_path):
    feeds = ("tenancies", "transactions", "events")
    paths = write_portfolio(simulate_portfolio(200, years=1.0, seed=7, end_date=END, income=False),
                            tmp_path / "clean")
    assert _written_digest(paths, feeds) == PINNED_WEEKLY["feeds"]
    assert _written_digest(paths, sorted(paths)) == PINNED_WEEKLY["all"]
    dirty = write_portfolio(simulate_portfolio(200, years=1.0, seed=7, end_date=END, dirty=True, income=False),
                            tmp_path / "dirty")
    assert _written_digest(dirty, feeds) == PINNED_WEEKLY["dirty_feeds"]


# -- contract conformance of the clean output ---------------------------------------------------------------------


def test_feeds_have_the_contract_columns_and_vocabulary(clean):
    for name, spec in (("tenancies", contract.TENANCIES), ("transactions", contract.TRANSACTIONS),
                       ("events", contract.EVENTS)):
        frame = getattr(clean, name)
        unversioned = [c for c in spec.columns if c != "valid_from"]  # one version per simulated tenancy
        assert list(frame.columns) == unversioned, name
        for column in spec.required:
            if column != "end_date":
                assert frame[column].notna().all(), (name, column)
        assert frame[spec.key[0]].is_unique
    ten, tx, ev = clean.tenancies, clean.transactions, clean.events
    assert not set(contract.PERSONAL_COLUMNS) & set(ten.columns)
    assert ten["rent_frequency"].astype(str).isin(contract.RENT_FREQUENCIES).all()
    assert ten["benefit_type"].astype(str).isin(contract.BENEFIT_TYPES).all()
    assert tx["type"].astype(str).isin(contract.TRANSACTION_TYPES).all()
    assert ev["type"].astype(str).isin(contract.EVENT_TYPES).all()
    assert ten["tenancy_id"].astype(str).str.fullmatch(r"T\d{6}").all()
    assert tx["transaction_id"].astype(str).str.fullmatch(r"X\d{9}").all()
    # every frequency, benefit type, transaction type and event type actually occurs
    assert set(ten["rent_frequency"].astype(str)) == set(contract.RENT_FREQUENCIES)
    assert set(ten["benefit_type"].astype(str)) == set(contract.BENEFIT_TYPES)
    assert set(tx["type"].astype(str)) == set(contract.TRANSACTION_TYPES)
    assert set(ev["type"].astype(str)) == set(contract.EVENT_TYPES)
    assert ten["language"].astype(str).eq("en").mean() > 0.8
    patches = ten["patch"].astype(str).unique()
    assert 8 <= len(patches) <= 20 and all(re.fullmatch(r"(North|South|East|West|Central)-\d", p) for p in patches)


def test_amounts_follow_the_sign_convention_and_are_pence(clean):
    tx = clean.transactions
    sign = tx["type"].astype(str).map(contract.TRANSACTION_SIGN)
    amount = tx["amount"].to_numpy()
    assert (amount != 0).all()
    assert ((sign == 0) | (np.sign(amount) == sign)).all()
    assert np.allclose(amount * 100, np.rint(amount * 100), atol=1e-6)
    adjustments = tx.loc[tx["type"] == "adjustment", "amount"]
    assert (adjustments > 0).any() and (adjustments < 0).any()
    ev_amount = clean.events["amount"].dropna().to_numpy()
    assert np.allclose(ev_amount * 100, np.rint(ev_amount * 100), atol=1e-6)


def test_references_dates_and_tenancy_lifetimes(clean):
    ten, tx, ev = clean.tenancies, clean.transactions, clean.events
    ws, we = pd.Timestamp(clean.window_start), pd.Timestamp(clean.window_end)
    assert clean.window_start == date(2024, 10, 31)
    assert tx["tenancy_id"].isin(ten["tenancy_id"]).all()
    assert ev["tenancy_id"].isin(ten["tenancy_id"]).all()
    assert tx["posted_date"].between(ws, we).all()
    # events fall in the window, except a benefit claim still pending at its start, shown on the day it was made
    assert (ev["event_date"] <= we).all()
    early = ev[ev["event_date"] < ws]
    assert len(early) and (early["type"] == "benefit_claim_made").all()
    claims = clean.ground_truth["benefit_claims"]
    pending = claims[(claims["claim_date"] < ws) & ~(claims["decided_date"] < ws)]
    assert _pairs(early, "event_date") == _pairs(pending, "claim_date")
    assert (ten["start_date"] <= we).all()
    assert (ten["end_date"].isna() | ((ten["end_date"] >= ws) & (ten["end_date"] <= we)
                                      & (ten["end_date"] >= ten["start_date"]))).all()
    # both long-standing tenancies and move-ins; some move-outs; some re-lets of a vacated property
    assert 0.05 < (ten["start_date"] >= ws).mean() < 0.5
    assert 0.05 < ten["end_date"].notna().mean() < 0.5
    assert ten["property_id"].duplicated().any()
    relet = ten[ten["property_id"].duplicated(keep=False)].sort_values(["property_id", "start_date"])
    prev_end = relet.groupby("property_id")["end_date"].shift()
    later = relet[prev_end.notna()]
    assert (later["start_date"] > prev_end[prev_end.notna()]).all()

    dates = tx.merge(ten[["tenancy_id", "start_date", "end_date"]], on="tenancy_id")
    charges = dates[dates["type"] == "charge"]
    assert (charges["posted_date"] >= charges["start_date"]).all()
    assert (charges["end_date"].isna() | (charges["posted_date"] <= charges["end_date"])).all()
    # charges stop at move-out but the rent account carries on (refunds, write-offs, former-tenant payments)
    after_end = dates[dates["end_date"].notna() & (dates["posted_date"] > dates["end_date"])]
    assert len(after_end) and not (after_end["type"] == "charge").any()
    # live tenancies are still charged in the last five weeks
    live = ten.loc[ten["end_date"].isna(), "tenancy_id"]
    recent = charges.loc[charges["posted_date"] > we - timedelta(days=35), "tenancy_id"]
    assert live.isin(recent).all()
    # opening balances: only on the first day, only for tenancies that started before the window
    opening = dates[dates["reference"] == "Opening balance"]
    assert (opening["posted_date"] == ws).all() and (opening["start_date"] < ws).all()
    assert opening["tenancy_id"].is_unique
    # write-offs only after move-out
    wo = dates[dates["type"] == "write_off"]
    assert len(wo) and (wo["posted_date"] > wo["end_date"]).all()


def test_rents_are_realistic_and_rise_each_april(clean):
    ten, tx = clean.tenancies, clean.transactions
    wk = weekly_rent(ten)
    assert (ten["rent_amount"] > 0).all()
    assert wk.between(75, 260).all() and 100 < wk.median() < 170
    freq = ten["rent_frequency"].astype(str)
    assert freq.value_counts().idxmax() == "weekly"
    assert (freq[ten["tenure_type"] == "assured_shorthold"] == "monthly").mean() > 0.5
    charges = tx[tx["type"] == "charge"].sort_values("posted_date", kind="stable")
    by = charges.groupby("tenancy_id", observed=True)["amount"]
    last = by.last()
    assert (last == ten.set_index("tenancy_id")["rent_amount"].reindex(last.index)).all()
    # a tenancy charged throughout the window sees two April rises of a few per cent each
    span = charges.groupby("tenancy_id", observed=True)["posted_date"].agg(["min", "max"])
    full = span[(span["min"] < pd.Timestamp("2024-12-01")) & (span["max"] > pd.Timestamp("2026-10-01"))].index
    rise = (last / by.first()).loc[full]
    assert (rise > 1.0).mean() > 0.97 and rise.median() < 1.12
    n_amounts = charges[charges["tenancy_id"].isin(full)].groupby("tenancy_id", observed=True)["amount"].nunique()
    assert n_amounts.median() == 3
    weekly_mondays = charges.merge(ten[["tenancy_id", "rent_frequency"]], on="tenancy_id")
    weekly_mondays = weekly_mondays[weekly_mondays["rent_frequency"] == "weekly"]
    assert (weekly_mondays["posted_date"].dt.weekday == 0).all()


# -- behaviour and plausibility -----------------------------------------------------------------------------------


def test_arrears_at_the_window_end_are_in_a_plausible_band(clean):
    s = summarise(clean)
    assert 0.20 <= s["share_positive_balance"] <= 0.40
    assert 0.05 <= s["share_4_weeks"] <= 0.15
    assert 1 <= s["median_lateness_days"] <= 5
    # predictable from history, but not trivially
    assert 0.75 <= s["auc_balance_13w"] <= 0.97
    assert 0.5 < s["auc_days_since_receipt_13w"] < 0.9
    # the simulated truth agrees with the transactions
    truth = clean.ground_truth["tenancies"].set_index("tenancy_id")["closing_balance"]
    computed = balances(clean.transactions).reindex(truth.index).fillna(0.0)
    assert np.allclose(computed.to_numpy(), truth.to_numpy(), atol=0.005)


def test_archetypes_drive_arrears(clean):
    ten = clean.tenancies
    gt = clean.ground_truth["tenancies"].set_index("tenancy_id")
    weeks = balances(clean.transactions).reindex(ten["tenancy_id"]).fillna(0) / weekly_rent(ten).reindex(
        ten["tenancy_id"]).to_numpy()
    live = ten.set_index("tenancy_id")["end_date"].isna()
    frame = pd.DataFrame({"weeks": weeks, "archetype": gt["archetype"].astype(str)})[live]
    owing4 = frame.groupby("archetype")["weeks"].apply(lambda w: (w >= 4).mean())
    assert owing4["chronic"] > owing4["irregular"] > owing4["reliable"]
    assert owing4["shock_prone"] > owing4["reliable"]
    assert owing4["reliable"] < 0.05


def test_shocks_stop_or_shrink_payments(clean):
    tx = clean.transactions
    shocks = clean.ground_truth["shocks"]
    shocks = shocks[(shocks["kind"] == "job_loss") & (shocks["start_date"] >= pd.Timestamp(clean.window_start))
                    & (shocks["end_date"] <= pd.Timestamp(clean.window_end) - timedelta(days=70))]
    shocks = shocks.reset_index(drop=True).rename_axis("shock").reset_index()
    assert len(shocks) >= 10
    pay = tx[tx["type"] == "payment"][["tenancy_id", "posted_date", "amount"]]
    merged = pay.merge(shocks[["shock", "tenancy_id", "start_date", "end_date"]], on="tenancy_id")
    during = merged[merged["posted_date"].between(merged["start_date"], merged["end_date"])]
    after = merged[(merged["posted_date"] > merged["end_date"])
                   & (merged["posted_date"] <= merged["end_date"] + pd.Timedelta(days=60))]
    days = ((shocks["end_date"] - shocks["start_date"]).dt.days + 1).to_numpy()
    rate_during = -during.groupby("shock")["amount"].sum().reindex(shocks["shock"], fill_value=0).to_numpy() / days
    rate_after = -after.groupby("shock")["amount"].sum().reindex(shocks["shock"], fill_value=0).to_numpy() / 60
    assert np.median(rate_during) < 0.5 * np.median(rate_after)


def test_universal_credit_new_claims_show_the_five_week_gap(clean):
    tx, ten = clean.transactions, clean.tenancies
    claims = clean.ground_truth["uc_claims"]
    # (managed migrations from Housing Benefit get a two-week HB run-on, so only new claims and job losses)
    claims = claims[claims["reason"].isin(["move_in_new_claim", "job_loss"])
                    & (claims["claim_start"] >= pd.Timestamp(clean.window_start))
                    & (claims["first_payment"] <= pd.Timestamp(clean.window_end) - timedelta(days=60))]
    claims = claims.merge(ten[["tenancy_id", "end_date"]], on="tenancy_id")
    claims = claims[claims["end_date"].isna()]
    assert len(claims) >= 15
    assert ((claims["first_payment"] - claims["claim_start"]).dt.days == 35).all()
    rows = tx.merge(claims[["tenancy_id", "claim_start", "first_payment"]], on="tenancy_id")
    receipts = rows[rows["type"].isin(["payment", "benefit"])]
    charges = rows[rows["type"] == "charge"]

    def per_claim(frame, lo, hi):
        m = (frame["posted_date"] > frame[lo[0]] + pd.Timedelta(days=lo[1])) & (
            frame["posted_date"] <= frame[hi[0]] + pd.Timedelta(days=hi[1]))
        return frame[m].groupby("tenancy_id", observed=True)["amount"].sum().reindex(claims["tenancy_id"]).fillna(0)

    wait_paid = -per_claim(receipts, ("claim_start", 0), ("first_payment", -1))
    wait_charged = per_claim(charges, ("claim_start", 0), ("first_payment", -1))
    then_paid = -per_claim(receipts, ("first_payment", -1), ("first_payment", 59))
    then_charged = per_claim(charges, ("first_payment", -1), ("first_payment", 59))
    assert wait_paid.sum() < 0.25 * wait_charged.sum()
    assert then_paid.sum() > 0.7 * then_charged.sum()
    # arrears build during the wait
    assert ((wait_charged - wait_paid) > 0).mean() > 0.7


def test_housing_benefit_and_managed_payments_are_paid_to_the_landlord(clean):
    tx = clean.transactions
    hb = tx[tx["reference"] == "Housing Benefit"]
    assert (hb["type"] == "benefit").all() and (hb["method"] == "benefit_direct").all()
    gaps = hb.sort_values("posted_date").groupby("tenancy_id", observed=True)["posted_date"].diff().dt.days.dropna()
    assert (gaps % 28 == 0).mean() > 0.95 and gaps.median() == 28
    apa = tx[tx["reference"] == "UC managed payment"]
    assert len(apa) and (apa["type"] == "benefit").all()
    gaps = apa.sort_values("posted_date").groupby("tenancy_id", observed=True)["posted_date"].diff().dt.days.dropna()
    assert gaps.between(28, 31).mean() > 0.9


def test_events_are_consistent_with_each_other_and_the_transactions(clean):
    ev, tx = clean.events, clean.transactions
    arr = clean.ground_truth["arrangements"]
    # every arrangement outcome in the feed belongs to an arrangement in the truth, ending that day
    for kind, outcome in (("arrangement_broken", "broken"), ("arrangement_completed", "completed")):
        got = ev[ev["type"] == kind][["tenancy_id", "event_date"]].rename(columns={"event_date": "ended_date"})
        want = arr[arr["outcome"] == outcome][["tenancy_id", "ended_date"]]
        assert len(got) and len(got.merge(want, on=["tenancy_id", "ended_date"])) == len(got)
    agreed = ev[ev["type"] == "arrangement_agreed"]
    assert (agreed["amount"] >= 3.7).all() and (agreed["amount"] <= 40).all()
    # after an arrangement is agreed the tenant pays more than the rent, at least for a while
    first = agreed.drop_duplicates("tenancy_id")[["tenancy_id", "event_date"]]
    window = tx.merge(first, on="tenancy_id")
    before = window[(window["posted_date"] <= window["event_date"])
                    & (window["posted_date"] > window["event_date"] - pd.Timedelta(days=84))]
    after = window[(window["posted_date"] > window["event_date"])
                   & (window["posted_date"] <= window["event_date"] + pd.Timedelta(days=84))]
    assert after["amount"].sum() < before["amount"].sum()
    # completion means the balance was cleared
    done = ev[ev["type"] == "arrangement_completed"].drop_duplicates("tenancy_id")
    bal = [balances(tx[tx["tenancy_id"] == t], d).iloc[0] for t, d in
           zip(done["tenancy_id"].head(40), done["event_date"].head(40), strict=True)]
    assert np.all(np.array(bal) <= 0.005)
    # breathing space lasts 60 days; disputes are resolved after they are opened
    bs = ev[ev["type"].isin(["breathing_space_started", "breathing_space_ended"])].sort_values(
        ["tenancy_id", "event_date"])
    starts = bs[bs["type"] == "breathing_space_started"]
    ends = bs[bs["type"] == "breathing_space_ended"]
    paired = starts.merge(ends, on="tenancy_id", suffixes=("", "_end"))
    paired = paired[(paired["event_date_end"] - paired["event_date"]).dt.days == 60]
    assert len(starts) and paired["event_id"].nunique() >= 0.8 * (
        starts["event_date"] <= pd.Timestamp(clean.window_end) - timedelta(days=60)).sum()
    opened = ev[ev["type"] == "dispute_opened"].groupby("tenancy_id", observed=True)["event_date"].min()
    resolved = ev[ev["type"] == "dispute_resolved"].groupby("tenancy_id", observed=True)["event_date"].max()
    both = opened.index.intersection(resolved.index)
    assert len(both) and (resolved[both] > opened[both]).all()
    share_disputes = ev.loc[ev["type"] == "dispute_opened", "tenancy_id"].nunique() / len(clean.tenancies)
    assert 0.005 < share_disputes < 0.08
    # legal stages are rare, named, and only for large arrears
    legal = ev[ev["type"] == "legal_stage"]
    assert legal["note"].astype(str).isin(["NOSP served", "Section 8 notice served", "Notice to quit served",
                                           "Possession claim issued", "Possession order granted",
                                           "Warrant of possession applied", "Eviction"]).all()
    assert 0 < legal["tenancy_id"].nunique() < 0.1 * len(clean.tenancies)
    weeks = legal["amount"].to_numpy() / weekly_rent(clean.tenancies).reindex(legal["tenancy_id"]).to_numpy()
    assert (weeks >= 5.5).all()  # (rent has risen since some of these)
    # officer contacts are far more frequent for tenancies in arrears
    contacts = ev[ev["type"] == "contact_made"].groupby("tenancy_id", observed=True).size()
    gt = clean.ground_truth["tenancies"].set_index("tenancy_id")["archetype"].astype(str)
    per = contacts.reindex(gt.index).fillna(0).groupby(gt).mean()
    assert per["chronic"] > 3 * per["reliable"]


def test_reversals_refunds_and_write_offs(clean):
    tx = clean.transactions
    returned = tx[tx["reference"] == "Returned direct debit"]
    assert len(returned) and (returned["amount"] > 0).all()
    dd = tx[(tx["reference"] == "Direct debit")][["tenancy_id", "posted_date", "amount"]]
    m = returned.merge(dd, on="tenancy_id", suffixes=("", "_dd"))
    m = m[(m["amount"] == -m["amount_dd"]) & (m["posted_date"] > m["posted_date_dd"])
          & (m["posted_date"] <= m["posted_date_dd"] + pd.Timedelta(days=7))]
    assert m["transaction_id"].nunique() >= 0.9 * len(returned)
    assert (tx.loc[tx["type"] == "refund", "amount"] > 0).all()
    assert ((tx["type"] == "fee").sum() > 0) and ((tx["type"] == "write_off").sum() > 0)


# -- circumstances the readiness policy routes on ------------------------------------------------------------------


def _inside(events: pd.DataFrame, periods: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    """The events that fall inside one of the tenancy's periods [start, end) (an end of NaT: still running)."""
    m = events.merge(periods[["tenancy_id", start, end]], on="tenancy_id")
    return m[(m["event_date"] >= m[start]) & (m[end].isna() | (m["event_date"] < m[end]))]


def test_breathing_spaces_of_both_kinds_agree_with_the_truth(clean):
    ev = clean.events
    ws, we = pd.Timestamp(clean.window_start), pd.Timestamp(clean.window_end)
    bs = clean.ground_truth["breathing_space"]
    assert list(bs.columns) == ["tenancy_id", "kind", "start_date", "end_date", "treatment_end_date"]
    standard, crisis = bs[bs["kind"] == "standard"], bs[bs["kind"] == "mental_health_crisis"]
    assert len(standard) and len(crisis) and 0.08 < len(crisis) / len(bs) < 0.4
    # a standard one lasts 60 days; a moratorium as long as the crisis treatment (14-240 days) plus 30 days
    assert ((standard["end_date"] - standard["start_date"]).dt.days.dropna() == 60).all()
    assert standard["treatment_end_date"].isna().all()
    treatment = (crisis["treatment_end_date"] - crisis["start_date"]).dt.days.dropna()
    assert len(treatment) and treatment.between(14, 240).all()
    assert ((crisis["end_date"] - crisis["treatment_end_date"]).dt.days.dropna() == 30).all()
    running = crisis[crisis["end_date"].isna()]
    assert (running["treatment_end_date"].isna() | (running["treatment_end_date"] > we - timedelta(days=30))).all()
    # the feed shows each start, treatment end and end that falls in the window, on its day
    assert _pairs(_of_type(ev, "breathing_space_started"), "event_date") == _pairs(
        standard[standard["start_date"] >= ws], "start_date")
    assert _pairs(_of_type(ev, "mental_health_moratorium_started"), "event_date") == _pairs(
        crisis[crisis["start_date"] >= ws], "start_date")
    assert _pairs(_of_type(ev, "crisis_treatment_ended"), "event_date") == _pairs(
        crisis[crisis["treatment_end_date"] >= ws], "treatment_end_date")
    assert _pairs(_of_type(ev, "breathing_space_ended"), "event_date") == _pairs(bs[bs["end_date"] >= ws], "end_date")
    # no arrangement is broken, no legal step taken and no proceedings warned of in one; contact is reduced
    assert _inside(_of_type(ev, "arrangement_broken", "legal_stage", "proceedings_warning_sent"), bs,
                   "start_date", "end_date").empty
    contacts = _of_type(ev, "contact_made", "contact_attempted")
    ended = bs[bs["end_date"].notna() & (bs["start_date"] >= ws + timedelta(days=60))]
    days = (ended["end_date"] - ended["start_date"]).dt.days.sum()
    during = len(_inside(contacts, ended, "start_date", "end_date")) / days
    before = ended.assign(before=ended["start_date"] - timedelta(days=60))
    ahead = len(_inside(contacts, before, "before", "start_date")) / (60 * len(before))
    assert during < 0.5 * ahead


def test_disputes_agree_with_the_truth(clean):
    ev = clean.events
    ws = pd.Timestamp(clean.window_start)
    disputes = clean.ground_truth["disputes"]
    assert list(disputes.columns) == ["tenancy_id", "opened_date", "resolved_date"]
    assert disputes["resolved_date"].isna().any() and (disputes["resolved_date"] > disputes["opened_date"]).any()
    assert (disputes["resolved_date"].isna() | (disputes["resolved_date"] > disputes["opened_date"])).all()
    assert _pairs(_of_type(ev, "dispute_opened"), "event_date") == _pairs(
        disputes[disputes["opened_date"] >= ws], "opened_date")
    assert _pairs(_of_type(ev, "dispute_resolved"), "event_date") == _pairs(
        disputes[disputes["resolved_date"] >= ws], "resolved_date")
    # no legal step is taken while a dispute is open
    assert _inside(_of_type(ev, "legal_stage"), disputes, "opened_date", "resolved_date").empty


def test_benefit_claims_are_pending_from_the_claim_to_the_first_payment(clean):
    ev, tx = clean.events, clean.transactions
    ws, we = pd.Timestamp(clean.window_start), pd.Timestamp(clean.window_end)
    claims = clean.ground_truth["benefit_claims"]
    assert list(claims.columns) == ["tenancy_id", "benefit", "claim_date", "decided_date"]
    assert set(claims["benefit"].astype(str)) == {"universal_credit", "housing_benefit"}
    assert (claims["claim_date"] <= we).all() and claims["decided_date"].isna().any()
    assert (claims["decided_date"].isna() | (claims["decided_date"] > claims["claim_date"])).all()
    uc = claims[claims["benefit"] == "universal_credit"].dropna()
    assert ((uc["decided_date"] - uc["claim_date"]).dt.days == 35).all()
    hb = claims[claims["benefit"] == "housing_benefit"].dropna()
    assert (hb["decided_date"] - hb["claim_date"]).dt.days.between(21, 77).all()
    # events for the claims decided in the window or pending at its end
    shown = claims[~(claims["decided_date"] < ws)]
    made, decided = _of_type(ev, "benefit_claim_made"), _of_type(ev, "benefit_claim_decided")
    assert _pairs(made, "event_date") == _pairs(shown, "claim_date")
    assert _pairs(decided, "event_date") == _pairs(shown.dropna(), "decided_date")
    assert set(made["note"].astype(str)) == {"Universal Credit", "Housing Benefit"}
    # a Housing Benefit claim decided in the window is first paid that day (unless a benefit shock holds it)
    hb_paid = tx[tx["reference"] == "Housing Benefit"].groupby("tenancy_id", observed=True)["posted_date"].min()
    decided_hb = hb[hb["decided_date"] >= ws].set_index("tenancy_id")["decided_date"]
    assert (hb_paid.reindex(decided_hb.index) == decided_hb).mean() > 0.9


def test_contact_attempts_fail_for_some_and_come_in_bursts(clean):
    ev = clean.events
    ws = pd.Timestamp(clean.window_start)
    attempts = clean.ground_truth["contact_attempts"]
    assert list(attempts.columns) == ["tenancy_id", "date", "reached"]
    shown = attempts[attempts["date"] >= ws]
    assert _pairs(_of_type(ev, "contact_made"), "event_date") == _pairs(shown[shown["reached"]], "date")
    assert _pairs(_of_type(ev, "contact_attempted"), "event_date") == _pairs(shown[~shown["reached"]], "date")
    assert 0.1 < 1 - shown["reached"].mean() < 0.5
    # tenants who avoid contact are reached less often
    p_no_answer = clean.ground_truth["tenancies"].set_index("tenancy_id")["p_no_answer"]
    failed = 1 - shown.groupby("tenancy_id", observed=True)["reached"].mean()
    avoiders = p_no_answer.reindex(failed.index) > 0.5
    assert failed[avoiders].mean() > failed[~avoiders].mean() + 0.3
    # an arrangement is agreed only at a contact that reached the tenant
    agreed = _of_type(ev, "arrangement_agreed")
    assert _pairs(agreed, "event_date") <= _pairs(_of_type(ev, "contact_made"), "event_date")
    # a failed attempt is retried within a few days, so some tenancies see three attempts or more within 7 days
    shown = shown.sort_values(["tenancy_id", "date"])
    next_date = shown.groupby("tenancy_id", observed=True)["date"].shift(-1)
    retried = (next_date - shown["date"]).dt.days[~shown["reached"]]
    assert retried.between(1, 5).mean() > 0.6
    third = shown.groupby("tenancy_id", observed=True)["date"].shift(2)
    assert shown.loc[(shown["date"] - third).dt.days < 7, "tenancy_id"].nunique() >= 5


def test_rent_statements_and_proceedings_warnings(clean):
    ev, ten = clean.events, clean.tenancies
    statements = _of_type(ev, "rent_statement_sent")
    quarterly = statements[statements["note"] == "quarterly rent statement"].sort_values(["tenancy_id", "event_date"])
    gaps = quarterly.groupby("tenancy_id", observed=True)["event_date"].diff().dt.days.dropna()
    assert len(gaps) and 80 <= gaps.median() <= 100 and gaps.min() >= 75
    # to tenancies at least a week in arrears (rent has risen since some of these)
    weeks = quarterly["amount"].to_numpy() / weekly_rent(ten).reindex(quarterly["tenancy_id"]).to_numpy()
    assert (weeks >= 0.85).all()
    # and with every notice served
    legal = _of_type(ev, "legal_stage")
    notices = legal[legal["note"].isin(["NOSP served", "Section 8 notice served", "Notice to quit served"])]
    assert len(notices) and _pairs(notices, "event_date") <= _pairs(
        statements[statements["note"] == "rent statement with notice"], "event_date")
    # a possession claim only after a warning at least 14 days old, sent at least 28 days after the notice
    warnings = _of_type(ev, "proceedings_warning_sent")
    claims = legal[legal["note"] == "Possession claim issued"]
    assert len(warnings) and len(claims)
    m = claims.merge(warnings, on="tenancy_id", suffixes=("", "_warning"))
    m = m[(m["event_date_warning"] <= m["event_date"] - timedelta(days=14))
          & (m["event_date_warning"] > m["event_date"] - timedelta(days=90))]
    assert set(claims["event_id"]) == set(m["event_id"])
    w = warnings.merge(notices, on="tenancy_id", suffixes=("", "_notice"))
    w = w[w["event_date_notice"] <= w["event_date"] - timedelta(days=28)]
    assert set(w["event_id"]) == set(warnings["event_id"])


def test_receipts_say_what_they_paid_for(clean):
    tx, ten = clean.transactions, clean.tenancies
    we = pd.Timestamp(clean.window_end)
    receipt = tx["type"].isin(contract.RECEIPT_TYPES)
    assert tx.loc[receipt, "allocation"].notna().all() and tx.loc[~receipt, "allocation"].isna().all()
    payments = tx[tx["type"] == "payment"]
    unallocated = tx[tx["allocation"] == "unallocated"]
    assert 0.001 < len(unallocated) / len(payments) < 0.006
    assert (unallocated["type"] == "payment").all() and (unallocated["method"] != "direct_debit").all()
    assert (unallocated["posted_date"] > we - timedelta(days=90)).sum() >= 5
    # deposits: private and temporary lets, at move-in
    deposits = tx[tx["allocation"] == "deposit"].merge(ten, on="tenancy_id")
    assert len(deposits) and (deposits["reference"] == "Deposit").all() and (deposits["type"] == "payment").all()
    assert deposits["tenure_type"].isin(["assured_shorthold", "licence"]).all()
    assert (deposits["posted_date"] == deposits["start_date"]).all()
    # the truth lists exactly the receipts not allocated to rent
    truth = clean.ground_truth["allocations"]
    assert list(truth.columns) == ["transaction_id", "tenancy_id", "posted_date", "allocation"]
    other = tx[tx["allocation"].isin(["unallocated", "deposit"])]
    pd.testing.assert_frame_equal(truth.reset_index(drop=True), other[truth.columns].reset_index(drop=True),
                                  check_categorical=False)


def test_reported_balances_match_the_feeds_except_where_recorded(clean):
    ten, tx = clean.tenancies, clean.transactions
    truth = clean.ground_truth["reported_balances"]
    assert list(truth.columns) == ["tenancy_id", "reported_date", "reported_balance", "ledger_balance", "explained",
                                   "unexplained_reason"]
    assert (ten["reported_balance_date"] == pd.Timestamp(clean.window_end)).all()
    assert ten["reported_balance"].notna().all()
    assert np.allclose(ten["reported_balance"], truth["reported_balance"])
    feeds = balances(tx).reindex(ten["tenancy_id"]).fillna(0.0).to_numpy()
    assert np.allclose(truth["ledger_balance"], feeds, atol=0.005)
    differs = ~np.isclose(ten["reported_balance"].to_numpy(), feeds, atol=0.005)
    assert (differs == ~truth["explained"].to_numpy()).all()
    unexplained = truth[~truth["explained"]]
    assert 0.003 < len(unexplained) / ten["end_date"].isna().sum() < 0.025
    assert ten.set_index("tenancy_id").loc[unexplained["tenancy_id"], "end_date"].isna().all()
    assert set(unexplained["unexplained_reason"].astype(str)) <= {"charge_not_exported", "payment_not_exported"}
    assert truth.loc[truth["explained"], "unexplained_reason"].isna().all()


# -- monitoring-only attributes -----------------------------------------------------------------------------------


def test_monitoring_attributes_correlate_with_circumstances(clean):
    ten = clean.tenancies
    for column in contract.MONITORING_ONLY_COLUMNS:
        assert ten[column].notna().all()
    old = (ten["age_band"] == "65+").groupby(ten["benefit_type"].astype(str)).mean()
    assert old["housing_benefit"] > old["none"] + 0.2 > old["universal_credit"] + 0.2
    letter = (ten["age_band"] == "65+").groupby(ten["preferred_channel"].astype(str) == "letter").mean()
    assert letter[True] > letter[False] + 0.1
    disabled = (ten["disability"] == "yes").groupby(ten["vulnerable"]).mean()
    assert disabled[True] > disabled[False] + 0.2
    assert set(ten["ethnicity"].astype(str)) >= {"white", "asian", "black"}


def test_monitoring_attributes_never_drive_behaviour():
    pop = draw_population(300, date(2025, 10, 31), END, seed=2)
    assert not set(pop.a) & {*contract.MONITORING_ONLY_COLUMNS, "age", "ethnic", "sex"}
    base = _simulate(500, 1.0, 9, END, False)
    other = _simulate(500, 1.0, 9, END, False, monitoring_seed=12345)
    monitoring = list(contract.MONITORING_ONLY_COLUMNS)
    # the monitoring columns are drawn differently ...
    changed = (base.tenancies[monitoring].astype(str) != other.tenancies[monitoring].astype(str)).any(axis=1)
    assert changed.mean() > 0.5
    # ... and nothing else moves: not a transaction, event or circumstance
    pd.testing.assert_frame_equal(base.transactions, other.transactions)
    pd.testing.assert_frame_equal(base.events, other.events)
    rest = [c for c in base.tenancies.columns if c not in monitoring]
    pd.testing.assert_frame_equal(base.tenancies[rest], other.tenancies[rest])
    pd.testing.assert_frame_equal(base.ground_truth["tenancies"], other.ground_truth["tenancies"])


# -- dirty mode ---------------------------------------------------------------------------------------------------


def test_dirty_faults_are_recorded_exactly(dirty):
    faults = dirty.ground_truth["dirty_faults"]
    assert list(faults.columns) == list(FAULT_COLUMNS)
    counts = faults.groupby(["feed", "kind"]).size()
    tx, ten, ev = dirty.transactions, dirty.tenancies, dirty.events
    known = set(ten["tenancy_id"])
    assert counts["transactions", "duplicate"] == tx.duplicated().sum() > 0
    assert counts["events", "duplicate"] == ev.duplicated().sum() > 0
    assert counts["tenancies", "duplicate"] == ten.duplicated().sum() > 0
    assert counts["transactions", "unknown_tenancy"] == (~tx["tenancy_id"].isin(known)).sum() > 0
    assert counts["events", "unknown_tenancy"] == (~ev["tenancy_id"].isin(known)).sum() > 0
    assert counts["transactions", "amount_currency"] == tx["amount"].str.contains("£", na=False).sum() > 0
    assert counts["transactions", "amount_parentheses"] == tx["amount"].str.startswith("(", na=False).sum() > 0
    assert counts["transactions", "missing_amount"] == tx["amount"].isna().sum() > 0
    uk = r"\d{2}/\d{2}/\d{4}"
    assert counts["transactions", "uk_date"] == tx["posted_date"].str.fullmatch(uk, na=False).sum() - (
        faults[(faults["feed"] == "transactions") & (faults["kind"] == "bad_date")]["value"].str.fullmatch(uk).sum())
    distinct = tx.drop_duplicates()
    assert counts["transactions", "conflict"] == distinct["transaction_id"].duplicated().sum() > 0
    assert counts["transactions", "unknown_type"] == (~tx["type"].str.strip().str.lower().isin(
        contract.TRANSACTION_TYPES)).sum()
    assert counts["tenancies", "case_variant"] == (~ten["rent_frequency"].isin(contract.RENT_FREQUENCIES)).sum()
    # every fault row points at the value it reports
    for feed, key in (("tenancies", "tenancy_id"), ("transactions", "transaction_id"), ("events", "event_id")):
        frame = getattr(dirty, feed)
        mine = faults[faults["feed"] == feed]
        assert (frame[key].to_numpy(dtype=object)[mine["row"]] == mine["key"].to_numpy()).all()
        for column, edits in mine[mine["column"] != ""].groupby("column"):
            got = _text(frame[column]).to_numpy()[edits["row"]]
            assert list(got) == list(edits["value"]), (feed, column)


def test_dirty_mode_keeps_every_clean_row():
    clean = simulate_portfolio(600, years=1.0, seed=5, end_date=END)
    dirty = simulate_portfolio(600, years=1.0, seed=5, end_date=END, dirty=True)
    faults = dirty.ground_truth["dirty_faults"]
    for feed in ("tenancies", "transactions", "events"):
        added = faults[(faults["feed"] == feed) & faults["kind"].isin(["duplicate", "conflict"])]
        assert len(getattr(dirty, feed)) == len(getattr(clean, feed)) + len(added)
        touched = set(faults.loc[faults["feed"] == feed, "key"])
        key = {"tenancies": "tenancy_id", "transactions": "transaction_id", "events": "event_id"}[feed]
        c = getattr(clean, feed)
        untouched_clean = c[~c[key].isin(touched)]
        d = getattr(dirty, feed)
        untouched_dirty = d[~d[key].isin(touched)]
        assert len(untouched_clean) == len(untouched_dirty)
    assert clean.ground_truth["dirty_faults"].empty


# -- writing ------------------------------------------------------------------------------------------------------


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_write_portfolio_files_truth_location_and_byte_identity(tmp_path):
    portfolio = simulate_portfolio(250, years=1.0, seed=8)
    out = tmp_path / "delivery"
    paths = write_portfolio(portfolio, out)
    assert sorted(p.name for p in out.iterdir()) == ["dwp_schedules.csv", "events.csv", "suspense.csv",
                                                     "tenancies.csv", "transactions.csv"]
    truth = tmp_path / "delivery_truth"
    assert {p.name for p in truth.iterdir()} >= {"tenancies.csv", "shocks.csv", "uc_claims.csv", "dirty_faults.csv"}
    assert all(path.exists() for path in paths.values())
    first = {k: _digest(p) for k, p in paths.items()}
    write_portfolio(portfolio, out)  # overwrite
    again = write_portfolio(simulate_portfolio(250, years=1.0, seed=8), tmp_path / "other" / "delivery")
    assert {k: _digest(p) for k, p in paths.items()} == first
    assert {k: _digest(p) for k, p in again.items()} == first
    with pytest.raises(ValueError):
        write_portfolio(portfolio, out, truth_dir=out / "truth")

    # the CSV is plain: ISO dates, 2-dp amounts, exact vocabulary, and reads back to the same values
    tx = pd.read_csv(paths["transactions"], dtype=str, keep_default_na=False)
    assert tx["posted_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert tx["amount"].str.fullmatch(r"-?\d+\.\d{2}").all()
    assert np.allclose(tx["amount"].astype(float), portfolio.transactions["amount"])
    ten = pd.read_csv(paths["tenancies"], dtype=str, keep_default_na=False)
    assert (ten["end_date"] == "").sum() == portfolio.tenancies["end_date"].isna().sum()
    assert ten["vulnerable"].isin(["true", "false"]).all()

    pq_paths = write_portfolio(portfolio, tmp_path / "pq", fmt="parquet")
    back = pd.read_parquet(pq_paths["transactions"])
    assert len(back) == len(portfolio.transactions)
    assert np.allclose(back["amount"], portfolio.transactions["amount"])
    assert (tmp_path / "pq_truth" / "shocks.parquet").exists()


def test_dirty_csv_keeps_the_faulty_text(tmp_path, dirty):
    paths = write_portfolio(dirty, tmp_path / "d")
    tx = pd.read_csv(paths["transactions"], dtype=str, keep_default_na=False)
    assert len(tx) == len(dirty.transactions)
    faults = dirty.ground_truth["dirty_faults"]
    currency = faults[(faults["feed"] == "transactions") & (faults["kind"] == "amount_currency")]
    assert tx["amount"].str.contains("£").sum() == len(currency) > 0
    assert tx["amount"].str.fullmatch(r"\(\d[\d,]*\.\d{2}\)").sum() == (
        (faults["feed"] == "transactions") & (faults["kind"] == "amount_parentheses")).sum()
    assert (tx["tenancy_id"].str.strip() != tx["tenancy_id"]).sum() == 0
    written = pd.read_csv(paths["truth/dirty_faults"], dtype={"original": str, "value": str}, keep_default_na=False)
    assert len(written) == len(faults)
    assert (written["line"] == written["row"] + 2).all()
    # the line numbers point at the faulty text in the file
    for row in written[(written["feed"] == "transactions") & (written["column"] == "amount")].itertuples():
        assert tx.at[row.row, "amount"] == row.value


# -- windows and scale --------------------------------------------------------------------------------------------


def test_windows_and_small_portfolios():
    assert window_start_for(date(2026, 10, 31), 2.0) == date(2024, 10, 31)
    assert window_start_for(date(2028, 2, 29), 1.0) == date(2027, 2, 28)
    assert window_start_for(date(2026, 10, 31), 0.5) == date(2026, 10, 31) - timedelta(days=183)
    tiny = simulate_portfolio(5, years=0.5, seed=1, end_date=date(2025, 6, 30))
    assert len(tiny.tenancies) == 5
    assert tiny.transactions["posted_date"].min() >= pd.Timestamp(tiny.window_start)
    assert tiny.transactions["posted_date"].max() <= pd.Timestamp("2025-06-30")
    with pytest.raises(ValueError):
        simulate_portfolio(0)


# -- the monthly-statement shape ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def monthly() -> Portfolio:
    """The population of `clean` (same seed), exported as a letting agent's monthly statement."""
    return simulate_portfolio(2000, years=2.0, seed=11, end_date=END, shape="monthly_statement")


def _rent_in_force(portfolio: Portfolio) -> pd.DataFrame:
    """Tenants' payments towards rent (``paid``, positive) with the rent charged at the tenancy's last statement on
    or before each (``rent``)."""
    tx = portfolio.transactions.assign(tenancy_id=lambda f: f["tenancy_id"].astype(str))
    rent = tx.loc[tx["reference"] == "Rent", ["tenancy_id", "posted_date", "amount"]].rename(columns={"amount": "rent"})
    paid = tx.loc[(tx["type"] == "payment") & (tx["allocation"] == "rent"), ["tenancy_id", "posted_date", "amount"]]
    joined = pd.merge_asof(paid.sort_values("posted_date"), rent.sort_values("posted_date"), on="posted_date",
                           by="tenancy_id").dropna(subset=["rent"])
    return joined.assign(paid=-joined["amount"])


def test_monthly_statement_charges_every_rent_monthly_on_the_statement_day(monthly):
    ten, tx = monthly.tenancies, monthly.transactions
    assert (ten["rent_frequency"] == "monthly").all() and monthly.shape == "monthly_statement"
    charges = tx[tx["type"] == "charge"]
    assert set(charges["reference"].astype(str)) == {"Rent", "Rent to first statement"}
    rent = charges[charges["reference"] == "Rent"]
    assert (rent["posted_date"].dt.day == STATEMENT_DAY).all()
    # one statement charge a month, every month of the window, for tenancies live throughout it
    month = rent["posted_date"].dt.to_period("M")
    assert not pd.DataFrame({"t": rent["tenancy_id"], "m": month}).duplicated().any()
    throughout = ten.loc[(ten["start_date"] < pd.Timestamp(monthly.window_start)) & ten["end_date"].isna(),
                         "tenancy_id"]
    per_tenancy = rent[rent["tenancy_id"].isin(throughout)].groupby("tenancy_id", observed=True).size()
    assert len(per_tenancy) > 1000 and (per_tenancy == 24).all()
    # rents change only at the April statement, and the feed's rent is the last one charged
    ordered = rent.sort_values(["tenancy_id", "posted_date"])
    changed = ordered["amount"].ne(ordered.groupby("tenancy_id", observed=True)["amount"].shift()) & ordered[
        "tenancy_id"].eq(ordered["tenancy_id"].shift())
    assert changed.sum() > 1000 and (ordered.loc[changed, "posted_date"].dt.month == 4).all()
    last = ordered.groupby("tenancy_id", observed=True)["amount"].last()
    assert (last == ten.set_index("tenancy_id")["rent_amount"].reindex(last.index)).all()
    # a tenancy starting between statements is charged the part month (a month's rent × 12 / 365 a day) when it
    # starts, once
    part = charges[charges["reference"] == "Rent to first statement"].merge(
        ten[["tenancy_id", "start_date"]], on="tenancy_id")
    assert len(part) > 50 and part["tenancy_id"].is_unique
    assert (part["posted_date"] == part["start_date"]).all() and (part["posted_date"].dt.day != STATEMENT_DAY).all()
    first = rent.groupby("tenancy_id", observed=True)["amount"].first()
    days = (part["posted_date"] + pd.offsets.MonthBegin(1) - part["posted_date"]).dt.days.to_numpy()
    ratio = part["amount"].to_numpy() / first.reindex(part["tenancy_id"]).to_numpy()
    assert (np.abs(ratio - days * 12 / 365) < 0.01).mean() > 0.9  # (a first statement in April charges the new rent)


def test_monthly_statement_payments_are_irregular_sums(monthly, clean):
    paid = _rent_in_force(monthly)
    assert len(paid) > 20_000
    ratio = (paid["paid"] / paid["rent"]).to_numpy()
    exact = np.isclose(paid["paid"], paid["rent"], atol=0.005)
    multiple = np.isclose(ratio, np.rint(ratio), atol=1e-4) & (np.rint(ratio) >= 1)
    assert exact.mean() < 0.3 and (~exact & ~multiple).mean() > 0.7
    # part payments and round sums (£300 against £437.50), overpayments
    assert (ratio < 0.95).mean() > 0.3 and (ratio > 1.2).mean() > 0.05
    round_sum = np.isclose(paid["paid"] % 10, 0) & ~np.isclose(paid["rent"] % 10, 0)
    weekly = _rent_in_force(clean)
    weekly_round = np.isclose(weekly["paid"] % 10, 0) & ~np.isclose(weekly["rent"] % 10, 0)
    assert round_sum.mean() > 0.2 > 4 * weekly_round.mean()
    # as each tenant's hidden habit says: exact payers (every direct debit) pay the rent to the penny, round-sum and
    # odd-sum payers whole pounds (the rent only when it is a round sum itself), odd-sum payers a different sum from
    # one payment to the next
    habits = monthly.ground_truth["payment_habits"]
    assert list(habits.columns) == ["tenancy_id", "habit", "round_fineness", "p_round_down", "odd_sum_sigma",
                                    "p_overpay"]
    truth = monthly.ground_truth["tenancies"][["tenancy_id", "pays_by"]].merge(habits, on="tenancy_id")
    assert (truth.loc[truth["pays_by"] == "direct_debit", "habit"] == "exact").all()
    assert set(truth["habit"].astype(str)) == {"exact", "round_sum", "odd_sum"}
    paid = paid.merge(truth.assign(tenancy_id=truth["tenancy_id"].astype(str)), on="tenancy_id")
    shaped = paid[paid["habit"] != "exact"]
    assert np.isclose(shaped["paid"], shaped["rent"], atol=0.005).mean() < 0.01
    assert np.isclose(shaped["paid"] % 1, 0).mean() > 0.95
    odd = paid[paid["habit"] == "odd_sum"].groupby("tenancy_id")["paid"].agg(["nunique", "size"])
    odd = odd[odd["size"] >= 6]
    assert len(odd) > 50 and (odd["nunique"] / odd["size"]).median() > 0.5


def test_monthly_statement_has_no_events_feed_and_keeps_them_in_the_truth(monthly, clean, tmp_path):
    assert monthly.events.empty and list(monthly.events.columns) == list(contract.EVENTS.columns)
    hidden = monthly.ground_truth["unexported_events"]
    assert list(hidden.columns) == list(contract.EVENTS.columns)
    assert set(hidden["type"].astype(str)) == set(contract.EVENT_TYPES)
    # what officers did is the truth's: every arrangement outcome belongs to an arrangement, ending that day
    arrangements = monthly.ground_truth["arrangements"]
    for kind, outcome in (("arrangement_broken", "broken"), ("arrangement_completed", "completed")):
        got = _of_type(hidden, kind)[["tenancy_id", "event_date"]].rename(columns={"event_date": "ended_date"})
        want = arrangements[arrangements["outcome"] == outcome][["tenancy_id", "ended_date"]]
        assert len(got) and len(got.merge(want, on=["tenancy_id", "ended_date"])) == len(got)
    # the delivery has no events file, even where an earlier portfolio's was written
    out = tmp_path / "delivery"
    write_portfolio(simulate_portfolio(50, years=0.5, seed=2, end_date=END), out)
    assert (out / "events.csv").exists()
    paths = write_portfolio(monthly, out)
    assert sorted(p.name for p in out.iterdir()) == ["dwp_schedules.csv", "suspense.csv", "tenancies.csv",
                                                     "transactions.csv"]
    assert "events" not in paths and {"truth/payment_habits", "truth/unexported_events"} <= set(paths)
    assert "payment_habits" not in clean.ground_truth and "unexported_events" not in clean.ground_truth


def test_monthly_statement_keeps_the_hidden_truth_of_the_weekly_shape(monthly, clean):
    """The same population and hidden propensities as the default shape for the same seed; only the rent schedule,
    the payment sums and the export differ."""
    propensities = ["tenancy_id", "archetype", "sector", "p_skip", "p_partial", "partial_share_low",
                    "partial_share_high", "catchup_share", "p_catchup", "p_keep_arrangement", "p_agree_arrangement",
                    "shock_rate_per_year", "shock_count", "delay_base_days", "delay_jitter_days", "p_no_answer",
                    "pays_in_advance", "pays_by", "benefit_at_start", "hb_coverage", "uc_coverage"]
    pd.testing.assert_frame_equal(monthly.ground_truth["tenancies"][propensities],
                                  clean.ground_truth["tenancies"][propensities])
    for name in ("shocks", "patches"):
        pd.testing.assert_frame_equal(monthly.ground_truth[name], clean.ground_truth[name])
    claims = monthly.ground_truth["uc_claims"].columns.drop("managed_payment_from")  # (requested for arrears)
    pd.testing.assert_frame_equal(monthly.ground_truth["uc_claims"][claims], clean.ground_truth["uc_claims"][claims])
    same = ["tenancy_id", "patch", "start_date", "tenure_type", "benefit_type", "preferred_channel", "vulnerable"]
    pd.testing.assert_frame_equal(monthly.tenancies[same], clean.tenancies[same])
    assert len(monthly.ground_truth["breathing_space"]) and len(monthly.ground_truth["contact_attempts"])


def test_monthly_statement_arrears_are_plausible_and_follow_behaviour(monthly, clean):
    s, weekly = summarise(monthly), summarise(clean)
    # at the window end (the day before a statement) only rent overdue since the last statement shows, so fewer
    # owe anything than in a weekly ledger (which also shows this week's rent not yet paid)
    assert 0.08 <= s["share_positive_balance"] <= 0.40
    assert 0.02 <= s["share_4_weeks"] <= 0.15
    assert 0.5 * weekly["share_4_weeks"] <= s["share_4_weeks"] <= 1.5 * weekly["share_4_weeks"]
    # predictable from history, but not trivially (compare simulator.plausibility's bands for the weekly shape)
    assert 0.75 <= s["auc_balance_13w"] <= 0.97
    assert 0.5 < s["auc_days_since_receipt_13w"] < 0.9
    # the hidden propensities still drive arrears
    ten = monthly.tenancies
    weeks = balances(monthly.transactions).reindex(ten["tenancy_id"]).fillna(0) / weekly_rent(ten).reindex(
        ten["tenancy_id"]).to_numpy()
    live = ten.set_index("tenancy_id")["end_date"].isna()
    archetype = monthly.ground_truth["tenancies"].set_index("tenancy_id")["archetype"].astype(str)
    owing4 = (weeks >= 4)[live].groupby(archetype[live]).mean()
    assert owing4["chronic"] > owing4["irregular"] > owing4["reliable"]
    assert owing4["shock_prone"] > owing4["reliable"] and owing4["reliable"] < 0.05
    truth = monthly.ground_truth["tenancies"].set_index("tenancy_id")["closing_balance"]
    computed = balances(monthly.transactions).reindex(truth.index).fillna(0.0)
    assert np.allclose(computed.to_numpy(), truth.to_numpy(), atol=0.005)


@pytest.mark.parametrize("dirty", [False, True], ids=["clean", "dirty"])
def test_monthly_statement_delivery_ingests_and_reconciles(tmp_path, dirty):
    portfolio = simulate_portfolio(300, years=1.0, seed=5, end_date=END, shape="monthly_statement", dirty=dirty)
    again = simulate_portfolio(300, years=1.0, seed=5, end_date=END, shape="monthly_statement", dirty=dirty)
    pd.testing.assert_frame_equal(portfolio.transactions, again.transactions)
    write_portfolio(portfolio, tmp_path / "delivery")
    with open_ledger(f"duckdb:///{tmp_path / 'ledger.duckdb'}") as ledger:
        summary = ingest_delivery(ledger, tmp_path / "delivery", tmp_path / "quarantine", Clock(END))
        counts = ledger.counts()
        stored = ledger.balances()
    assert set(summary.feeds) == {"tenancies", "transactions", "suspense", "dwp_schedules"} and counts["events"] == 0
    for feed in summary.feeds.values():
        assert feed.reconciles and feed.read == len(getattr(portfolio, feed.feed)), feed
    if dirty:
        assert summary.feeds["transactions"].quarantined > 0 and summary.feeds["transactions"].duplicate > 0
        return
    assert all(feed.accepted == feed.read for feed in summary.feeds.values())
    truth = portfolio.ground_truth["tenancies"].set_index("tenancy_id")["closing_balance"]
    ledger_balance = stored.set_index("tenancy_id")["balance_pence"].reindex(truth.index.astype(str)).fillna(0)
    assert np.allclose(ledger_balance.to_numpy() / 100, truth.to_numpy(), atol=0.005)


def test_shape_is_one_of_the_shapes():
    assert SHAPES == ("weekly", "monthly_statement")
    with pytest.raises(ValueError, match="shape must be one of weekly, monthly_statement"):
        simulate_portfolio(10, shape="fortnightly")


def test_simulate_verb_writes_a_monthly_statement_delivery(home, tmp_path):
    help_text = words(invoke("simulate", "--help"))
    assert "--shape" in help_text and "monthly_statement" in help_text
    ok("simulate", "--tenancies", "100", "--years", "0.5", "--shape", "monthly_statement", "--out",
       str(tmp_path / "letting"))
    assert sorted(p.name for p in (tmp_path / "letting").iterdir()) == ["dwp_schedules.csv", "suspense.csv",
                                                                        "tenancies.csv", "transactions.csv"]
    tenancies = pd.read_csv(tmp_path / "letting" / "tenancies.csv")
    assert (tenancies["rent_frequency"] == "monthly").all()
    bad = invoke("simulate", "--tenancies", "100", "--shape", "fortnightly", "--out", str(tmp_path / "bad"))
    assert bad.exit_code == 2 and "monthly_statement" in words(bad) and not (tmp_path / "bad").exists()


def test_simulate_verb_ends_the_history_on_the_end_date(home, tmp_path):
    ok("simulate", "--tenancies", "100", "--years", "0.5", "--end-date", "2025-06-30", "--out", str(tmp_path / "d"))
    posted = pd.to_datetime(pd.read_csv(tmp_path / "d" / "transactions.csv")["posted_date"])
    assert posted.max() == pd.Timestamp("2025-06-30") and posted.min() >= pd.Timestamp("2024-12-28")  # half a year
