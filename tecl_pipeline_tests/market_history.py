"""The real market history beside the repo (../shared/data/market, or TECL_SHARED_DATA),
read plainly: independent of the code under test. Never copied into the repo."""

import os
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def shared_market_dir() -> Path:
    """The real adjusted closes beside the repo (never copied into it)."""
    override = os.environ.get("TECL_SHARED_DATA")
    return Path(override) if override else REPO.parent / "shared" / "data" / "market"


def read_symbol(market_dir: Path, symbol: str) -> pd.Series:
    """One symbol's adjusted closes, read plainly: independent of the code under test."""
    frame = pd.read_csv(market_dir / f"{symbol}.csv", parse_dates=["date"], index_col="date")
    return frame["adj_close"].rename(symbol)
