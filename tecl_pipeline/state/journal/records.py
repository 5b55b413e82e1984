"""The journal's record, its bytes on disk or in S3, and how a stored copy is judged (D3, D5).

Both back ends share this module so that a record written by one reads back, and is
judged, exactly as it would by the other.
"""

import json
import re
from datetime import UTC, date
from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from tecl_pipeline.core.performance import AccountPoint, Basis
from tecl_pipeline.trading.models import Order

SCHEMA_VERSION = 2
"""2 added `prices`, `residuals` and the figures' basis; version 1 still reads, without."""
# A session record is a few kilobytes; anything far larger is not one of ours, and reading
# it whole into memory to find that out would be its own failure mode.
MAX_RECORD_BYTES = 1024 * 1024

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")


class SessionRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1, 2] = 2
    session: date
    run_id: str
    written_at: AwareDatetime
    data_source: str
    broker: str
    leaf: str
    reason: str
    weights: dict[str, Decimal]
    orders: list[Order]
    positions: dict[str, Decimal]
    cash: Decimal
    equity: Decimal
    prices: dict[str, Decimal] = {}
    """The session's decision prices, at which `positions` are valued."""
    residuals: dict[str, Decimal] = {}
    """target - held, in shares, where the difference was worth a trade and remained."""
    first_session: date | None = None
    first_equity: Decimal | None = None
    peak_equity: Decimal | None = None
    """What the account's figures are measured from after this session (`Basis`), so the
    next session reads this record, not the whole journal. None: not known when written."""


def account_point(record: SessionRecord) -> AccountPoint:
    """The record as one point of the account's history (`core.performance`)."""
    filled: dict[str, tuple[Decimal, Decimal]] = {}
    for order in record.orders:
        if order.filled_qty and order.filled_avg_price is not None:
            qty, notional = filled.get(order.symbol, (Decimal(0), Decimal(0)))
            filled[order.symbol] = (
                qty + order.filled_qty,
                notional + order.filled_qty * order.filled_avg_price,
            )
    return AccountPoint(
        session=record.session,
        equity=record.equity,
        cash=record.cash,
        leaf=record.leaf,
        positions=record.positions,
        target_weights=record.weights,
        fill_prices={s: (n / q).quantize(Decimal("0.0001")) for s, (q, n) in filled.items()},
    )


def record_basis(record: SessionRecord) -> Basis | None:
    """What the session after `record` measures its figures from; None when the record does
    not keep it (version 1, or figures that could not be worked out when it was written), or
    keeps one that cannot be right (then the figures come from the journal itself)."""
    first, start, peak = record.first_session, record.first_equity, record.peak_equity
    if first is None or start is None or peak is None:
        return None
    if first > record.session or start < 0 or peak < max(record.equity, start):
        return None
    return Basis(
        first_session=first,
        first_equity=start,
        peak_equity=peak,
        previous_session=record.session,
        previous_equity=record.equity,
    )


class InvalidRecord(Exception):
    """Stored bytes that are not a valid record of this schema: quarantine them (D3)."""


class NewerSchemaRecord(Exception):
    """A record written by a newer pipeline: valid for someone, so never quarantined."""


def record_name(record: SessionRecord) -> str:
    """`<utc stamp>-<run id>.json`: names sort in write order, across DST changes too."""
    stamp = record.written_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    # The run id becomes part of a path or key; a '/' in it must not open a new folder.
    return f"{stamp}-{_UNSAFE_NAME_CHARS.sub('_', record.run_id)}.json"


_ADDED_IN_2 = frozenset({"prices", "residuals", "first_session", "first_equity", "peak_equity"})


def encode_record(record: SessionRecord) -> bytes:
    """The record's bytes as the pipeline of its schema version wrote them: a version-1
    record spooled before an upgrade replays byte for byte, so a host still on version 1
    reads it (it forbids unknown fields) and a write that had landed is not a conflict."""
    exclude = set(_ADDED_IN_2) if record.schema_version == 1 else None
    return record.model_dump_json(indent=2, exclude=exclude).encode()


def decode_record(data: bytes, *, session: date) -> SessionRecord:
    """The record in `data`, stored under `session`; InvalidRecord says what is wrong."""
    if len(data) > MAX_RECORD_BYTES:
        raise InvalidRecord(f"{len(data)} bytes, more than a record can be ({MAX_RECORD_BYTES})")
    try:
        # Decimal, not float, even for this first look (C3).
        raw = json.loads(data, parse_float=Decimal)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRecord(f"not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise InvalidRecord(f"not a JSON object but {type(raw).__name__}")
    version = raw.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise NewerSchemaRecord(
            f"schema_version {version}, newer than this pipeline reads ({SCHEMA_VERSION})"
        )
    try:
        # From the bytes, not from `raw`: pydantic's JSON mode reads numbers exactly.
        record = SessionRecord.model_validate_json(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise InvalidRecord(f"fails the schema ({problems})") from None
    if record.session != session:
        # Misfiled: trusting it would feed one session's positions to another.
        raise InvalidRecord(f"its session {record.session} is not the folder's {session}")
    return record
