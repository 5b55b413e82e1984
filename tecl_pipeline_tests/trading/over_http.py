"""The Alpaca adapter on the simulator over HTTP, for the execution tests that drive a real
broker: the adapter with a short retry, the targets and policy they trade with, and a
broker that dies right after an order reached the simulator. Its `client` and the
session's `prices` are fixtures of trading/conftest.py."""

from decimal import Decimal

from tecl_pipeline.adapters.alpaca.broker import AlpacaBroker
from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.simulator import SimulatorServer
from tecl_pipeline.trading.credentials import Credentials, StaticCredentials
from tecl_pipeline.trading.execution import ExecutionPolicy
from tecl_pipeline.trading.models import Order, OrderRequest
from tecl_pipeline_tests.simulator.simulator_fixtures import (
    SIM_KEY,
    SIM_SECRET,
    SIM_SESSION,
)

SESSION = SIM_SESSION
ALL_TECL = {"TECL": Decimal(1)}
MIX = {"UVXY": Decimal("0.25"), "BIL": Decimal("0.75")}


FAST = ExecutionPolicy(fill_timeout=10.0, poll_interval=1.0)


def adapter(server: SimulatorServer, cls: type[AlpacaBroker] = AlpacaBroker) -> AlpacaBroker:
    return cls(
        StaticCredentials(Credentials(SIM_KEY, SIM_SECRET)),
        paper=True,
        url=server.url,
        timeout=5.0,
        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, deadline=5.0),
    )


def submissions(server: SimulatorServer) -> list[dict]:
    return server.simulator.state()["submissions"]


class KilledAfterSubmit(Exception):
    pass


class CrashingAfterSubmit(AlpacaBroker):
    def submit_order(self, request: OrderRequest) -> Order:
        super().submit_order(request)
        raise KilledAfterSubmit
