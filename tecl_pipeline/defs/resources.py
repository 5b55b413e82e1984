"""Resources: where market data come from, which broker to trade, where state lives, and
the trading policy. Configured per deployment in `definitions.py`; editable in the launchpad.
"""

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

from dagster import ConfigurableResource

from tecl_pipeline.broker.paper import PaperBroker
from tecl_pipeline.broker.protocol import Broker
from tecl_pipeline.calendar import TradingCalendar
from tecl_pipeline.execution import ExecutionPolicy
from tecl_pipeline.marketdata import MarketDataSource
from tecl_pipeline.marketdata.csv_source import CsvMarketData
from tecl_pipeline.marketdata.demo import DEMO_SEED, DemoMarketData
from tecl_pipeline.portfolio import RiskLimits
from tecl_pipeline.settings import ConfigError
from tecl_pipeline.state.journal import LocalJournal


def _decimal(key: str, value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ConfigError(f"{key}: {value!r} is not a decimal number") from None
    if not number.is_finite() or number < 0:
        raise ConfigError(f"{key}: {value!r} must be a finite number >= 0")
    return number


def _now() -> datetime:
    return datetime.now().astimezone()


class MarketDataResource(ConfigurableResource):
    """Daily adjusted closes: generated demo data, or `DIR/<SYMBOL>.csv` replay."""

    source: Literal["demo", "csv"] = "demo"
    data_dir: str | None = None
    demo_seed: int = DEMO_SEED

    def open(self, calendar: TradingCalendar) -> MarketDataSource:
        if self.source == "csv":
            if not self.data_dir:
                raise ConfigError("data_dir: required when source is 'csv' (TECL_DATA_DIR)")
            return CsvMarketData(Path(self.data_dir))
        return DemoMarketData(calendar, now=_now, seed=self.demo_seed)


class StateResource(ConfigurableResource):
    """The local state directory: journal, per-session locks, the demo broker's book."""

    state_dir: str

    @property
    def root(self) -> Path:
        return Path(self.state_dir)

    def journal(self) -> LocalJournal:
        return LocalJournal(self.root / "journal")

    @property
    def lock_dir(self) -> Path:
        return self.root / "locks"


class BrokerResource(ConfigurableResource):
    """The broker the run trades through. Demo: an in-process paper broker filling at the
    session's price, its book kept in the state directory."""

    kind: Literal["demo"] = "demo"
    book_path: str
    starting_cash: str = "100000"

    def connect(self, session: date, prices: Mapping[str, Decimal]) -> Broker:
        del session  # the demo broker's clock is the prices it is given
        return PaperBroker(
            Path(self.book_path),
            prices=prices,
            now=_now,
            starting_cash=_decimal("starting_cash", self.starting_cash),
        )


class TradingPolicyResource(ConfigurableResource):
    """How targets become orders, and the risk limits checked before any order (T9).

    Amounts are decimal strings: Dagster config has no Decimal, and floats would round.
    """

    cash_reserve: str = "0.005"
    min_trade_notional: str = "1"
    kill_switch: bool = False
    max_order_notional: str | None = None
    max_position_weight: str = "1"
    max_daily_turnover: str | None = None

    def policy(self) -> ExecutionPolicy:
        optional = {
            key: None if value is None else _decimal(key, value)
            for key, value in (
                ("max_order_notional", self.max_order_notional),
                ("max_daily_turnover", self.max_daily_turnover),
            )
        }
        reserve = _decimal("cash_reserve", self.cash_reserve)
        if reserve >= 1:
            raise ConfigError(f"cash_reserve: {self.cash_reserve!r} must be below 1")
        return ExecutionPolicy(
            cash_reserve=reserve,
            min_trade_notional=_decimal("min_trade_notional", self.min_trade_notional),
            risk=RiskLimits(
                kill_switch=self.kill_switch,
                max_position_weight=_decimal("max_position_weight", self.max_position_weight),
                **optional,
            ),
        )
