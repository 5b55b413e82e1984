"""The one retry policy: only retryable errors, bounded, backoff with jitter, Retry-After (C6, B1).

No network and no real sleeping: a fake clock that the fake sleep advances, and seeded
random generators whose seeds are printed (R2).
"""

import random
from collections.abc import Sequence

import pytest

from tecl_pipeline.common.retry import RetryableError, RetryPolicy, call_with_retry
from tecl_pipeline.trading.errors import (
    AuthError,
    BrokerUnavailableError,
    MalformedResponseError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
)

SEED = 20240102


class FakeTime:
    """A monotonic clock that only moves when slept on (or when a call 'takes' time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class Failing:
    """A callable raising each of `errors` in turn, then returning `result`; `calls` counts
    the attempts."""

    def __init__(
        self,
        errors: Sequence[BaseException],
        result: str = "ok",
        cost: float = 0.0,
        t: FakeTime | None = None,
    ) -> None:
        self.errors, self.result, self.cost, self.t = errors, result, cost, t
        self.calls: list[int] = []

    def __call__(self) -> str:
        self.calls.append(1)
        if self.t is not None:
            self.t.now += self.cost
        if len(self.calls) <= len(self.errors):
            raise self.errors[len(self.calls) - 1]
        return self.result


def rng(seed: int = SEED) -> random.Random:
    print(f"seed={seed}")
    return random.Random(seed)


def run(fn, policy: RetryPolicy, t: FakeTime, seed: int = SEED, on_retry=None):
    return call_with_retry(
        fn, policy, sleep=t.sleep, rng=rng(seed), clock=t.clock, on_retry=on_retry
    )


def test_success_first_time_does_not_sleep():
    """C6: nothing to retry, nothing waited."""
    t = FakeTime()
    assert run(Failing([]), RetryPolicy(), t) == "ok"
    assert t.sleeps == []


def test_retryable_errors_are_retried_with_exponential_backoff_and_jitter():
    """C6, B8: 5xx-style errors retried; each wait within [(1 - jitter) * d, d], d doubling."""
    t = FakeTime()
    fn = Failing([BrokerUnavailableError("503"), BrokerUnavailableError("503")] * 2)
    policy = RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=30.0, jitter=0.25)
    assert run(fn, policy, t) == "ok"
    assert len(fn.calls) == 5
    assert len(t.sleeps) == 4
    for attempt, wait in enumerate(t.sleeps, start=1):
        ceiling = 0.5 * 2 ** (attempt - 1)
        assert 0.75 * ceiling <= wait <= ceiling, (attempt, wait)


def test_zero_jitter_gives_exact_exponential_backoff_capped_at_max_delay():
    """C6: the cap holds; without jitter the schedule is exact."""
    t = FakeTime()
    policy = RetryPolicy(max_attempts=8, base_delay=1.0, max_delay=10.0, jitter=0.0, deadline=1e6)
    fn = Failing([BrokerUnavailableError("x")] * 7)
    assert run(fn, policy, t) == "ok"
    assert t.sleeps == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_backoff_never_exceeds_max_delay_even_for_huge_attempt_numbers():
    """C6: a long run of failures cannot produce an unbounded (or overflowing) wait."""
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0, jitter=0.25)
    r = rng()
    for attempt in (1, 10, 100, 5000):
        assert 0 < policy.backoff(attempt, r) <= 30.0


@pytest.mark.parametrize(
    "error",
    [
        OrderRejectedError("insufficient buying power", code=40310000),
        AuthError("401"),
        MalformedResponseError("200 with an error body"),
        OutcomeUnknownError("submit timed out"),
        ValueError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_non_retryable_errors_propagate_at_once(error):
    """C6, B7: rejections, auth failures, malformed bodies, unknown outcomes and bugs are
    never retried."""
    t = FakeTime()
    fn = Failing([error])
    with pytest.raises(type(error)) as caught:
        run(fn, RetryPolicy(), t)
    assert caught.value is error
    assert len(fn.calls) == 1
    assert t.sleeps == []


def test_the_policy_retries_any_clients_retryable_error_not_only_a_brokers():
    """C6: one policy for every client: a failure another client marks retryable (an AWS
    throttle, say) is tried again like a broker's, after the wait the service named."""

    class Throttled(RetryableError):
        pass

    t = FakeTime()
    fn = Failing([Throttled("slow down", retry_after=7.0)])
    assert run(fn, RetryPolicy(base_delay=0.5, jitter=0.0), t) == "ok"
    assert len(fn.calls) == 2
    assert t.sleeps == [7.0]


def test_gives_up_after_max_attempts_with_the_last_error_and_a_note():
    """B1, C6: a 429 storm ends in a clean error after the allowed attempts."""
    t = FakeTime()
    errors = [RateLimitedError(f"429 #{i}", retry_after=None) for i in range(10)]
    fn = Failing(errors)
    with pytest.raises(RateLimitedError) as caught:
        run(fn, RetryPolicy(max_attempts=3), t)
    assert caught.value is errors[2]
    assert len(fn.calls) == 3
    assert len(t.sleeps) == 2
    assert any("gave up after 3 attempt(s)" in note for note in caught.value.__notes__)


def test_retry_after_is_honoured_when_longer_than_the_backoff():
    """B1: the broker's Retry-After is waited at least."""
    t = FakeTime()
    fn = Failing([RateLimitedError("429", retry_after=7.0)])
    assert run(fn, RetryPolicy(base_delay=0.5), t) == "ok"
    assert t.sleeps == [7.0]


def test_backoff_wins_when_retry_after_is_shorter():
    """B1: Retry-After is a floor, not a replacement for backoff."""
    t = FakeTime()
    policy = RetryPolicy(base_delay=2.0, jitter=0.0)
    fn = Failing([RateLimitedError("429", retry_after=0.0)])
    assert run(fn, policy, t) == "ok"
    assert t.sleeps == [2.0]


def test_retry_after_beyond_the_deadline_gives_up_now_instead_of_sleeping():
    """B1: a wait that would end past the deadline is not started."""
    t = FakeTime()
    fn = Failing([RateLimitedError("429", retry_after=300.0)])
    with pytest.raises(RateLimitedError) as caught:
        run(fn, RetryPolicy(deadline=120.0), t)
    assert t.sleeps == []
    assert len(fn.calls) == 1
    assert any("deadline" in note for note in caught.value.__notes__)


def test_time_spent_in_attempts_counts_against_the_deadline():
    """B2: slow failing calls (e.g. timeouts) use up the deadline too."""
    t = FakeTime()
    policy = RetryPolicy(max_attempts=100, base_delay=1.0, jitter=0.0, deadline=25.0)
    fn = Failing([BrokerUnavailableError("timeout")] * 100, cost=10.0, t=t)
    with pytest.raises(BrokerUnavailableError):
        run(fn, policy, t)
    # 10 s call, 1 s wait, 10 s call (21 s), next wait 2 s -> 23 s, 3rd call -> 33 s > 25.
    assert len(fn.calls) == 3
    assert t.sleeps == [1.0, 2.0]
    assert t.now - 1000.0 <= 25.0 + 10.0  # at most one call's worth past the deadline


def test_on_retry_sees_attempt_error_and_wait():
    """C6: every retry can be logged with its cause and wait."""
    t = FakeTime()
    seen = []
    first = BrokerUnavailableError("502", retry_after=3.0)
    fn = Failing([first])
    run(fn, RetryPolicy(), t, on_retry=lambda a, e, w: seen.append((a, e, w)))
    assert seen == [(1, first, 3.0)]


@pytest.mark.parametrize("seed", [1, 7, SEED])
def test_same_seed_same_waits(seed):
    """R2: jitter comes from the given generator only, so a seed reproduces the schedule."""
    schedules = []
    for _ in range(2):
        t = FakeTime()
        run(Failing([BrokerUnavailableError("x")] * 4), RetryPolicy(), t, seed=seed)
        schedules.append(t.sleeps)
    assert schedules[0] == schedules[1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay": -1.0},
        {"max_delay": float("nan")},
        {"deadline": float("inf")},
        {"jitter": 1.5},
        {"base_delay": 10.0, "max_delay": 1.0},
    ],
)
def test_nonsense_policies_are_refused(kwargs):
    """C4: a misconfigured policy fails at construction, naming the field."""
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)
