"""Demo market data: a seeded, deterministic synthetic market for the ten symbols.

Not real prices. The generator draws one row of shocks per session from a fixed start, so
extending the end date never changes earlier prices: yesterday's demo run stays reproducible.
The leveraged funds are built from their underlyings (3x, -3x, volatility decay) so that the
strategy's regimes and RSI extremes actually occur.
"""

from collections.abc import Callable
from datetime import date, datetime
from types import MappingProxyType

import numpy as np
import pandas as pd

from tecl_pipeline.core.calendar import EXCHANGE_TZ, TradingCalendar
from tecl_pipeline.core.errors import MarketDataError
from tecl_pipeline.trading.models import Trade

DEMO_START = date(2019, 1, 2)
DEMO_SEED = 20_240_101
_FACTORS = ("market", "tech", "kmlm", "vix", "bonds", "vol_regime")
_START_PRICES = MappingProxyType(
    {
        "SPY": 250.0,
        "XLK": 65.0,
        "TQQQ": 20.0,
        "TECL": 15.0,
        "SPXL": 40.0,
        "SQQQ": 1_000_000.0,
        "KMLM": 25.0,
        "BIL": 91.0,
        "BSV": 78.0,
    }
)


def demo_prices(n_sessions: int, seed: int) -> pd.DataFrame:
    """Closes per symbol for the first `n_sessions` sessions (index 0..n-1)."""
    rng = np.random.default_rng(seed)
    z = pd.DataFrame(rng.standard_normal((n_sessions, len(_FACTORS))), columns=_FACTORS)
    # Slowly varying volatility: calm stretches and turbulent ones, as in real markets.
    # The regime starts calm (its first innovation is zeroed: an unlucky first draw would
    # otherwise start the market at tens of times normal volatility) and stays bounded.
    innovations = z["vol_regime"].where(z.index > 0, 0.0)
    turbulence = innovations.ewm(alpha=0.02, adjust=False).mean() / 0.1
    regime = np.exp(0.35 * turbulence).clip(0.5, 3.0)
    spy = 0.00025 + 0.009 * regime * z["market"]
    xlk = 1.2 * spy + 0.006 * z["tech"]
    qqq = 0.6 * spy + 0.5 * xlk
    returns = pd.DataFrame(
        {
            "SPY": spy,
            "XLK": xlk,
            "TQQQ": 3 * qqq - 0.00004,
            "TECL": 3 * xlk - 0.00004,
            "SPXL": 3 * spy - 0.00004,
            "SQQQ": -3 * qqq - 0.00004,
            "KMLM": 0.0001 + 0.008 * z["kmlm"] - 0.2 * spy,
            "BIL": 0.00015 + 0.00002 * z["bonds"],
            "BSV": 0.0001 + 0.002 * z["bonds"],
        }
    ).clip(lower=-0.95)  # a fund cannot lose more than everything in a day
    prices = (1 + returns).cumprod() * pd.Series(_START_PRICES)
    # A volatility fund mean-reverts around a level and spikes when the market turns
    # turbulent; its long decay would only push the demo below a cent within a few years.
    fear = (-spy).ewm(alpha=0.3, adjust=False).mean() * 8
    noise = (0.05 * z["vix"]).ewm(alpha=0.3, adjust=False).mean()
    prices["UVXY"] = 30.0 * np.exp(1.2 * (regime - 1) + fear + noise)
    return prices[["SPY", "TQQQ", "XLK", "KMLM", "SPXL", "UVXY", "TECL", "BIL", "SQQQ", "BSV"]]


class DemoMarketData:
    def __init__(
        self,
        calendar: TradingCalendar,
        *,
        now: Callable[[], datetime],
        seed: int = DEMO_SEED,
    ) -> None:
        self._calendar = calendar
        self._now = now
        self._seed = seed

    @property
    def description(self) -> str:
        return f"DEMO DATA: synthetic prices (seed {self._seed}), not real market prices"

    @property
    def price_basis(self) -> str:
        return "the session's generated close (demo data, no live trades)"

    def latest_trades(self, symbols: tuple[str, ...]) -> dict[str, Trade]:
        return {}

    @property
    def is_demo(self) -> bool:
        return True

    def closes(self, symbols: tuple[str, ...], through: date) -> pd.DataFrame:
        sessions = self._calendar.sessions(DEMO_START, through)
        prices = demo_prices(len(sessions), self._seed)
        unknown = [s for s in symbols if s not in prices.columns]
        if unknown:
            raise MarketDataError(f"demo data have no symbol(s) {', '.join(unknown)}")
        prices = prices[list(symbols)]
        prices.index = pd.DatetimeIndex([pd.Timestamp(d) for d in sessions])
        return prices

    def latest_session(self, symbols: tuple[str, ...]) -> date:
        """The last session that has closed by now: demo data behave like a live feed."""
        now = self._now().astimezone(EXCHANGE_TZ)
        session = self._calendar.session_on_or_before(now.date())
        if self._calendar.close_time(session) > now:
            session = self._calendar.previous_session(session)
        return session
