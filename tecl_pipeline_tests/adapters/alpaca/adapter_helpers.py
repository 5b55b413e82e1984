"""Helpers for the tests of the Alpaca adapters (trading and market data) against the broker
simulator: the simulator's credentials, a provider that counts refreshes, recorded waits
with seeded jitter, and fault plans from one printed seed (R2)."""

from __future__ import annotations

import random
from typing import Any

from tecl_pipeline.trading.credentials import Credentials, CredentialsProvider, StaticCredentials
from tecl_pipeline_tests.simulator.simulator_fixtures import SIM_KEY, SIM_SECRET, set_sim_faults

SEED = 20261124


class CountingProvider:
    """Wraps a provider and counts refreshes (B4: exactly one per refused call)."""

    def __init__(self, inner: CredentialsProvider) -> None:
        self.inner = inner
        self.refreshes = 0

    def get(self, *, refresh: bool = False) -> Credentials:
        self.refreshes += refresh
        return self.inner.get(refresh=refresh)


def sim_credentials() -> StaticCredentials:
    """The simulator's own key pair, as a provider."""
    return StaticCredentials(Credentials(SIM_KEY, SIM_SECRET))


def recorded_waits(seed: int) -> tuple[list[float], random.Random]:
    """Fake sleep and seeded jitter for an adapter's retry policy: pass the list's `append`
    as `sleep` (the waits are recorded, not slept) and the generator as `rng`; the seed is
    printed (R2)."""
    print(f"retry jitter seed={seed}")
    return [], random.Random(seed)


def faults(url: str, *rules: dict[str, Any], seed: int = SEED) -> None:
    set_sim_faults(url, *rules, seed=seed)
