"""The execution tests' broker over HTTP: the Alpaca adapter on the simulator, and the
prices it trades at."""

from collections.abc import Iterator
from decimal import Decimal

import pytest

from tecl_pipeline.adapters.alpaca.broker import AlpacaBroker
from tecl_pipeline.core.universe import HOLDINGS
from tecl_pipeline.simulator import SimulatorServer
from tecl_pipeline_tests.simulator.simulator_fixtures import amount
from tecl_pipeline_tests.trading.over_http import adapter


@pytest.fixture
def client(simulator: SimulatorServer) -> Iterator[AlpacaBroker]:
    with adapter(simulator) as broker:
        yield broker


@pytest.fixture
def prices(simulator: SimulatorServer) -> dict[str, Decimal]:
    return {s: amount(simulator.simulator.price(s)) for s in HOLDINGS}
