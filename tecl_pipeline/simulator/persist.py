"""The simulated account on disk, so that it outlives a process (demo mode runs an embedded
simulator in every run and every Dagster step process, and they must all see one account).

One JSON file holds the account: cash, currency and trading block, positions, every order with
its fill progress, the submissions log, split ratios and asset overrides. Not in it: the clock
(each run sets its own), the fault plan, request counters, the fill mode for new orders, the
market data plan, and the credentials (never a secret on disk).

Writes are atomic (a temporary file in the same directory, fsync, `os.replace`), so a reader
without the lock never sees half a file; every load-modify-save holds an exclusive `flock` on a
sibling `<name>.lock` file, so two processes never lose each other's updates. The file is
validated on load; one that does not validate raises `BookFileError` naming it, and is never
replaced by a fresh account.

Schema (version 1); money and quantities are decimal strings, times ISO 8601 with an offset:

    {
      "schema_version": 1,
      "version": 12,                      # +1 on every write
      "account": {"cash": "98765.43", "currency": "USD", "trading_blocked": false,
                  "created_at": "2026-11-24T15:45:00-05:00"},
      "positions": {"TECL": {"qty": "10", "avg_entry_price": "123.45"}},
      "orders": [{"seq": 1, "id": "<uuid>", "client_order_id": "...", "symbol": "TECL",
                  "side": "buy", "qty": "10", "time_in_force": "day", "status": "filled",
                  "fill_plan": {"mode": "immediate", "steps": 2, "delay_polls": 1},
                  "session": "2026-11-24", "created_at": "...", "updated_at": "...",
                  "filled_qty": "10", "filled_value": "1234.5", "filled_at": "...",
                  "canceled_at": null, "expired_at": null, "reads": 0}],
      "submissions": [{"seq": 1, "at": "2026-11-24T20:45:00.000000Z", "client_order_id": "...",
                       "symbol": "TECL", "side": "buy", "qty": "10", "time_in_force": "day",
                       "http_status": 200, "outcome": "filled", "order_id": "<uuid>",
                       "fault": null}],
      "split_ratios": {"TECL": "2"},
      "assets": {"TECL": {"tradable": true, "fractionable": true, "halted": false,
                          "shortable": true}}
    }
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, JsonValue, PlainValidator, ValidationError

from tecl_pipeline.simulator.model import (
    STATUS_FORM,
    TIME_IN_FORCE,
    ZERO,
    AccountState,
    AssetState,
    FillMode,
    FillPlan,
    Holding,
    SimOrder,
    stable_id,
)

SCHEMA_VERSION = 1


class BookFileError(ValueError):
    """The simulator's book file cannot be used (corrupt, unknown schema, inconsistent)."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"broker simulator book {path}: {problem}. The file was left as it is; move it "
            "away (or delete it) to start a fresh simulated account"
        )
        self.path = path


@dataclass(frozen=True)
class Snapshot:
    """What the file holds, as the book's own records (the book's live objects on the way out:
    serialize at once, under the simulator's lock)."""

    opened_at: datetime
    account: AccountState
    assets: dict[str, AssetState]
    holdings: dict[str, Holding]
    orders: list[SimOrder]
    submissions: list[dict[str, Any]]
    split_ratios: dict[str, Decimal]


# -- writing ----------------------------------------------------------------------------------


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _plain(value: Any) -> Any:
    """A value from an order request's body as JSON (numbers in it were parsed as Decimal)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _order_json(order: SimOrder) -> dict[str, Any]:
    return {
        "seq": order.seq,
        "id": order.id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "qty": str(order.qty),
        "time_in_force": order.time_in_force,
        "status": order.status,
        "fill_plan": order.plan.to_json(),
        "session": order.session.isoformat(),
        "created_at": _time(order.created_at),
        "updated_at": _time(order.updated_at),
        "filled_qty": str(order.filled_qty),
        "filled_value": str(order.filled_value),
        "filled_at": _time(order.filled_at),
        "canceled_at": _time(order.canceled_at),
        "expired_at": _time(order.expired_at),
        "reads": order.reads,
        "cancel_reads": order.cancel_reads,
        "limit_price": None if order.limit_price is None else str(order.limit_price),
    }


def to_json(snapshot: Snapshot) -> dict[str, Any]:
    """The file's body (all but `schema_version` and `version`), JSON-ready. Two equal bodies
    mean two equal books, so it doubles as the "did anything change" check."""
    account = snapshot.account
    return {
        "account": {
            "cash": str(account.cash),
            "currency": account.currency,
            "trading_blocked": account.trading_blocked,
            "created_at": _time(snapshot.opened_at),
        },
        "positions": {
            symbol: {"qty": str(h.qty), "avg_entry_price": str(h.avg_entry_price)}
            for symbol, h in sorted(snapshot.holdings.items())
        },
        "orders": [_order_json(o) for o in snapshot.orders],
        "submissions": [_plain(s) for s in snapshot.submissions],
        "split_ratios": {s: str(r) for s, r in sorted(snapshot.split_ratios.items())},
        "assets": {
            symbol: {
                "tradable": a.tradable,
                "fractionable": a.fractionable,
                "halted": a.halted,
                "shortable": a.shortable,
            }
            for symbol, a in sorted(snapshot.assets.items())
        },
    }


def encode(body: Mapping[str, Any], version: int) -> bytes:
    document = {"schema_version": SCHEMA_VERSION, "version": version, **body}
    return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode()


# -- reading ----------------------------------------------------------------------------------


def _decimal(value: object) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(f"must be a decimal string, got {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"must be a decimal string, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"must be a finite number, got {value!r}")
    return number


def _aware(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"must be an ISO 8601 time string, got {value!r}")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"must have a UTC offset, got {value!r}")
    return moment


def _aware_text(value: object) -> str:
    _aware(value)  # a string, or it raised
    return str(value)


def _day(value: object) -> date:
    if not isinstance(value, str):
        raise ValueError(f"must be an ISO date string, got {value!r}")
    return date.fromisoformat(value)


_Dec = Annotated[Decimal, PlainValidator(_decimal)]
_Time = Annotated[datetime, PlainValidator(_aware)]
_TimeText = Annotated[str, PlainValidator(_aware_text)]
_Day = Annotated[date, PlainValidator(_day)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Account(_Model):
    cash: _Dec
    currency: str
    trading_blocked: bool
    created_at: _Time


class _Position(_Model):
    qty: _Dec
    avg_entry_price: _Dec


class _FillPlan(_Model):
    mode: Literal["async", "immediate", "partial", "delayed", "never"]
    steps: int
    delay_polls: int


class _Order(_Model):
    seq: int
    id: str
    client_order_id: str
    symbol: str
    side: Literal["buy", "sell"]
    qty: _Dec
    time_in_force: str
    status: str
    fill_plan: _FillPlan
    session: _Day
    created_at: _Time
    updated_at: _Time
    filled_qty: _Dec
    filled_value: _Dec
    filled_at: _Time | None
    canceled_at: _Time | None
    expired_at: _Time | None
    reads: int
    cancel_reads: int = 0  # absent from books written before cancels took a read
    limit_price: _Dec | None = None  # absent from books written before limit orders


class _Submission(_Model):
    seq: int
    at: _TimeText
    # As the request sent them, checked or not (a rejected request is logged too).
    client_order_id: JsonValue
    symbol: JsonValue
    side: JsonValue
    qty: str | None
    time_in_force: JsonValue
    http_status: int
    outcome: str
    order_id: str | None
    fault: str | None


class _Asset(_Model):
    tradable: bool
    fractionable: bool
    halted: bool
    shortable: bool


class _BookFile(_Model):
    schema_version: Literal[1]
    version: int
    account: _Account
    positions: dict[str, _Position]
    orders: list[_Order]
    submissions: list[_Submission]
    split_ratios: dict[str, _Dec]
    assets: dict[str, _Asset]


def _check(document: _BookFile) -> None:
    """What the types alone do not say; raises ValueError naming the first problem."""
    if document.version < 0:
        raise ValueError(f"version must be >= 0, got {document.version}")
    for symbol, position in document.positions.items():
        # A short position (a margin account's) has a negative quantity.
        if position.qty == 0 or position.avg_entry_price < 0:
            raise ValueError(f"position {symbol}: qty must not be 0 and avg_entry_price >= 0")
    client_ids: set[str] = set()
    for index, order in enumerate(document.orders):
        where = f"orders[{index}]"
        if order.seq != index + 1 or order.id != stable_id("order", order.seq):
            raise ValueError(f"{where}: seq must be {index + 1}, with its id derived from it")
        if order.client_order_id in client_ids:
            raise ValueError(f"{where}: client_order_id {order.client_order_id!r} repeats")
        client_ids.add(order.client_order_id)
        if not STATUS_FORM.match(order.status):
            raise ValueError(f"{where}: status {order.status!r} is not a lowercase word form")
        if order.time_in_force not in TIME_IN_FORCE:
            raise ValueError(f"{where}: unknown time_in_force {order.time_in_force!r}")
        if not ZERO <= order.filled_qty <= order.qty or order.qty <= 0:
            raise ValueError(f"{where}: needs 0 <= filled_qty <= qty and qty > 0")
        if order.filled_value < 0 or order.reads < 0:
            raise ValueError(f"{where}: filled_value and reads must be >= 0")
    for index, submission in enumerate(document.submissions):
        if submission.seq != index + 1:
            raise ValueError(f"submissions[{index}]: seq must be {index + 1}")
    for symbol, ratio in document.split_ratios.items():
        if ratio <= 0:
            raise ValueError(f"split_ratios[{symbol}] must be > 0")


def _order(entry: _Order) -> SimOrder:
    """The book's record of a validated order: `_Order` names every field as `SimOrder` does,
    but for the fill plan."""
    plan = entry.fill_plan
    return SimOrder(
        **entry.model_dump(exclude={"fill_plan"}),
        plan=FillPlan(FillMode(plan.mode), plan.steps, plan.delay_polls),
    )


def parse(data: bytes, path: Path) -> tuple[int, Snapshot]:
    """The file's version and contents; `BookFileError` naming `path` if it does not
    validate (never a partial result)."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BookFileError(path, f"not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or "schema_version" not in raw:
        raise BookFileError(path, "not a simulator book (no schema_version)")
    if raw["schema_version"] != SCHEMA_VERSION:
        raise BookFileError(
            path,
            f"unsupported schema_version {raw['schema_version']!r} "
            f"(this simulator reads version {SCHEMA_VERSION})",
        )
    try:
        document = _BookFile.model_validate_json(data)
        _check(document)
        orders = [_order(o) for o in document.orders]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<file>'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise BookFileError(path, f"does not validate ({problems})") from None
    except ValueError as exc:
        raise BookFileError(path, f"inconsistent ({exc})") from None
    account = document.account
    snapshot = Snapshot(
        opened_at=account.created_at,
        account=AccountState(
            cash=account.cash, currency=account.currency, trading_blocked=account.trading_blocked
        ),
        assets={
            symbol: AssetState(symbol, a.tradable, a.fractionable, a.halted, a.shortable)
            for symbol, a in document.assets.items()
        },
        holdings={s: Holding(p.qty, p.avg_entry_price) for s, p in document.positions.items()},
        orders=orders,
        submissions=[s.model_dump() for s in document.submissions],
        split_ratios=dict(document.split_ratios),
    )
    return document.version, snapshot


# -- the file ---------------------------------------------------------------------------------


class BookStore:
    """The book file, its sibling lock file and atomic writes. Holds no state of its own."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def read(self) -> bytes | None:
        """The file's bytes (None if there is none); safe without the lock, as every write
        replaces the file whole."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the exclusive lock for a load-modify-save (blocks while another holds it).
        The OS drops it if the holder dies, so a killed process never blocks the next."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def write(self, data: bytes) -> None:
        """Replace the file with `data` whole: readers see the old file or the new one."""
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        # The rename itself survives a crash only once the directory is synced.
        with contextlib.suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
