"""`tecl doctor`: whether this machine's settings reach a broker and market data that the
pipeline can trade with, before the first run finds out at 15:45. Each check is one line
saying what was found or what to do, and the last is the plan the next run would make from
the broker's positions at the latest prices (`app.preview`, the run's own chain). Nothing is
ordered; what is written is what a run writes before it trades (the logs, and in demo mode
the embedded simulator's account file).

The checks read what a run reads, through the same resources (so keys come only through
their `EnvVar` or the secrets provider), and judge it by the rules a run applies
(`trading.reconcile`, the run's refusals), so the doctor and the run never disagree: a check
a run would refuse on is `REFUSE`, one that cannot be made (a refused key, a broker that
does not answer) is `ERROR`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from types import MappingProxyType

from tecl_pipeline.app.preview import deployment, preview
from tecl_pipeline.config.settings import Settings
from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.core.errors import RefusedToTrade, describe
from tecl_pipeline.core.universe import HOLDINGS, SYMBOLS
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.defs.resources import StateResource
from tecl_pipeline.marketdata import MarketDataSource
from tecl_pipeline.trading.broker import Broker
from tecl_pipeline.trading.execution import ExecutionPolicy
from tecl_pipeline.trading.reconcile import (
    blocked_problem,
    borrowing_problem,
    currency_problem,
    traded_at,
)


class Verdict(Enum):
    """What a check found: the run would trade with it, would refuse, or it could not be
    made at all."""

    OK = "ok"
    REFUSE = "REFUSE"
    ERROR = "ERROR"


_KINDS = MappingProxyType(
    {
        Decimal(1): "a cash account (or a margin account under $2,000 of equity)",
        Decimal(2): "a margin account",
        Decimal(4): "a pattern day trader's margin account",
    }
)


@dataclass(frozen=True)
class Finding:
    """One check: what it looked at, what it found for a run, and the line a person reads
    (what was found, or what is wrong and what to do)."""

    check: str
    verdict: Verdict
    detail: str

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    @property
    def line(self) -> str:
        return f"{self.verdict.value:6}  {self.check}: {self.detail}"


def exit_verdict(findings: list[Finding]) -> Verdict:
    """ERROR if any check could not be made, else REFUSE if a run would refuse, else OK."""
    verdicts = {f.verdict for f in findings}
    for verdict in (Verdict.ERROR, Verdict.REFUSE):
        if verdict in verdicts:
            return verdict
    return Verdict.OK


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
        return Finding("account", Verdict.REFUSE, f"{found}: {'; '.join(problems)}")
    return Finding("account", Verdict.OK, f"{found}; buys spend its own cash only, never margin")


def _clock(broker: Broker) -> Finding:
    clock = broker.get_clock()
    now = clock.timestamp.astimezone(EXCHANGE_TZ)
    opens = clock.next_open.astimezone(EXCHANGE_TZ)
    state = "open" if clock.is_open else f"closed, opens {opens:%Y-%m-%d %H:%M %Z}"
    return Finding(
        "broker clock",
        Verdict.OK,
        f"{now:%Y-%m-%d %H:%M %Z}, market {state}; next decision "
        f"{CALENDAR.next_decision_time(now):%Y-%m-%d %H:%M %Z}",
    )


def _assets(broker: Broker) -> Finding:
    assets = [broker.get_asset(symbol) for symbol in HOLDINGS]
    closed = [a.symbol for a in assets if not a.tradable]
    if closed:
        return Finding(
            "assets",
            Verdict.REFUSE,
            f"not tradable at this broker: {', '.join(closed)}; a run sends no order for them",
        )
    whole = [a.symbol for a in assets if not a.fractionable]
    shares = f"; whole shares only: {', '.join(whole)}" if whole else "; all fractionable"
    return Finding("assets", Verdict.OK, f"{', '.join(HOLDINGS)} tradable{shares}")


def _latest_trades(broker: Broker, feed: str) -> Finding:
    trades = broker.latest_trades(SYMBOLS)
    missing = [s for s in SYMBOLS if s not in trades]
    check = f"latest trades ({feed})"
    if missing:
        return Finding(check, Verdict.REFUSE, f"none for {', '.join(missing)} on feed {feed}")
    symbol, oldest = min(trades.items(), key=lambda item: item[1].at)
    return Finding(
        check,
        Verdict.OK,
        f"every symbol quoted on feed {feed}; the oldest, {symbol}, at {traded_at(oldest)}",
    )


def _plan(
    source: MarketDataSource, broker: Broker, policy: ExecutionPolicy, session: date
) -> Finding:
    result = preview(source, broker, policy, session)
    orders = "; ".join(o.line.replace("  ", " ") for o in result.orders) or "no order"
    found = f"session {session}, leaf {result.decision.leaf}: {orders}"
    if result.refused:
        return Finding("plan", Verdict.REFUSE, f"{found}; refused: {'; '.join(result.problems)}")
    return Finding("plan", Verdict.OK, found)


def _journal(state: StateResource, today: date) -> list[Finding]:
    """Whether the journal a run reads first can be read now, and each object in what it
    read that is not a session record. Only read: a run also writes, and refuses if it
    cannot, but the doctor writes nothing.

    Opened read-only: read-write, reading would quarantine a bad object itself, silently
    (the doctor sends no alert), and the next run, finding nothing left to quarantine,
    would never alert on it either. Read-only, it stays in place and is named here."""
    journal = state.journal(read_only=True)
    last = journal.latest_before(today + timedelta(days=1))
    valid = "valid " if journal.invalid else ""
    found = "no record yet" if last is None else f"the last {valid}record is session {last.session}"
    findings = [Finding("journal", Verdict.OK, f"{journal.location}: readable, {found}")]
    # OK, not REFUSE: a run that meets one quarantines it, alerts and still trades on the
    # records around it, so the exit status stays a run's; the line says what will happen.
    findings += [
        Finding(
            "journal record",
            Verdict.OK,
            f"{where} is not a valid session record ({reason}); left in place: the next run "
            "will quarantine it and alert",
        )
        for where, reason in journal.invalid.items()
    ]
    return findings


def _failed(check: str, exc: Exception) -> Finding:
    """A check that raised: REFUSE for what a run refuses on (a feed the plan lacks),
    ERROR for a check that cannot be made."""
    verdict = Verdict.REFUSE if isinstance(exc, RefusedToTrade) else Verdict.ERROR
    return Finding(check, verdict, describe(exc))


def _checked(check: str, run: Callable[[], Finding]) -> Finding:
    try:
        return run()
    except Exception as exc:  # a check that cannot be made is the finding
        return _failed(check, exc)


def diagnose(settings: Settings, *, stderr_level: int) -> list[Finding]:
    """Every check against the deployment `settings` describe, in the order a run meets
    them: market data, the journal, then the broker, then the plan. Log records at
    `stderr_level` and above also go to stderr."""
    feed = settings.data_feed.value
    where = settings.broker_url or (
        "the embedded demo simulator" if settings.mode.value == "demo" else "Alpaca"
    )
    findings = [
        Finding(
            "settings",
            Verdict.OK,
            f"{settings.mode.value} mode, broker {where}, data feed {feed}",
        )
    ]
    with deployment(settings, stderr_level=stderr_level) as ready:
        source = ready.source
        latest: list[date] = []

        def bars() -> Finding:
            latest.append(source.latest_session(SYMBOLS))
            return Finding(
                "daily bars", Verdict.OK, f"{source.description}: through {latest[0]} (feed {feed})"
            )

        findings.append(_checked("daily bars", bars))
        today = datetime.now(EXCHANGE_TZ).date()
        try:
            findings += _journal(ready.state, today)
        except Exception as exc:  # a check that cannot be made is the finding, as _checked
            findings.append(_failed("journal", exc))
        # The plan is for the session of the latest bars (in paper and live, today's once
        # it has traded); without bars there is no plan to make.
        session = latest[0] if latest else CALENDAR.session_on_or_before(today)
        try:
            broker = ready.broker.connect(session)
        except Exception as exc:
            findings.append(_failed("broker", exc))
            return findings
        try:
            findings += [
                _checked("account", lambda: _account(broker)),
                _checked("broker clock", lambda: _clock(broker)),
                _checked("assets", lambda: _assets(broker)),
                _checked(f"latest trades ({feed})", lambda: _latest_trades(broker, feed)),
            ]
            if latest:
                findings.append(
                    _checked("plan", lambda: _plan(source, broker, ready.policy, session))
                )
        finally:
            broker.close()
    return findings
