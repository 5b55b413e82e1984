"""Errors that mean "stop before trading, and say why".

The Dagster layer turns every `RefusedToTrade` into a refusal (the run stops before any
order, with the reason in the event log and on the CLI's stderr) instead of a crash.
Input problems are also `ValueError`s: the input, not the program, is wrong.
"""


class RefusedToTrade(Exception):
    """The pipeline will not send orders for this session; the message says why."""


class UntrustedInputError(RefusedToTrade, ValueError):
    """Input the pipeline must not trade on: missing, stale, malformed or inconsistent."""


class MarketDataError(UntrustedInputError):
    """Market data that are missing, stale, too short, NaN or non-positive."""


class MissingIndicatorError(UntrustedInputError):
    """An indicator the decision path needs is missing, NaN or infinite."""

    def __init__(self, symbol: str, indicator: str, problem: str = "missing") -> None:
        self.symbol = symbol
        self.indicator = indicator
        self.problem = problem
        super().__init__(f"{symbol} {indicator} is {problem}; refusing to decide without it")


class UnknownSessionError(UntrustedInputError):
    """A date that is not an XNYS trading session where a session is required."""


class PortfolioInputError(UntrustedInputError):
    """Weights, prices, quantities or account figures that cannot be turned into orders."""


class RiskLimitError(RefusedToTrade):
    """The plan breaks a configured risk limit or the kill switch is on (T9)."""


class SessionBusyError(RefusedToTrade):
    """Another run holds this session's trading lock (C2)."""


class AccountError(RefusedToTrade):
    """The account cannot be traded as configured (e.g. not a USD account, X8)."""


class TradingWindowError(RefusedToTrade):
    """The broker's clock says this is not the time to trade this session (T2, T3)."""


class SessionReversalError(RefusedToTrade):
    """This run's decision would reverse a trade its session already made at the broker:
    another run decided differently for the same session (C2, X3)."""


class TradingStopped(Exception):
    """The run was asked to stop (SIGTERM) while trading: it sent nothing after the request,
    and the message says what it left working at the broker. Not a refusal: it may have
    sent orders before the signal."""


def project_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class the project defines, whichever module defines it, by name:
    those loaded in this process, which include any that was just raised here."""
    found: dict[str, type[BaseException]] = {}
    pending: list[type[BaseException]] = [BaseException]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.partition(".")[0] == __name__.partition(".")[0]:
            found.setdefault(cls.__name__, cls)
    return found


def describe(exc: BaseException) -> str:
    """An exception as a person reads it: the project's own errors are sentences already;
    a foreign one keeps its class name, which is then part of the story."""
    text = " ".join(str(exc).split())
    if text and type(exc).__module__.partition(".")[0] == __name__.partition(".")[0]:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
