"""Each ledger delivery's suspense scoring is kept in the serving database (SQLite here) and read back by every
process that asks after the first: what is kept, who wins when two keep at once, what a new delivery forgets, and
how a rejected match and the proposal threshold apply to a kept scoring without scoring again."""

from __future__ import annotations

import pandas as pd
import pytest

from serving.income import store
from serving.income.store import Scoring, open_decisions
from serving.settings import get_settings

RECEIPTS = pd.DataFrame({
    "receipt_id": ["R1", "R2"], "received_date": pd.to_datetime(["2026-10-05", "2026-10-06"]),
    "amount_pence": [41250, 9000], "reference": ["T0001", None], "payer": [None, None], "source": ["bank", "bank"]})


def scoring(seq: int = 3, kind: str = "lightgbm") -> Scoring:
    ranked = pd.DataFrame({
        "receipt_id": ["R1", "R1", "R1", "R2"], "tenancy_id": ["T0001", "T0007", "T0010", "T0002"],
        "rank": [1, 2, 3, 1], "probability": [0.98, 0.30, 0.10, 0.40],
        "reasons": [["reference names T0001"], ["£412.50 = usual payment"], ["nothing"], ["close"]]})
    return Scoring(seq, kind, 120, None, ranked)


def test_a_kept_scoring_reads_back_whole_and_a_second_keeper_of_the_same_delivery_loses(home) -> None:
    settings = get_settings()
    with open_decisions(settings) as decisions:
        assert decisions.scoring(3, "lightgbm") is None
        assert decisions.keep(scoring(), seconds=2.5)
        assert not decisions.keep(scoring(), seconds=1.0)  # another process finished it first: its rows stand
        kept = decisions.scoring(3, "lightgbm")
        assert decisions.scoring(3, "logistic") is None  # another matcher's scoring is its own
        rows = decisions.db.query("SELECT COUNT(*) AS n FROM suspense_candidates")["n"].iloc[0]
    assert rows == 4
    assert (kept.ledger_seq, kept.matcher, kept.trained_on, kept.why) == (3, "lightgbm", 120, None)
    pd.testing.assert_frame_equal(kept.ranked, scoring().ranked, check_dtype=False)


def test_a_new_delivery_scored_forgets_the_earlier_ones(home) -> None:
    settings = get_settings()
    with open_decisions(settings) as decisions:
        decisions.keep(scoring(3), seconds=1.0)
        decisions.keep(scoring(4), seconds=1.0)
        assert decisions.scoring(3, "lightgbm") is None
        assert decisions.scoring(4, "lightgbm") is not None
        seqs = set(decisions.db.query("SELECT DISTINCT ledger_seq FROM suspense_candidates")["ledger_seq"])
    assert seqs == {4}


def test_too_little_history_is_kept_with_why_and_no_matcher(home) -> None:
    settings = get_settings()
    empty = Scoring(5, "lightgbm", 0, "3 receipt(s) cleared at source: matching learns from at least 30",
                    pd.DataFrame(columns=["receipt_id", "tenancy_id", "rank", "probability", "reasons"]))
    with open_decisions(settings) as decisions:
        decisions.keep(empty, seconds=0.1)
        kept = decisions.scoring(5, "lightgbm")
    assert kept.matcher is None and kept.why.startswith("3 receipt(s)")
    queue = kept.queue(RECEIPTS, 0.95, pd.DataFrame(columns=["receipt_id", "tenancy_id"]), top=5)
    assert list(queue.receipts["decision"]) == ["queued", "queued"] and queue.candidates.empty


def test_a_rejected_match_leaves_its_receipt_and_the_next_candidate_moves_up() -> None:
    none = pd.DataFrame(columns=["receipt_id", "tenancy_id"])
    before = scoring().queue(RECEIPTS, 0.95, none, top=5)
    proposed = before.receipts.set_index("receipt_id")
    assert proposed.loc["R1", "decision"] == "proposed" and proposed.loc["R1", "tenancy_id"] == "T0001"
    after = scoring().queue(RECEIPTS, 0.95, pd.DataFrame({"receipt_id": ["R1"], "tenancy_id": ["T0001"]}), top=5)
    now = after.receipts.set_index("receipt_id")
    assert now.loc["R1", "decision"] == "queued" and now.loc["R1", "tenancy_id"] == "T0007"
    shown = after.candidates[after.candidates["receipt_id"] == "R1"]
    assert list(shown["tenancy_id"]) == ["T0007", "T0010"] and list(shown["rank"]) == [1, 2]
    assert now.loc["R2", "tenancy_id"] == "T0002"  # the other receipt as it was
    stricter = scoring().queue(RECEIPTS, 0.99, none, top=5)  # the threshold applies when read
    assert set(stricter.receipts["decision"]) == {"queued"}
    assert len(scoring().queue(RECEIPTS, 0.95, none, top=1).candidates) == 2


def test_a_process_finds_the_kept_scoring_and_does_not_score_again(home, monkeypatch) -> None:
    settings = get_settings()
    with open_decisions(settings) as decisions:
        decisions.keep(scoring(7), seconds=1.0)

    def score_again(*_):
        raise AssertionError("scored again although delivery 7's scoring is kept")

    monkeypatch.setattr(store, "_score", score_again)
    found = store._scoring(settings, ledger=None, seq=7)
    assert found.trained_on == 120 and len(found.ranked) == 4
    with pytest.raises(AssertionError, match="scored again"):
        store._scoring(settings, ledger=None, seq=8)
