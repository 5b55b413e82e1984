"""The strategy's universe and how much history its indicators need (spec: Universe)."""

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
