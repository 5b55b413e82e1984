"""Helpers for the tests of the Alpaca adapters (trading and market data) against the broker
simulator: the simulator's credentials, a provider that counts refreshes, recorded waits
with seeded jitter, fault plans from one printed seed (R2), and the trading adapter on
the simulator with its waits recorded."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from tecl_pipeline.adapters.alpaca.broker import AlpacaBroker
from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.trading.credentials import Credentials, CredentialsProvider, StaticCredentials
from tecl_pipeline.trading.models import OrderRequest, OrderSide
from tecl_pipeline_tests.simulator.simulator_fixtures import SIM_KEY, SIM_SECRET, set_sim_faults

SEED = 20261124
# The client's timeout: short to keep the suite fast, yet far above a normal answer's few
# milliseconds even on a loaded machine (at 0.5 s a plain 403 timed out under CI load and was
# resent); the simulator's "timeout" and "latency" faults stall for longer.
TIMEOUT = 2.0


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


def make_broker(
    url: str,
    *,
    provider: CredentialsProvider | None = None,
    policy: RetryPolicy | None = None,
    seed: int = SEED,
) -> tuple[AlpacaBroker, list[float]]:
    sleeps, rng = recorded_waits(seed)
    broker = AlpacaBroker(
        provider or sim_credentials(),
        paper=True,
        url=url,
        timeout=TIMEOUT,
        retry=policy or RetryPolicy(max_attempts=5, base_delay=0.5, deadline=120.0),
        sleep=sleeps.append,
        rng=rng,
    )
    return broker, sleeps


def buy(client_order_id: str, qty: str = "1", symbol: str = "TECL") -> OrderRequest:
    return OrderRequest(
        symbol=symbol, side=OrderSide.BUY, qty=Decimal(qty), client_order_id=client_order_id
    )
