"""DWP schedule reconciliation on hand-built books: a missing line flags exactly its tenancy, short, late and unpaid
credits are told apart, lines find their tenancy without a reference, and the lines still to come."""

from __future__ import annotations

import pandas as pd
import pytest

from features.schedules import FLAGS, expected_schedule_lines, flagged, reconcile, settlements

RUNS = pd.date_range("2024-01-08", periods=6, freq="28D")  # Housing Benefit, 4-weekly
UC_DAYS = pd.to_datetime([f"2024-{month:02d}-15" for month in range(1, 7)])  # Universal Credit, monthly
AMOUNT = {"T1": 40000, "T2": 35000, "T3": 42000, "T4": 51000}


def books() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Four tenancies paid in full on every line: T1-T3 on Housing Benefit runs (T3's lines carry its tenancy id
    only on the first; its claimant reference is the same throughout), T4 on monthly Universal Credit."""
    lines, postings = [], []
    for k, day in enumerate(RUNS):
        for tenancy in ("T1", "T2", "T3"):
            reference = tenancy if tenancy != "T3" or k == 0 else None
            lines.append({"settlement_number": f"HB{k + 1:03d}", "line_reference": f"HB-{tenancy}",
                          "payment_date": day, "amount_pence": AMOUNT[tenancy], "tenancy_reference": reference,
                          "scheme": "housing_benefit"})
            postings.append({"tenancy_id": tenancy, "posted_date": day, "amount_pence": -AMOUNT[tenancy]})
    for k, day in enumerate(UC_DAYS):
        lines.append({"settlement_number": f"UC{k + 1:03d}", "line_reference": "UC-T4", "payment_date": day,
                      "amount_pence": AMOUNT["T4"], "tenancy_reference": "t4 ", "scheme": "universal_credit"})
        postings.append({"tenancy_id": "T4", "posted_date": day, "amount_pence": -AMOUNT["T4"]})
    register = pd.DataFrame({"tenancy_id": ["T1", "T2", "T3", "T4"], "end_date": pd.NaT,
                             "benefit_type": ["housing_benefit"] * 3 + ["universal_credit"]})
    return pd.DataFrame(lines), pd.DataFrame(postings), register


def without(frame: pd.DataFrame, **match) -> pd.DataFrame:
    drop = pd.Series(True, index=frame.index)
    for column, value in match.items():
        drop &= frame[column] == value
    assert drop.sum() == 1
    return frame[~drop].reset_index(drop=True)


def test_clean_books_flag_nothing_and_every_line_finds_its_tenancy() -> None:
    lines, postings, register = books()
    reconciled = reconcile(lines, postings, register)
    assert flagged(reconciled).empty and len(reconciled) == len(lines)
    assert set(reconciled.loc[reconciled["line_reference"] == "HB-T3", "tenancy_id"]) == {"T3"}  # by claimant
    assert set(reconciled.loc[reconciled["line_reference"] == "UC-T4", "tenancy_id"]) == {"T4"}  # case, spaces
    summary = settlements(reconciled).set_index("settlement_number")
    assert summary.loc["HB004", "lines"] == 3 and summary.loc["HB004", "total_pence"] == 117000
    assert summary.loc["HB004", "posted_pence"] == 117000 and summary["flagged"].sum() == 0


def test_a_schedule_with_a_missing_line_flags_exactly_that_tenancy() -> None:
    """The DWP's schedule for the fourth run leaves T2 out, and the landlord got nothing for it."""
    lines, postings, register = books()
    lines = without(lines, settlement_number="HB004", line_reference="HB-T2")
    postings = without(postings, tenancy_id="T2", posted_date=RUNS[3])
    reconciled = reconcile(lines, postings, register)
    hit = flagged(reconciled)
    assert hit[["tenancy_id", "settlement_number", "payment_date", "flags"]].values.tolist() == [
        ["T2", "HB004", RUNS[3], "missing_line"]]
    assert hit["amount_pence"].tolist() == [AMOUNT["T2"]]
    assert settlements(reconciled).set_index("settlement_number").loc["HB004", "missing_lines"] == 1


def test_a_tenancy_left_off_the_latest_schedule_is_missing_while_still_due() -> None:
    lines, postings, register = books()
    lines = without(lines, settlement_number="HB006", line_reference="HB-T3")
    postings = without(postings, tenancy_id="T3", posted_date=RUNS[5])
    hit = flagged(reconcile(lines, postings, register))
    assert hit[["tenancy_id", "payment_date", "flags"]].values.tolist() == [["T3", RUNS[5], "missing_line"]]
    # not when the register says the tenancy ended, or moved off that benefit, before the run
    ended = register.assign(end_date=register["end_date"].where(register["tenancy_id"] != "T3", RUNS[4]))
    assert flagged(reconcile(lines, postings, ended)).empty
    moved = register.assign(benefit_type=register["benefit_type"].where(register["tenancy_id"] != "T3",
                                                                        "universal_credit"))
    assert flagged(reconcile(lines, postings, moved)).empty


def test_short_late_and_unpaid_credits_are_told_apart() -> None:
    lines, postings, register = books()
    postings.loc[(postings["tenancy_id"] == "T1") & (postings["posted_date"] == RUNS[2]), "amount_pence"] = -30000
    late = (postings["tenancy_id"] == "T4") & (postings["posted_date"] == UC_DAYS[3])
    postings.loc[late, "posted_date"] = UC_DAYS[3] + pd.Timedelta(days=6)
    on_time = (postings["tenancy_id"] == "T2") & (postings["posted_date"] == RUNS[1])
    postings.loc[on_time, "posted_date"] = RUNS[1] + pd.Timedelta(days=2)  # within the days a posting may take
    postings = without(postings, tenancy_id="T3", posted_date=RUNS[4])
    hit = flagged(reconcile(lines, postings, register)).set_index("tenancy_id")
    assert hit["flags"].to_dict() == {"T1": "short", "T4": "late", "T3": "unpaid"}
    assert hit.loc["T1", "posted_pence"] == 30000 and hit.loc["T4", "posted_date"] == UC_DAYS[3] + pd.Timedelta(days=6)
    assert hit.loc["T3", "payment_date"] == RUNS[4]


def test_a_line_without_a_reference_finds_its_tenancy_by_the_posting_or_is_unmatched() -> None:
    lines, postings, register = books()
    extra = {"settlement_number": "HB006", "payment_date": RUNS[5], "tenancy_reference": None,
             "scheme": "housing_benefit"}
    lines = pd.concat([lines, pd.DataFrame([extra | {"line_reference": "HB-NEW", "amount_pence": 12345},
                                            extra | {"line_reference": "HB-??", "amount_pence": 999}])],
                      ignore_index=True)
    postings = pd.concat([postings, pd.DataFrame([{"tenancy_id": "T5", "posted_date": RUNS[5],
                                                   "amount_pence": -12345}])], ignore_index=True)
    register = pd.concat([register, pd.DataFrame([{"tenancy_id": "T5", "end_date": pd.NaT,
                                                   "benefit_type": "housing_benefit"}])], ignore_index=True)
    reconciled = reconcile(lines, postings, register).set_index("line_reference")
    assert reconciled.loc["HB-NEW", "tenancy_id"] == "T5" and reconciled.loc["HB-NEW", "flags"] == ""
    assert pd.isna(reconciled.loc["HB-??", "tenancy_id"]) and reconciled.loc["HB-??", "flags"] == "unmatched"


def test_reconcile_leaves_its_inputs_alone() -> None:
    lines, postings, register = books()
    copies = [frame.copy() for frame in (lines, postings, register)]
    reconcile(lines, postings, register)
    for frame, copy in zip((lines, postings, register), copies, strict=True):
        pd.testing.assert_frame_equal(frame, copy)
    assert set(FLAGS) <= set(reconcile(lines, postings, register).columns)


def test_the_lines_still_to_come_follow_each_claimants_cycle() -> None:
    lines, postings, register = books()
    as_of = UC_DAYS[-1]  # 2024-06-15: the last HB run was 2024-05-20
    expected = expected_schedule_lines(lines, as_of, 8, register, postings)
    by_tenancy = expected.groupby("tenancy_id")["expected_date"].apply(list).to_dict()
    assert by_tenancy["T1"] == [RUNS[5] + pd.Timedelta(days=28), RUNS[5] + pd.Timedelta(days=56)]
    assert by_tenancy["T3"] == by_tenancy["T1"]
    assert by_tenancy["T4"] == [pd.Timestamp("2024-07-15")]  # the 15 August is after the 8 weeks
    assert (expected["amount_pence"] == expected["tenancy_id"].map(AMOUNT)).all()
    assert (expected["p_arrive"] == 1.0).all() and (expected["sd_pence"] == 0).all()  # a history without a fault
    horizon = as_of + pd.Timedelta(weeks=8)
    assert expected["expected_date"].gt(as_of).all() and expected["expected_date"].le(horizon).all()


def test_expected_lines_carry_the_history_of_missing_lines_and_stop_at_an_end() -> None:
    lines, postings, register = books()
    lines = without(lines, settlement_number="HB004", line_reference="HB-T2")
    postings = without(postings, tenancy_id="T2", posted_date=RUNS[3])
    register = register.assign(end_date=register["end_date"].where(register["tenancy_id"] != "T1",
                                                                   RUNS[5] + pd.Timedelta(days=40)))
    expected = expected_schedule_lines(lines, RUNS[5], 8, register, postings)
    hb = expected[expected["scheme"] == "housing_benefit"]
    assert hb.groupby("tenancy_id").size().to_dict() == {"T1": 1, "T2": 2, "T3": 2}  # T1 ends before its second
    p = hb["p_arrive"].iloc[0]
    assert p == pytest.approx(17 / 18) and (hb["p_arrive"] == p).all()  # 17 of the 18 lines due came
    assert (hb["expected_pence"] == (hb["amount_pence"] * p).round()).all() and (hb["sd_pence"] > 0).all()
    # nothing is expected from before as_of, and no later line is read
    assert expected_schedule_lines(lines, RUNS[0] - pd.Timedelta(days=1), 8, register, postings).empty
