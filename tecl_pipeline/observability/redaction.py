"""Keep secret values out of every text the pipeline emits (S2).

A `Redactor` knows the secret values themselves (not their names) and replaces every
occurrence with ``***``. The logging filter, the alerter and the exception scrubber all
share one instance, so a secret registered once (at load, or when a secret provider
fetches a rotated key) is masked everywhere from then on.

Exact-value matching is deliberate: pattern guessing ("anything that looks like a key")
both misses real secrets and mangles order ids. But a server or a library that echoes a
secret rarely echoes it raw: AWS-style secrets contain ``/`` and ``+`` and come back
percent-encoded (either hex case, ``+`` for a space) in URLs, JSON-escaped in bodies,
base64-encoded in Basic auth (``key:secret``). Every such form of a registered
value is masked (`encoded_forms`).
"""

import base64
import json
import re
import threading
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from urllib.parse import quote, quote_plus

from tecl_pipeline.errors import RefusedToTrade

REDACTED = "***"
# Shorter values would mask ordinary words and digits everywhere ("abc", "100").
MIN_SECRET_LENGTH = 4

# Environment variables whose values are secrets wherever they appear. The webhook URL is
# one: a Slack incoming-webhook URL is a bearer credential for the channel.
SECRET_ENV_NAMES = frozenset(
    {
        "ALPACA_API_KEY",
        "ALPACA_SECRET_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "TECL_ALERT_WEBHOOK_URL",
    }
)
SECRET_ENV_SUFFIXES = ("_SECRET", "_SECRET_KEY", "_TOKEN", "_PASSWORD")


_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def _base64_forms(raw: bytes) -> set[str]:
    # With and without padding (JWT-style encoders strip it); the longer form wins a match.
    padded = {base64.b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii")}
    return padded | {form.rstrip("=") for form in padded}


def encoded_forms(value: str) -> set[str]:
    """`value` as it may come back from a server or a library: raw, percent-encoded (quote,
    quote_plus, either hex case), JSON-escaped (also the escaped-slash style, and every
    character as a unicode escape), and base64 (standard and URL-safe)."""
    percent = {quote(value, safe=""), quote(value), quote_plus(value), quote_plus(value, safe="/")}
    percent |= {_PERCENT_ESCAPE.sub(lambda m: m.group(0).lower(), form) for form in percent}
    json_escaped = json.dumps(value)[1:-1]
    forms = {value, value.strip(), *percent, json_escaped, json_escaped.replace("/", "\\/")}
    forms |= {json.dumps(value, ensure_ascii=False)[1:-1]}
    if all(ord(ch) <= 0xFFFF for ch in value):
        forms |= {"".join(f"\\u{ord(ch):04x}" for ch in value)}
        forms |= {"".join(f"\\u{ord(ch):04X}" for ch in value)}
    forms |= _base64_forms(value.encode("utf-8"))
    return forms


def pair_forms(user: str, password: str) -> set[str]:
    """The forms of a ``user:password`` pair that name both at once (HTTP Basic auth)."""
    return _base64_forms(f"{user}:{password}".encode())


class Redactor:
    """The set of secret values, and the one place that masks them.

    Thread-safe: `register` swaps an immutable pattern under a lock, readers use whatever
    pattern was current when they started.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._bytes_pattern: re.Pattern[bytes] | None = None
        for secret in secrets:
            self.register(secret)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "Redactor":
        """A redactor that knows every secret-looking variable's value in `environ`, and
        the Alpaca key pair as one (its Basic-auth form)."""
        redactor = cls(
            value
            for name, value in environ.items()
            if name in SECRET_ENV_NAMES or name.upper().endswith(SECRET_ENV_SUFFIXES)
        )
        redactor.register_pair(environ.get("ALPACA_API_KEY"), environ.get("ALPACA_SECRET_KEY"))
        return redactor

    @classmethod
    def for_credentials(cls, key_id: str, secret: str) -> "Redactor":
        """A redactor for one API key pair: the key id, the secret, and the pair."""
        redactor = cls([key_id, secret])
        redactor.register_pair(key_id, secret)
        return redactor

    def register(self, value: str | None) -> None:
        """Mask `value` in every encoded form from now on; values shorter than 4
        characters are ignored."""
        if not value:
            return
        self._add(encoded_forms(value))

    def register_pair(self, user: str | None, password: str | None) -> None:
        """Mask both values, and the forms that carry them together (``user:password``)."""
        if not user or not password:
            return
        self.register(user)
        self.register(password)
        self._add(pair_forms(user, password) | pair_forms(user.strip(), password.strip()))

    def _add(self, forms: set[str]) -> None:
        forms = {form for form in forms if len(form) >= MIN_SECRET_LENGTH}
        if not forms:
            return
        with self._lock:
            if forms <= self._secrets:
                return
            self._secrets = self._secrets | forms
            # Longest first, so a secret containing another is masked whole, not in part.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(secret) for secret in ordered))
            self._bytes_pattern = re.compile(
                b"|".join(re.escape(secret.encode("utf-8")) for secret in ordered)
            )

    def redact(self, text: str) -> str:
        """`text` with every registered secret replaced by ``***``."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(REDACTED, text)

    def redact_bytes(self, data: bytes) -> bytes:
        """`data` (a body on the wire, UTF-8 or ASCII) with every registered form masked."""
        pattern = self._bytes_pattern
        if pattern is None or not data:
            return data
        return pattern.sub(REDACTED.encode(), data)

    def contains_secret(self, text: str) -> bool:
        """Whether `text` holds a registered secret (for scanners and tests)."""
        pattern = self._pattern
        return pattern is not None and bool(text) and pattern.search(text) is not None

    def redact_value(self, value: object) -> object:
        """Strings redacted, containers rebuilt with redacted items, other objects kept
        unless their text holds a secret (then the redacted text replaces them)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, bytes | bytearray):
            text = bytes(value).decode("utf-8", "replace")
            return self.redact(text) if self.contains_secret(text) else value
        if isinstance(value, Mapping):
            return {self.redact_value(k): self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            items = [self.redact_value(item) for item in value]
            return items if isinstance(value, list) else tuple(items)
        if value is None or isinstance(value, bool | int | float):
            return value
        try:
            text = str(value)
        except Exception:  # an object whose __str__ fails cannot leak through str() either
            return value
        return self.redact(text) if self.contains_secret(text) else value

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:
        # Never the values: a repr ends up in tracebacks and debuggers.
        return f"Redactor({len(self._secrets)} secret forms)"


def redact(text: str, redactor: Redactor | None) -> str:
    """`text` redacted by `redactor`, or unchanged when there is none (optional wiring)."""
    return text if redactor is None else redactor.redact(text)


class RedactedError(Exception):
    """Stands in for an exception whose text held a secret that could not be scrubbed."""


class RedactedRefusal(RedactedError, RefusedToTrade):
    """As `RedactedError`, for a refusal, so the Dagster layer still reports a refusal."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)


def scrub_exception(exc: BaseException, redactor: Redactor) -> BaseException:
    """`exc` with secrets removed from its args and notes (whole chain), in place.

    When the text still holds a secret (a custom ``__str__`` reading a private field, as
    HTTP client errors do), returns a `RedactedError` carrying the redacted text instead;
    the caller raises it ``from None`` so the original never reaches a traceback.
    """
    for current in _chain(exc):
        # An exception type that rejects new args keeps them; the check below catches it.
        with suppress(Exception):
            scrubbed = tuple(redactor.redact_value(arg) for arg in current.args)
            if scrubbed != current.args:
                current.args = scrubbed
            notes = getattr(current, "__notes__", None)
            if isinstance(notes, list):
                current.__notes__ = [redactor.redact(str(note)) for note in notes]
    text = "".join(traceback.format_exception(exc))
    if not redactor.contains_secret(text):
        return exc
    summary = redactor.redact(f"{type(exc).__qualname__}: {exc}")
    replacement_type = RedactedRefusal if isinstance(exc, RefusedToTrade) else RedactedError
    return replacement_type(summary)


@contextmanager
def redacting_exceptions(redactor: Redactor) -> Iterator[None]:
    """Scrub secrets from any exception leaving the block (S2), keeping its type if possible.

    Dagster serialises a step's exception (message and chain) into the event log, where no
    logging filter can reach it; wrapping adapter calls in this block is what keeps a
    secret echoed by a client library out of run events and alerts.
    """
    try:
        yield
    except Exception as exc:
        clean = scrub_exception(exc, redactor)
        if clean is exc:
            raise
        # `from None`: the unscrubbable original must not be printed as the context.
        raise clean from None
