"""`tecl doctor`: whether this machine's settings reach a broker and market data that the
pipeline can trade with, before the first run finds out at 15:45. Each check is one line
saying what was found or what to do. Nothing is ordered; what is written is what a run
writes before it trades (the logs, and in demo mode the embedded simulator's account file).

The checks read what a run reads, through the same resources (`deployment_resources`, so
keys come only through their `EnvVar` or the secrets provider), and judge it by the rules a
run applies (`trading.reconcile`), so the doctor and the run never disagree.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.core.errors import describe
from tecl_pipeline.core.universe import HOLDINGS, SYMBOLS
from tecl_pipeline.trading.broker import Broker
from tecl_pipeline.trading.reconcile import (
    blocked_problem,
    borrowing_problem,
    currency_problem,
)

_KINDS = MappingProxyType(
    {
        Decimal(1): "a cash account (or a margin account under $2,000 of equity)",
        Decimal(2): "a margin account",
        Decimal(4): "a pattern day trader's margin account",
    }
)


@dataclass(frozen=True)
class Finding:
    """One check: what it looked at, whether the pipeline can trade with it, and the line a
    person reads (what was found, or what is wrong and what to do)."""

    check: str
    ok: bool
    detail: str

    @property
    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.check}: {self.detail}"


def _account(broker: Broker) -> Finding:
    account = broker.get_account()
    checks = (currency_problem(account), blocked_problem(account), borrowing_problem(account.cash))
    problems = [problem for problem in checks if problem]
    kind = (
        "kind not reported"
        if account.multiplier is None
        else _KINDS.get(account.multiplier, f"multiplier {account.multiplier}")
    )
    found = (
        f"{account.account_number}, {kind}, cash {account.cash:,.2f} {account.currency}, "
        f"equity {account.equity:,.2f}"
    )
    if problems:
        return Finding("account", False, f"{found}: {'; '.join(problems)}")
    return Finding("account", True, f"{found}; buys spend its own cash only, never margin")


def _clock(broker: Broker) -> Finding:
    clock = broker.get_clock()
    now, opens = (t.astimezone(EXCHANGE_TZ) for t in (clock.timestamp, clock.next_open))
    state = "open" if clock.is_open else f"closed, opens {opens:%Y-%m-%d %H:%M %Z}"
    return Finding("broker clock", True, f"{now:%Y-%m-%d %H:%M %Z}, market {state}")


def _assets(broker: Broker) -> Finding:
    assets = [broker.get_asset(symbol) for symbol in HOLDINGS]
    closed = [a.symbol for a in assets if not a.tradable]
    if closed:
        return Finding(
            "assets", False, f"not tradable at this broker: {', '.join(closed)}; no order for them"
        )
    whole = [a.symbol for a in assets if not a.fractionable]
    shares = f"; whole shares only: {', '.join(whole)}" if whole else ""
    return Finding("assets", True, f"{', '.join(HOLDINGS)} tradable{shares}")


def _latest_trades(broker: Broker, feed: str) -> Finding:
    prices = broker.latest_trades(SYMBOLS)
    missing = [s for s in SYMBOLS if s not in prices]
    if missing:
        return Finding(
            f"latest trades ({feed})", False, f"none for {', '.join(missing)} on feed {feed}"
        )
    return Finding(f"latest trades ({feed})", True, f"every symbol quoted on feed {feed}")


def _checked(check: str, run: Callable[[], Finding]) -> Finding:
    try:
        return run()
    except Exception as exc:  # a check that cannot be made is the finding
        return Finding(check, False, " ".join(describe(exc).split()))


def diagnose(settings: Settings, *, stderr_level: int) -> list[Finding]:
    """Every check against the deployment `settings` describe, in the order a run meets
    them: market data, then the broker. Log records at `stderr_level` and above also go to
    stderr."""
    from dagster import build_resources

    from tecl_pipeline.defs.deployments import deployment_resources
    from tecl_pipeline.defs.partitions import CALENDAR

    resources = deployment_resources(settings, {"observability": {"stderr_level": stderr_level}})
    needed = ("market_data_source", "broker", "observability", "alerts")
    feed = settings.data_feed.value
    where = settings.broker_url or (
        "the embedded demo simulator" if settings.mode.value == "demo" else "Alpaca"
    )
    findings = [
        Finding("settings", True, f"{settings.mode.value} mode, broker {where}, data feed {feed}")
    ]
    with build_resources({name: resources[name] for name in needed}) as ready:
        source = ready.market_data_source.open(CALENDAR)
        latest: list[date] = []

        def bars() -> Finding:
            latest.append(source.latest_session(SYMBOLS))
            return Finding(
                "daily bars", True, f"{source.description}: through {latest[0]} (feed {feed})"
            )

        findings.append(_checked("daily bars", bars))
        today = datetime.now(EXCHANGE_TZ).date()
        session = latest[0] if latest else CALENDAR.session_on_or_before(today)
        try:
            broker = ready.broker.connect(session)
        except Exception as exc:
            findings.append(Finding("broker", False, " ".join(describe(exc).split())))
            return findings
        try:
            findings += [
                _checked("account", lambda: _account(broker)),
                _checked("broker clock", lambda: _clock(broker)),
                _checked("assets", lambda: _assets(broker)),
                _checked(f"latest trades ({feed})", lambda: _latest_trades(broker, feed)),
            ]
        finally:
            broker.close()
    return findings
