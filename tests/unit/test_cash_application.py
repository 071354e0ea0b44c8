"""Cash application on hand-built books (serving/income/matching.py): blocking finds the tenancy a receipt in
suspense belongs to, comparisons are as of the receipt's day, the reasons say why in plain words, and what the
matcher keeps holds no payer text."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from serving.income import matching

DAY = pd.Timestamp("2026-06-01")  # a Monday


def books(payments: list[tuple[str, str, int]], suspense: list[dict], ids=("T000001", "T000002", "T000917"),
          schedules: list[dict] | None = None) -> matching.Books:
    paid = pd.DataFrame(payments, columns=["tenancy_id", "posted_date", "amount_pence"])
    paid["posted_date"] = pd.to_datetime(paid["posted_date"])
    base = {"reference": None, "payer": None, "source": "bank", "cleared_tenancy_id": None, "cleared_date": None}
    rows = pd.DataFrame([base | s for s in suspense])
    for column in ("received_date", "cleared_date"):
        rows[column] = pd.to_datetime(rows[column])
    lines = pd.DataFrame(schedules or [], columns=["settlement_number", "line_reference", "payment_date",
                                                   "amount_pence", "tenancy_reference"])
    return matching.Books(np.array(ids), paid, rows, lines)


def weekly(tenancy: str, amount: int, weeks: int, skip: tuple[int, ...] = ()) -> list[tuple[str, str, int]]:
    """A tenancy paying `amount` every Monday for `weeks` weeks up to DAY (weeks ago in `skip` not paid)."""
    return [(tenancy, str((DAY - pd.Timedelta(weeks=w)).date()), amount) for w in range(1, weeks + 1)
            if w not in skip] + ([] if 0 in skip else [(tenancy, str(DAY.date()), amount)])


def test_a_reference_is_read_as_written_and_like_the_ids_a_missing_prefix_and_dropped_zeros_put_back() -> None:
    tokens = matching.reference_tokens(pd.Series(["rent t917 june", "REF 000917", "T00O917", None]), ("T", 6))
    assert tokens.groupby("position")["token"].apply(list).to_dict() == {
        0: ["T917", "T000917"], 1: ["000917", "T000917"],
        2: ["T00O917"]}  # a letter O for a zero stays a typo, one edit away


def test_blocking_finds_a_mistyped_reference_and_the_tenancy_whose_payment_is_missing() -> None:
    found = books(
        weekly("T000917", 12_500, 10, skip=(0,)) + weekly("T000001", 12_500, 10) + weekly("T000002", 9_000, 10),
        [{"receipt_id": "R1", "received_date": DAY, "amount_pence": 12_500, "reference": "T000971"},
         {"receipt_id": "R2", "received_date": DAY, "amount_pence": 12_500, "reference": "no ref"}])
    pairs = matching.candidates(found.open.drop(columns=["cleared_tenancy_id", "cleared_date"]), found)
    by = pairs.set_index(["receipt_id", "tenancy_id"])
    # two neighbouring digits swapped: one edit
    assert by.loc[("R1", "T000917"), "ref_distance"] == 1 and by.loc[("R1", "T000917"), "usual_missing"] == 1
    # R2 has only its amount: T000001 paid £125 today (not missing, a candidate only as it paid that amount before),
    # T000917 did not
    assert set(pairs.loc[pairs["receipt_id"] == "R2", "tenancy_id"]) == {"T000917", "T000001"}
    assert by.loc[("R2", "T000001"), ["usual_missing", "stream_missing"]].tolist() == [0, 0]
    assert by.loc[("R2", "T000917"), ["usual_missing", "stream_missing"]].tolist() == [1, 1]
    row = by.loc[("R2", "T000917")]
    assert row["amount_equal"] == 1 and row["days_from_expected"] == 0 and row["has_reference"] == 0
    assert matching.reasons(row.to_dict() | {"tenancy_id": "T000917"}) == [
        "£125.00 = usual payment", "expected payment on 1 Jun not received"]


def test_a_lump_sum_of_several_weeks_and_a_schedule_line_are_named_in_the_reasons() -> None:
    found = books(weekly("T000002", 9_000, 10, skip=(0, 1, 2)),
                  [{"receipt_id": "R3", "received_date": DAY, "amount_pence": 27_000, "reference": "T2 arrears"}],
                  schedules=[{"settlement_number": "S1", "line_reference": "L1", "payment_date": DAY,
                              "amount_pence": 27_000, "tenancy_reference": "T000002"}])
    pairs = matching.candidates(found.open.drop(columns=["cleared_tenancy_id", "cleared_date"]), found)
    row = pairs.set_index("tenancy_id").loc["T000002"]
    assert row["amount_multiple"] == 1 and row["schedule_agrees"] == 1 and row["ref_distance"] == 0
    said = matching.reasons(row.to_dict() | {"tenancy_id": "T000002"})
    assert said[0] == "reference names T000002"
    assert "£270.00 = 3 × usual payment (£90.00)" in said
    assert "a DWP schedule line for £270.00 names this tenancy" in said


def test_a_dwp_credit_naming_a_claimants_line_finds_the_tenancy_other_lines_of_that_claim_name() -> None:
    lines = [{"settlement_number": "HB1", "line_reference": "HB555", "payment_date": DAY - pd.Timedelta(weeks=4),
              "amount_pence": 40_000, "tenancy_reference": "T000001"},
             {"settlement_number": "HB2", "line_reference": "HB555", "payment_date": DAY, "amount_pence": 40_000,
              "tenancy_reference": None}]
    found = books([], [{"receipt_id": "R6", "received_date": DAY, "amount_pence": 40_000,
                        "reference": "DWP HB2 HB555", "payer": "DWP", "source": "dwp"}], schedules=lines)
    pairs = matching.candidates(found.open.drop(columns=["cleared_tenancy_id", "cleared_date"]), found)
    row = pairs.set_index("tenancy_id").loc["T000001"]
    assert row["schedule_line"] == 1 and row["schedule_agrees"] == 0  # the line naming it was paid 4 weeks ago
    assert "the reference names a DWP schedule line of this tenancy's claim" in matching.reasons(
        row.to_dict() | {"tenancy_id": "T000001"})


def test_a_dwp_credit_whose_claim_never_named_a_tenancy_finds_the_one_its_earlier_lines_were_posted_to() -> None:
    lines = [{"settlement_number": f"UC{k}", "line_reference": "UC777", "payment_date": DAY - pd.Timedelta(weeks=4 * k),
              "amount_pence": 41_000 + k, "tenancy_reference": None} for k in (1, 2, 0)]
    posted = [("T000002", str((DAY - pd.Timedelta(weeks=4 * k, days=1)).date()), 41_000 + k) for k in (1, 2)]
    other = [("T000001", str((DAY - pd.Timedelta(weeks=4)).date()), 41_001)]  # one line's amount, not the other's
    found = books(posted + other, [{"receipt_id": "R7", "received_date": DAY, "amount_pence": 41_000,
                                    "reference": "DWP UC0 UC777", "payer": "DWP", "source": "dwp"}], schedules=lines)
    pairs = matching.candidates(found.open.drop(columns=["cleared_tenancy_id", "cleared_date"]), found)
    by = pairs.set_index("tenancy_id")["schedule_line"]
    assert by.get("T000002") == 1 and by.get("T000001", 0) == 0


def test_a_payment_split_in_two_is_found_by_the_two_receipts_sum() -> None:
    same = {"payer": "MR J SMITH", "reference": None}
    found = books(weekly("T000917", 20_000, 10, skip=(0,)) + weekly("T000002", 9_000, 10),
                  [{"receipt_id": "R8", "received_date": DAY, "amount_pence": 8_000} | same,
                   {"receipt_id": "R9", "received_date": DAY + pd.Timedelta(days=1), "amount_pence": 12_000} | same,
                   {"receipt_id": "R10", "received_date": DAY, "amount_pence": 11_000, "payer": "A N OTHER"}])
    sums = matching.split_sums(found.open, found.suspense).set_index("receipt_id")["amount_pence"].to_dict()
    assert sums == {"R8": 20_000, "R9": 20_000}  # R10: another payer
    pairs = matching.candidates(found.open.drop(columns=["cleared_tenancy_id", "cleared_date"]), found)
    row = pairs.set_index(["receipt_id", "tenancy_id"]).loc[("R8", "T000917")]
    assert row["split_log_ratio"] == 0 and row["amount_equal"] == 0
    assert "with the same payer's other receipt a day apart at most, the usual payment" in matching.reasons(
        row.to_dict() | {"tenancy_id": "T000917"})


def test_payer_text_is_compared_with_the_tenancys_other_cleared_receipts_later_ones_too_never_its_own() -> None:
    earlier = {"receipt_id": "C1", "received_date": DAY - pd.Timedelta(weeks=4), "amount_pence": 9_000,
               "payer": "MR J OKAFOR", "cleared_tenancy_id": "T000002", "cleared_date": DAY - pd.Timedelta(weeks=3)}
    later = {"receipt_id": "C2", "received_date": DAY + pd.Timedelta(days=3), "amount_pence": 9_000,
             "payer": "A NOWAK", "cleared_tenancy_id": "T000001", "cleared_date": DAY + pd.Timedelta(days=5)}
    found = books(weekly("T000002", 9_000, 10), [
        earlier, later, {"receipt_id": "R4", "received_date": DAY, "amount_pence": 4_000, "payer": "OKAFOR J MR"},
        {"receipt_id": "R5", "received_date": DAY, "amount_pence": 4_000, "payer": "A NOWAK"}])
    pairs = matching.candidates(found.suspense[found.suspense["receipt_id"].isin(["R4", "R5", "C1"])].drop(
        columns=["cleared_tenancy_id", "cleared_date"]), found)
    # C1 is a candidate of T000002 by its amount (its payment was C1's own allocation), but not by its own payer
    # text; R5's payer is known from a receipt received after it and cleared since (who pays does not change)
    assert pairs[["receipt_id", "tenancy_id", "payer_similarity"]].sort_values("receipt_id").values.tolist() == [
        ["C1", "T000002", 0.0], ["R4", "T000002", 1.0], ["R5", "T000001", 1.0]]
    assert pairs.set_index("receipt_id")["payer_known"].to_dict() == {"C1": 0, "R4": 1, "R5": 1}


def test_a_payer_shown_with_an_initial_is_like_the_full_name_but_two_different_first_names_are_not() -> None:
    assert matching.initial_form("SMITH J") == ("J SMITH", True)
    assert matching.initial_form("Mr James Smith") == ("J SMITH", False)
    scores = matching.payer_scores(np.array(["K NOWAK", "SMITH J", "JAMES SMITH"], dtype=object),
                                   np.array(["KAREN NOWAK", "JOHN SMITH"], dtype=object))
    assert scores[0, 0] == 100 and scores[1, 1] == 100  # an initial agrees with either full name
    assert scores[2, 1] < matching.PAYER_CUTOFF  # JAMES is not JOHN
    earlier = {"receipt_id": "C1", "received_date": DAY - pd.Timedelta(weeks=4), "amount_pence": 9_000,
               "payer": "KAREN NOWAK", "cleared_tenancy_id": "T000002", "cleared_date": DAY - pd.Timedelta(weeks=3)}
    found = books([], [earlier, {"receipt_id": "R1", "received_date": DAY, "amount_pence": 4_000,
                                 "payer": "MRS K NOWAK"}])
    pairs = matching.candidates(found.open.drop(columns=["cleared_tenancy_id", "cleared_date"]), found)
    assert pairs[["tenancy_id", "payer_similarity"]].values.tolist() == [["T000002", 1.0]]


def test_a_tenancy_paying_in_two_streams_is_judged_by_the_stream_like_the_receipt() -> None:
    # T000917: its own £300 on each 4-weekly Monday and benefit of £500 a week; the £300 due on DAY is missing, the
    # benefit is not. T000001 pays £310 every week but not this one.
    own = [("T000917", str((DAY - pd.Timedelta(weeks=4 * w)).date()), 30_000) for w in range(1, 6)]
    found = books(own + weekly("T000917", 50_000, 20) + weekly("T000001", 31_000, 20, skip=(0,)),
                  [{"receipt_id": "R1", "received_date": DAY, "amount_pence": 30_000}])
    pairs = matching.candidates(found.open.drop(columns=["cleared_tenancy_id", "cleared_date"]), found)
    by = pairs.set_index("tenancy_id")
    assert set(by.index) == {"T000917", "T000001"}  # T000917 though a payment of its was posted that day
    assert by.loc["T000917", "usual_missing"] == 0 and by.loc["T000917", "stream_missing"] == 1
    assert by.loc["T000917", ["seen_log_ratio", "stream_days"]].tolist() == [0, 0]
    assert np.expm1(by.loc["T000917", "seen_payments"]) == pytest.approx(5)
    assert by.loc["T000001", "stream_missing"] == 1 and by.loc["T000001", "seen_log_ratio"] > 0.03
    assert by.loc["T000001", "seen_payments"] == 0 and by.loc["T000917", "seen_margin"] > 0.03


def test_a_reference_with_two_digits_swapped_is_one_edit_from_the_id_even_when_it_is_another_id() -> None:
    found = books(weekly("T000917", 12_500, 10, skip=(0,)), [
        {"receipt_id": "R1", "received_date": DAY, "amount_pence": 12_500, "reference": "T000197"}],
        ids=("T000917", "T000197"))
    pairs = matching.candidates(found.open.drop(columns=["cleared_tenancy_id", "cleared_date"]), found)
    assert pairs.set_index("tenancy_id")["ref_distance"].to_dict() == {"T000197": 0, "T000917": 1}


def test_two_payments_in_one_lump_are_the_usual_payment_times_the_periods_since_the_last_and_a_common_name_ties(
        ) -> None:
    known = [{"receipt_id": f"C{i}", "received_date": DAY - pd.Timedelta(weeks=5), "amount_pence": 1_000,
              "payer": "J SMITH", "cleared_tenancy_id": tenancy, "cleared_date": DAY - pd.Timedelta(weeks=4)}
             for i, tenancy in enumerate(("T000001", "T000002"))]
    found = books(weekly("T000917", 9_000, 10, skip=(0, 1)) + weekly("T000001", 9_000, 10, skip=(0,)),
                  [*known, {"receipt_id": "R1", "received_date": DAY, "amount_pence": 18_000, "payer": "JAMES SMITH"}])
    pairs = matching.candidates(found.open.drop(columns=["cleared_tenancy_id", "cleared_date"]), found)
    by = pairs.set_index("tenancy_id")
    assert by.loc["T000917", "due_log_ratio"] == 0  # 2 weeks unpaid, 2 x £90
    assert by.loc["T000001", "due_log_ratio"] == pytest.approx(np.log(2))  # 1 week unpaid
    assert by.loc["T000002", "payer_similarity"] == 1 and by["payer_ties"].eq(np.log1p(2)).all()


def test_payments_that_were_a_cleared_receipts_allocation_are_not_the_tenancys_habit() -> None:
    cleared = {"receipt_id": "C1", "received_date": DAY - pd.Timedelta(days=2), "amount_pence": 12_500,
               "cleared_tenancy_id": "T000917", "cleared_date": DAY}
    found = books(weekly("T000917", 12_500, 3), [cleared])
    own = matching.own_payments(found.payments, found.suspense)
    assert len(own) == len(found.payments) - 1 and DAY not in set(own["posted_date"])
    assert own["usual_amount"].eq(12_500).all() and own["usual_gap"].dropna().eq(7).all()


def world(seed: int, n: int = 150, weeks: int = 30) -> tuple[matching.Books, pd.Series]:
    """Tenancies paying weekly; 5% of payments land in suspense (reference right, one digit off or missing), those
    of the first 24 weeks cleared at source (the history), the rest open (with their truth)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"T{i:06d}" for i in range(1, n + 1)])
    rent = rng.choice([9_500, 10_250, 11_000, 12_575, 13_000], n)
    payer = [f"{rng.choice(list('AJKMS'))} {rng.choice(['SMITH', 'PATEL', 'KHAN', 'EVANS', 'NOWAK'])} {i}"
             for i in range(n)]
    paid, suspense = [], []
    for i, tenancy in enumerate(ids):
        for w in range(weeks):
            day = DAY + pd.Timedelta(days=7 * w + int(rng.integers(-1, 2)))
            if rng.random() >= 0.05:
                paid.append((tenancy, day, rent[i]))
                continue
            cut = rng.random()
            reference = tenancy if cut < 0.3 else (tenancy[:-1] + str(9 - int(tenancy[-1])) if cut < 0.6 else "")
            cleared = w < 24
            suspense.append({"receipt_id": f"R{len(suspense):04d}", "received_date": day, "amount_pence": rent[i],
                             "reference": reference, "payer": payer[i], "source": "bank", "truth": tenancy,
                             "cleared_tenancy_id": tenancy if cleared else None,
                             "cleared_date": day + pd.Timedelta(days=3) if cleared else None})
            if cleared:
                paid.append((tenancy, day + pd.Timedelta(days=3), rent[i]))
    frame = pd.DataFrame(suspense)
    found = matching.Books(ids, pd.DataFrame(paid, columns=["tenancy_id", "posted_date", "amount_pence"]),
                           frame.drop(columns="truth"), pd.DataFrame(columns=["settlement_number", "line_reference",
                                                                              "payment_date", "amount_pence",
                                                                              "tenancy_reference"]))
    return found, frame.set_index("receipt_id")["truth"]


@pytest.mark.parametrize("kind", matching.KINDS)
def test_a_matcher_learnt_from_cleared_receipts_proposes_only_what_is_right_and_keeps_no_payer_text(kind) -> None:
    found, truth = world(seed=5)
    labelled = matching.labelled_pairs(found)
    matcher = matching.fit_matcher(labelled, kind, len(found.cleared))
    decisions, shown = matching.queue(found, matcher, propose_at=0.95)
    right = decisions["tenancy_id"] == decisions["receipt_id"].map(truth)
    proposed = decisions["decision"] == "proposed"
    assert matcher.blocking_recall > 0.9 and proposed.sum() >= 5
    assert right[proposed].all() and right.mean() > 0.8
    assert set(shown["receipt_id"]) <= set(decisions["receipt_id"]) and shown["rank"].max() <= 5
    kept = pickle.dumps(matcher)
    assert not any(text.encode() in kept for text in found.suspense["payer"].unique())


def test_too_little_history_is_said_not_guessed() -> None:
    found, _ = world(seed=5, n=10, weeks=8)
    with pytest.raises(matching.NotEnoughHistory, match="at least 30"):
        matching.fit_matcher(matching.labelled_pairs(found), "logistic")


def test_a_tenancy_that_paid_the_very_amount_before_is_a_candidate_behind_a_hundred_paying_about_as_much() -> None:
    alike = [f"T{i:06d}" for i in range(1, matching.MAX_AMOUNT_CANDIDATES + 21)]
    payments = [row for tenancy in alike for row in weekly(tenancy, 12_400, 10, skip=(0,))]
    payments += weekly("T000917", 50_000, 10) + [("T000917", str((DAY - pd.Timedelta(days=53)).date()), 12_345)]
    found = books(payments, [{"receipt_id": "R1", "received_date": DAY, "amount_pence": 12_345}],
                  ids=(*alike, "T000917"))
    pairs = matching.candidates(found.open.drop(columns=["cleared_tenancy_id", "cleared_date"]), found)
    # the hundred nearest in amount whose payment is missing, and the one that paid £123.45 to the penny
    assert len(pairs) == matching.MAX_AMOUNT_CANDIDATES + 1 and "T000917" in set(pairs["tenancy_id"])
    assert pairs.set_index("tenancy_id").loc["T000917", "seen_log_ratio"] == 0.0


def test_two_whole_names_alike_are_told_apart_from_an_initial_and_a_surname_many_share() -> None:
    assert matching.full_name("Mr James Smith") and not matching.full_name("MR J SMITH")
    assert not matching.full_name("SMITH J") and not matching.full_name("SMITH") and not matching.full_name("DWP")
    earlier = [{"receipt_id": "C1", "received_date": DAY - pd.Timedelta(weeks=4), "amount_pence": 9_000,
                "payer": "MR JAMES SMITH", "cleared_tenancy_id": "T000002",
                "cleared_date": DAY - pd.Timedelta(weeks=3)},
               {"receipt_id": "C2", "received_date": DAY - pd.Timedelta(weeks=4), "amount_pence": 9_000,
                "payer": "J SMITH", "cleared_tenancy_id": "T000001", "cleared_date": DAY - pd.Timedelta(weeks=3)}]
    found = books([], [*earlier, {"receipt_id": "R1", "received_date": DAY, "amount_pence": 4_000,
                                  "payer": "JAMES SMITH"},
                       {"receipt_id": "R2", "received_date": DAY, "amount_pence": 4_000, "payer": "SMITH J"}])
    pairs = matching.candidates(found.open.drop(columns=["cleared_tenancy_id", "cleared_date"]), found)
    got = pairs.set_index(["receipt_id", "tenancy_id"])[["payer_similarity", "payer_full"]]
    # both tenancies' payers are like JAMES SMITH, but only T000002's was written out in full
    assert got.loc["R1"].to_dict("index") == {"T000001": {"payer_similarity": 1.0, "payer_full": 0},
                                              "T000002": {"payer_similarity": 1.0, "payer_full": 1}}
    assert got.loc["R2", "payer_full"].eq(0).all() and len(got.loc["R2"]) == 2
