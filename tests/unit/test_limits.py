"""The back-off on wrong tokens (`serving.access.limits`), on its own clock: free failures, then blocks that double up
to the lockout, forgotten a lockout after the last failure; a success forgets a principal's."""

from __future__ import annotations

from serving.access.limits import Limiter


def test_the_back_off_doubles_up_to_the_lockout_and_is_forgotten_after_it() -> None:
    now = [0.0]
    limiter = Limiter(free=3, lockout_seconds=60, clock=lambda: now[0])
    assert [limiter.failed("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.retry_after("a") == 0
    waits = [limiter.failed("a") for _ in range(8)]  # (not waiting between: each failure counts)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]
    assert limiter.retry_after("a") == 60 and limiter.retry_after("b") == 0
    now[0] += 61
    assert limiter.retry_after("a") == 0
    assert limiter.failed("a") == 0  # forgotten: the free failures again
    limiter.failed("p"), limiter.failed("p"), limiter.failed("p"), limiter.failed("p")
    assert limiter.retry_after("p") == 1
    limiter.succeeded("p")
    assert limiter.retry_after("p") == 0
