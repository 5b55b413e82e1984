"""The strategy's universe and how much history its indicators need (spec: Universe)."""

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

SIGNAL_ONLY: Final = ("SPY", "TQQQ", "XLK", "KMLM")
# Order of the weight columns in `signal_history` and of allocation tables.
HOLDINGS: Final = ("TECL", "BIL", "UVXY", "SPXL", "SQQQ", "BSV")
SYMBOLS: Final = SIGNAL_ONLY + HOLDINGS

SMA_WINDOW: Final = 200
RSI_PERIOD: Final = 10
RSI_FAST_PERIOD: Final = 9
# RSI is recursive; fewer bars than this and its value still depends on where the series began.
WARMUP_BARS: Final = 250


@dataclass(frozen=True)
class Fund:
    """What a fund tracks and at which daily multiple (negative: inverse), as its prospectus
    states: together they bound how far its close can move in one day."""

    underlying: str
    leverage: float


FUNDS: Final = MappingProxyType(
    {
        "SPY": Fund("us_equity", 1),
        "XLK": Fund("us_equity", 1),
        "KMLM": Fund("managed_futures", 1),
        "TQQQ": Fund("us_equity", 3),
        "TECL": Fund("us_equity", 3),
        "SPXL": Fund("us_equity", 3),
        "SQQQ": Fund("us_equity", -3),
        # 1.5x since 2018-02-28 (2x before: its real history still fits the 1.5x bound).
        "UVXY": Fund("vix_futures", 1.5),
        "BIL": Fund("treasury_bills", 1),
        "BSV": Fund("short_bonds", 1),
    }
)
