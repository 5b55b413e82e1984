"""The one retry policy of the project (C6, B1, B2, B8): every client that calls a remote
service repeats a failed call here and nowhere else.

alpaca-py's own retry (a fixed 3 s wait on 429/504, blind to Retry-After, and applied to
order submission too) and botocore's are switched off by the adapters. Only a
`RetryableError` is retried; every other exception, including a service's definite answers
(rejections, auth failures, a garbled answer to an order submit) and plain bugs, propagates
at once. Each client says what is worth another attempt by raising its own subclass.
"""

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class RetryableError(Exception):
    """Worth trying again later; `retry_after` is the wait the service asked for, in
    seconds, when it named one (B1)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long one logical call may be tried.

    `jitter` is a fraction: each backoff is drawn from [(1 - jitter) * d, d], where d is
    `base_delay * 2 ** (attempt - 1)` capped at `max_delay`, so that clients that failed
    together do not retry together, and `max_delay` stays a hard cap on the backoff.
    `deadline` bounds all attempts of one call, waits included, in seconds.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.25
    deadline: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("base_delay", "max_delay", "deadline"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"RetryPolicy.{name} must be a finite number >= 0, got {value}")
        if self.base_delay > self.max_delay:
            raise ValueError(
                f"RetryPolicy.base_delay ({self.base_delay}) exceeds max_delay ({self.max_delay})"
            )
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"RetryPolicy.jitter must be within [0, 1], got {self.jitter}")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The wait after failed attempt number `attempt` (1-based), before Retry-After."""
        if attempt < 1:
            raise ValueError(f"attempt numbers start at 1, got {attempt}")
        # min() before the power would overflow: 2 ** 1100 is a float overflow.
        exponent = min(attempt - 1, 64)
        capped = min(self.max_delay, self.base_delay * 2.0**exponent)
        return capped * (1.0 - self.jitter * rng.random())

    def wait_before_next(self, attempt: int, error: RetryableError, rng: random.Random) -> float:
        """Backoff, raised to the service's Retry-After when it asked for longer (B1)."""
        wait = self.backoff(attempt, rng)
        if error.retry_after is not None and error.retry_after > wait:
            wait = error.retry_after
        return wait


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None],
    rng: random.Random,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Call `fn` until it returns, retrying `RetryableError` under `policy`.

    Gives up, re-raising the last error, after `policy.max_attempts` attempts or as soon as
    the next wait would end past `policy.deadline` (counted from the first attempt): there
    is no point in sleeping into a deadline only to fail after it, and a Retry-After longer
    than the time left means the service will not serve us in time. `on_retry(attempt,
    error, wait)` is called before each wait, e.g. to log it.
    """
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except RetryableError as error:
            elapsed = clock() - started
            if attempt >= policy.max_attempts:
                error.add_note(
                    f"gave up after {attempt} attempt(s) in {elapsed:.1f} s "
                    f"(retry policy allows {policy.max_attempts})"
                )
                raise
            wait = policy.wait_before_next(attempt, error, rng)
            if elapsed + wait > policy.deadline:
                error.add_note(
                    f"gave up after {attempt} attempt(s) in {elapsed:.1f} s: waiting "
                    f"{wait:.1f} s more would pass the {policy.deadline:.0f} s deadline"
                )
                raise
            if on_retry is not None:
                on_retry(attempt, error, wait)
            sleep(wait)
