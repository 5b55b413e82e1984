"""The decision tree of "TECL For The Long Term (v7)" (spec: Decision tree, Public entry point).

Two forms of the same tree: `evaluate_tecl` decides one session from its indicators and says
why; `evaluate_tecl_history` decides many sessions at once from arrays of indicators, and
`signal_history` feeds it a whole history of closes. Both forms take their weights from
`ALLOCATIONS`, and the tests hold them to the same leaf and weights on every input.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from numbers import Real
from types import MappingProxyType
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from tecl_pipeline.core.errors import MarketDataError, MissingIndicatorError
from tecl_pipeline.core.indicators import bar_counts, sma, validate_closes, wilder_rsi
from tecl_pipeline.core.universe import (
    HOLDINGS,
    RSI_FAST_PERIOD,
    RSI_PERIOD,
    SYMBOLS,
    WARMUP_BARS,
)


def _weights(**weights: str) -> Mapping[str, Decimal]:
    allocation = {symbol: Decimal(weight) for symbol, weight in weights.items()}
    if sum(allocation.values()) != 1 or not all(w > 0 for w in allocation.values()):
        raise AssertionError(f"allocation {weights} must be positive weights summing to 1")
    return MappingProxyType(allocation)


# The only place the weights are written down: outcome -> allocation, in spec order. Every leaf
# is one outcome except R5b, the bear-only SQQQ/BSV choice, which has one per candidate
# ("R5b:SQQQ" first: SQQQ wins a tie).
ALLOCATIONS: Final[Mapping[str, Mapping[str, Decimal]]] = MappingProxyType(
    {
        "B1": _weights(UVXY="0.25", BIL="0.75"),
        "B2": _weights(UVXY="0.25", BIL="0.75"),
        "B3a": _weights(BIL="1"),
        "B3b": _weights(TECL="1"),
        "B4a": _weights(TECL="1"),
        "B4b": _weights(BIL="1"),
        "R1": _weights(TECL="1"),
        "R2": _weights(SPXL="1"),
        "R3a": _weights(UVXY="0.15", BIL="0.85"),
        "R3b": _weights(BIL="1"),
        "R4a": _weights(BIL="1"),
        "R4b": _weights(TECL="1"),
        "R5a": _weights(TECL="1"),
        "R5b:SQQQ": _weights(SQQQ="1"),
        "R5b:BSV": _weights(BSV="1"),
    }
)


def _leaf(outcome: str) -> str:
    return outcome.partition(":")[0]


LEAVES: Final[tuple[str, ...]] = tuple(dict.fromkeys(_leaf(o) for o in ALLOCATIONS))

_RSI: Final = f"rsi_{RSI_PERIOD}"
_RSI_FAST: Final = f"rsi_{RSI_FAST_PERIOD}"
_LABELS: Final = MappingProxyType({_RSI: f"RSI{RSI_PERIOD}", _RSI_FAST: f"RSI{RSI_FAST_PERIOD}"})
# The symbols whose RSI(10) / RSI(9) the tree can read.
_RSI_READERS: Final = ("SPY", "TQQQ", "XLK", "KMLM", "SPXL", "UVXY")
_RSI_FAST_READERS: Final = ("SQQQ", "BSV")


@dataclass(frozen=True)
class Decision:
    """What to hold for one session, and why.

    `allocation` holds only the symbols with a non-zero weight; the weights are exact and sum to
    exactly Decimal(1). `regime` is "bull" or "bear"; `reason` lists every condition checked
    on the way to `leaf`, with its value and whether it held.
    """

    leaf: str
    allocation: Mapping[str, Decimal]
    reason: str
    regime: str


def evaluate_tecl(indicators: Mapping[str, Mapping[str, float]]) -> Decision:
    """Walk the spec's decision tree for one session: strict comparisons, first match wins.

    `indicators` maps symbol -> {"price", "sma_200", "rsi_10", "rsi_9"}; extra symbols and
    names are ignored. Only what the path needs is read; a needed value that is missing, NaN,
    infinite or not a number raises `MissingIndicatorError` (never a default).
    """
    walk = _Walk(indicators)
    bull = walk.compare(("SPY", "price"), ">", ("SPY", "sma_200"))
    regime = "bull" if bull else "bear"
    outcome = _bull(walk) if bull else _bear(walk)
    return Decision(
        leaf=_leaf(outcome),
        # A copy, as a plain dict: the Dagster IO manager pickles decisions (a mappingproxy does
        # not pickle), and editing a decision must not edit the table.
        allocation=dict(ALLOCATIONS[outcome]),
        reason=f"{regime}: " + "; ".join(walk.steps),
        regime=regime,
    )


def evaluate_tecl_table(table: pd.DataFrame) -> Decision:
    """`evaluate_tecl` on an `indicator_table`: one row per symbol, one column per
    indicator."""
    # pandas types row and column labels as Hashable; here they are symbols and names.
    return evaluate_tecl(
        {
            str(symbol): {str(name): value for name, value in row.items()}
            for symbol, row in table.to_dict(orient="index").items()
        }
    )


def _bull(walk: "_Walk") -> str:
    if walk.compare(("TQQQ", _RSI), ">", 79):
        return "B1"
    if walk.compare(("SPY", _RSI), ">", 80):
        return "B2"
    if walk.compare(("XLK", _RSI), ">", ("KMLM", _RSI)):
        return "B3a" if walk.compare(("XLK", _RSI), ">", 81) else "B3b"
    # KMLM at least as strong: TECL only if tech is oversold. Never the bear SQQQ/BSV choice.
    return "B4a" if walk.compare(("XLK", _RSI), "<", 29) else "B4b"


def _bear(walk: "_Walk") -> str:
    if walk.compare(("TQQQ", _RSI), "<", 31):
        return "R1"
    if walk.compare(("SPXL", _RSI), "<", 29):
        return "R2"
    if walk.compare(("UVXY", _RSI), ">", 74):
        return "R3a" if walk.compare(("UVXY", _RSI), ">", 84) else "R3b"
    if walk.compare(("XLK", _RSI), ">", ("KMLM", _RSI)):
        return "R4a" if walk.compare(("XLK", _RSI), ">", 81) else "R4b"
    if walk.compare(("XLK", _RSI), "<", 29):
        return "R5a"
    return "R5b:BSV" if walk.compare(("BSV", _RSI_FAST), ">", ("SQQQ", _RSI_FAST)) else "R5b:SQQQ"


_Operand = tuple[str, str] | int
_OPS: Final[Mapping[str, tuple[Callable[[float, float], bool], str]]] = MappingProxyType(
    {
        ">": (lambda a, b: a > b, "<="),
        "<": (lambda a, b: a < b, ">="),
    }
)


class _Walk:
    """Reads the indicators a path needs, only when it needs them, and records each check."""

    def __init__(self, indicators: Mapping[str, Mapping[str, float]]) -> None:
        self._indicators = indicators
        self.steps: list[str] = []

    def compare(self, left: tuple[str, str], op: str, right: _Operand) -> bool:
        holds, negation = _OPS[op]
        a = self._read(*left)
        b = float(right) if isinstance(right, int) else self._read(*right)
        held = holds(a, b)
        decimals = 1 if left[1] in _LABELS else 2
        text_a = f"{a:.{decimals}f}"
        text_b = str(right) if isinstance(right, int) else f"{b:.{decimals}f}"
        # Rounding must not make a strict comparison read like a tie ("79.0 > 79"): then show
        # all the digits that tell the two values apart.
        if a != b and float(text_a) == float(text_b):
            text_a = repr(a)
            text_b = text_b if isinstance(right, int) else repr(b)
        shown_b = text_b if isinstance(right, int) else f"{_label(*right)} {text_b}"
        self.steps.append(f"{_label(*left)} {text_a} {op if held else negation} {shown_b}")
        return held

    def _read(self, symbol: str, name: str) -> float:
        values = self._indicators.get(symbol)
        if not isinstance(values, Mapping):
            raise MissingIndicatorError(symbol, name, f"missing (no {symbol} in the input)")
        if name not in values:
            raise MissingIndicatorError(symbol, name, "missing")
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, Real | Decimal):
            raise MissingIndicatorError(symbol, name, f"not a number ({value})")
        number = float(value)
        if math.isnan(number):
            raise MissingIndicatorError(symbol, name, "NaN")
        if math.isinf(number):
            raise MissingIndicatorError(symbol, name, "infinite")
        return number


def _label(symbol: str, name: str) -> str:
    """E.g. "TQQQ RSI10", "SPY", "SMA200" (the reason's wording, as in the spec's example)."""
    if name == "price":
        return symbol
    if name == "sma_200":
        return "SMA200"
    return f"{symbol} {_LABELS.get(name, name)}"


def signal_history(closes: pd.DataFrame) -> pd.DataFrame:
    """The tree on every session of a history at once (price = that session's close).

    `closes`: adjusted daily closes, sessions ascending, one column per symbol (extra columns are
    ignored), NaN before a symbol's first bar. Returns the sessions on which all ten symbols
    have at least `WARMUP_BARS` bars, with column "leaf" and one Decimal weight column per
    symbol of `HOLDINGS` (zero where not held), each row summing to exactly 1.
    """
    absent = [symbol for symbol in SYMBOLS if symbol not in closes.columns]
    if absent:
        raise MarketDataError(f"closes lack universe symbol(s): {', '.join(absent)}")
    universe = closes.loc[:, list(SYMBOLS)]
    # Also the holdings the tree never reads: a gap there is as untradeable as anywhere.
    validate_closes(universe)
    ready = (bar_counts(universe) >= WARMUP_BARS).all(axis=1).to_numpy()

    # Only what the tree reads, from the functions `latest_indicators` uses: the same bits.
    slow = wilder_rsi(universe.loc[:, list(_RSI_READERS)], RSI_PERIOD).to_numpy()[ready]
    fast = wilder_rsi(universe.loc[:, list(_RSI_FAST_READERS)], RSI_FAST_PERIOD).to_numpy()[ready]
    indicators: dict[str, dict[str, np.ndarray]] = {
        symbol: {_RSI: slow[:, i]} for i, symbol in enumerate(_RSI_READERS)
    }
    indicators.update(
        {symbol: {_RSI_FAST: fast[:, i]} for i, symbol in enumerate(_RSI_FAST_READERS)}
    )
    indicators["SPY"].update(
        price=universe["SPY"].to_numpy(dtype=np.float64)[ready],
        sma_200=sma(universe["SPY"]).to_numpy()[ready],
    )
    return evaluate_tecl_history(indicators, index=closes.index[ready])


def evaluate_tecl_history(
    indicators: Mapping[str, Mapping[str, ArrayLike]], index: pd.Index | None = None
) -> pd.DataFrame:
    """`evaluate_tecl` on many sessions at once, as in `signal_history` (without a reason).

    `indicators` has `evaluate_tecl`'s shape with one value per session instead of one value
    (arrays aligned with `index`). Unlike `evaluate_tecl` it reads every indicator any path
    can need, on every session, so any of them missing, NaN or infinite anywhere raises
    `MissingIndicatorError`. Returns column "leaf" plus Decimal weights per `HOLDINGS`.
    """

    def read(symbol: str, name: str) -> np.ndarray:
        try:
            values = np.asarray(indicators[symbol][name], dtype=np.float64)
        except KeyError:
            raise MissingIndicatorError(symbol, name, "missing") from None
        except (TypeError, ValueError):
            raise MissingIndicatorError(symbol, name, "not numbers") from None
        if not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            raise MissingIndicatorError(symbol, name, f"NaN or infinite on {bad} session(s)")
        return values

    spy, tqqq, xlk, kmlm, spxl, uvxy = (read(s, _RSI) for s in _RSI_READERS)
    sqqq, bsv = (read(s, _RSI_FAST) for s in _RSI_FAST_READERS)
    price, spy_sma = read("SPY", "price"), read("SPY", "sma_200")
    # NumPy would silently broadcast a length-1 array over the others.
    shapes = {a.shape for a in (spy, tqqq, xlk, kmlm, spxl, uvxy, sqqq, bsv, price, spy_sma)}
    sessions = (len(index),) if index is not None else next(iter(shapes))
    if shapes != {sessions} or len(sessions) != 1:
        raise ValueError(f"indicators must be 1-D arrays of one length per session, got {shapes}")
    bull = price > spy_sma
    bear = ~bull
    xlk_stronger = xlk > kmlm
    # Spec order; np.select takes the first that holds, like the if-chain of evaluate_tecl.
    rules = [
        ("B1", bull & (tqqq > 79)),
        ("B2", bull & (spy > 80)),
        ("B3a", bull & xlk_stronger & (xlk > 81)),
        ("B3b", bull & xlk_stronger),
        ("B4a", bull & (xlk < 29)),
        ("B4b", bull),
        ("R1", bear & (tqqq < 31)),
        ("R2", bear & (spxl < 29)),
        ("R3a", bear & (uvxy > 74) & (uvxy > 84)),
        ("R3b", bear & (uvxy > 74)),
        ("R4a", bear & xlk_stronger & (xlk > 81)),
        ("R4b", bear & xlk_stronger),
        ("R5a", bear & (xlk < 29)),
        ("R5b:BSV", bear & (bsv > sqqq)),
        ("R5b:SQQQ", bear),
    ]
    outcomes = [outcome for outcome, _ in rules]
    choice = np.select([condition for _, condition in rules], range(len(rules)), default=-1)

    weights = np.array(
        [[ALLOCATIONS[o].get(h, Decimal(0)) for h in HOLDINGS] for o in outcomes], dtype=object
    )
    leaves = np.array([_leaf(o) for o in outcomes], dtype=object)
    history = pd.DataFrame(weights[choice], index=index, columns=list(HOLDINGS))
    history.insert(0, "leaf", leaves[choice])
    return history
