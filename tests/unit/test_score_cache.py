"""The service's memory of scored tenancies (`serving.runs.worklist._ScoreCache`): least recently used first out,
emptied when the features or the champion change, and never filled with an answer computed for an older key. (Its lock,
for the threads a BentoML worker answers on, is not tested here: a race that CPython's GIL almost never lets happen
cannot be made to fail on demand.)"""

from __future__ import annotations

from serving.runs.schemas import ScoredCase
from serving.runs.worklist import _ScoreCache


def _case(tenancy_id: str) -> ScoredCase:
    return ScoredCase(tenancy_id=tenancy_id, risk_score=0.5, raw_score=0.0, base_value=0.0, reasons=[],
                      other_contribution=0.0)


def test_the_least_recently_used_goes_first_and_a_new_key_empties_it() -> None:
    cache = _ScoreCache(size=2)
    cache.valid_for(("stamp-1", "v1"))
    for t in ("A", "B"):
        cache.put(("stamp-1", "v1"), t, _case(t))
    assert cache.get("A") == (True, _case("A"))  # A is now the most recent
    cache.put(("stamp-1", "v1"), "C", None)  # an unknown tenancy is remembered as None
    assert cache.get("B") == (False, None) and cache.get("C") == (True, None) and cache.get("A")[0]
    cache.valid_for(("stamp-2", "v1"))  # the live file changed
    assert cache.get("A") == (False, None)


def test_an_answer_computed_under_the_old_key_is_not_kept() -> None:
    cache = _ScoreCache(size=10)
    cache.valid_for(("stamp-1", "v1"))
    cache.valid_for(("stamp-1", "v2"))  # a new champion loaded while a request was computing
    cache.put(("stamp-1", "v1"), "A", _case("A"))
    assert cache.get("A") == (False, None)
    off = _ScoreCache(size=0)  # ARREARS_SCORE_CACHE=0: nothing is kept
    off.valid_for(("stamp-1", "v1"))
    off.put(("stamp-1", "v1"), "A", _case("A"))
    assert off.get("A") == (False, None)
