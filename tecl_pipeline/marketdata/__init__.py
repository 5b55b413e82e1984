"""Sources of daily adjusted closes: demo (generated) and CSV replay."""

from datetime import date
from typing import Protocol

import pandas as pd

from tecl_pipeline.trading.models import Trade


class MarketDataSource(Protocol):
    @property
    def description(self) -> str:
        """What these data are, as shown to a person (demo data say so)."""
        ...

    @property
    def is_demo(self) -> bool: ...

    @property
    def price_basis(self) -> str:
        """How a session's decision price is formed from these data, for a person."""
        ...

    def latest_trades(self, symbols: tuple[str, ...]) -> dict[str, Trade]:
        """Each symbol's latest live trade (price, time, feed); empty for data with no live
        trades (replayed or generated closes)."""
        ...

    def closes(self, symbols: tuple[str, ...], through: date) -> pd.DataFrame:
        """Adjusted daily closes up to and including `through`.

        DatetimeIndex of sessions ascending, one float column per symbol, NaN before a
        symbol's first bar. A symbol the source does not have raises MarketDataError.
        """
        ...

    def latest_session(self, symbols: tuple[str, ...]) -> date:
        """The most recent session these data cover for any of `symbols`."""
        ...
