"""Fixtures of the command tests."""

from collections.abc import Callable

import pytest

from tecl_pipeline.config.settings import Mode, Settings
from tecl_pipeline_tests.simulator.simulator_fixtures import SIM_KEY, SIM_SECRET


@pytest.fixture
def paper(simulator, tmp_path, monkeypatch) -> Callable[..., Settings]:
    """Paper-mode settings against the `simulator`, keys through the environment as a user
    sets them; keyword arguments change any setting."""
    monkeypatch.setenv("ALPACA_API_KEY", SIM_KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SIM_SECRET)

    def settings(**changes) -> Settings:
        values = {
            "mode": Mode.PAPER,
            "state_uri": (tmp_path / "state").as_uri(),
            "broker_url": simulator.url,
            "data_url": simulator.url,
        }
        return Settings(**{**values, **changes})

    return settings
