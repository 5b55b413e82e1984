"""Keep secret values out of every text the pipeline emits (S2).

A `Redactor` knows the secret values themselves (not their names) and replaces every
occurrence with ``***``. The logging filter, the alerter and the exception scrubber all
share one instance, so a secret registered once (at load, or when a secret provider
fetches a rotated key) is masked everywhere from then on.

Exact-value matching is deliberate: pattern guessing ("anything that looks like a key")
both misses real secrets and mangles order ids. But a server or a library that echoes a
secret rarely echoes it raw: AWS-style secrets contain ``/`` and ``+`` and come back
percent-encoded (either hex case, ``+`` for a space) in URLs, JSON-escaped in bodies,
base64-encoded in Basic auth (``key:secret``) or inside a larger blob, HTML-escaped in
pages. Each registered value gets one pattern in which every character matches any of its
encodings, so any mix of them is masked (`value_pattern`); base64, which mixes the bits of
neighbouring characters, is matched by its stable runs (`base64_forms`).
"""

import base64
import html.entities
import re
import threading
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, cast

from tecl_pipeline.core.errors import RefusedToTrade

if TYPE_CHECKING:
    from tecl_pipeline.config.settings import Settings

REDACTED = "***"
# Shorter values would mask ordinary words and digits everywhere ("abc", "100").
MIN_SECRET_LENGTH = 4


# A character's escape after any number of JSON/string-literal escaping rounds: one
# backslash (``\u0026``), two (``\\u0026``, JSON inside JSON), and so on.
_BACKSLASHES = r"\\{1,8}"
_JSON_SHORT_ESCAPES = MappingProxyType(
    {'"': '"', "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"}
)


def _hex(number: int, width: int) -> str:
    # Hex digits in either case, no leading zeros beyond `width` required.
    return "(?i:" + f"{number:0{width}x}" + ")"


def _html_names() -> Mapping[str, tuple[str, ...]]:
    # Every named HTML5 entity that stands for exactly one character, by that character.
    names: dict[str, list[str]] = {}
    for name, char in html.entities.html5.items():
        if len(char) == 1:
            names.setdefault(char, []).append(name)
    return MappingProxyType({char: tuple(found) for char, found in names.items()})


# Built once: each secret registered asks it for every character of every pattern.
_HTML_NAMES: Final = _html_names()


def _char_alternatives(
    ch: str, html_names: Mapping[str, tuple[str, ...]], *, as_bytes: bool
) -> list[str]:
    """Regex sources, each matching one way `ch` may be written in an echo."""
    code = ord(ch)
    data = ch.encode("utf-8")
    raw = "".join(f"\\x{b:02x}" for b in data) if as_bytes and code > 0x7F else re.escape(ch)
    # %XX per UTF-8 byte (either hex case), and once more percent-encoded (%25XX).
    percent = "".join(f"%(?:25)?{_hex(b, 2)}" for b in data)
    alternatives = [raw, percent]
    if ch == " ":
        alternatives.append(r"\+")
    # HTML character references: decimal, hex, named (any case), ";" optional as in HTML.
    alternatives.append(f"&\\#0*{code};?")
    alternatives.append(f"&\\#[xX]0*{_hex(code, 1)};?")
    for name in sorted(html_names.get(ch, ()), key=len, reverse=True):
        alternatives.append("&(?i:" + re.escape(name) + ")")
    # JSON / string-literal escapes: \uXXXX (a surrogate pair beyond the BMP) and the short
    # forms, each behind any number of escaping rounds.
    if code > 0xFFFF:
        high, low = divmod(code - 0x10000, 0x400)
        units = [0xD800 + high, 0xDC00 + low]
    else:
        units = [code]
    alternatives.append("".join(f"{_BACKSLASHES}[uU]{_hex(unit, 4)}" for unit in units))
    if ch == "\\":
        # Exact counts, not a range: ranges over a run of backslashes would backtrack badly.
        alternatives.append(r"\\(?:\\(?:\\\\)?)?")
    elif ch in _JSON_SHORT_ESCAPES:
        alternatives.append(_BACKSLASHES + re.escape(_JSON_SHORT_ESCAPES[ch]))
    return alternatives


def value_pattern(value: str, *, any_case: bool = False, as_bytes: bool = False) -> str:
    """A regex source matching `value` written with any mix of encodings per character: raw,
    percent-encoded (either hex case, ``+`` for a space, doubly), HTML character references
    (decimal, hex, named, any case), JSON escapes (``\\uXXXX``, ``\\/``, after one or more
    escaping rounds). With `any_case`, letters match in either case (a key id)."""
    html_names = _HTML_NAMES
    groups = []
    for ch in value:
        variants = {ch, ch.lower(), ch.upper()} if any_case else {ch}
        variants = {v for v in variants if len(v) == 1}
        alternatives: list[str] = []
        for variant in sorted(variants):
            for alternative in _char_alternatives(variant, html_names, as_bytes=as_bytes):
                if alternative not in alternatives:
                    alternatives.append(alternative)
        groups.append("(?:" + "|".join(alternatives) + ")")
    return "".join(groups)


def _base64_forms(raw: bytes) -> set[str]:
    # With and without padding (JWT-style encoders strip it); the longer form wins a match.
    padded = {base64.b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii")}
    return padded | {form.rstrip("=") for form in padded}


def base64_forms(value: str) -> set[str]:
    """`value` inside base64 text: the whole encoding of `value` alone (padded or not), and,
    for `value` at each byte offset in a larger blob (offset mod 3), the run of characters
    that depends on `value` only; standard and URL-safe alphabets."""
    raw = value.encode("utf-8")
    forms = _base64_forms(raw)
    for shift in range(3):
        # Characters [first, last) cover bits that lie wholly inside `value`'s bytes.
        first = -(-8 * shift // 6)
        last = 8 * (shift + len(raw)) // 6
        blob = b"\0" * shift + raw + b"\0\0"
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms.add(encode(blob).decode("ascii")[first:last])
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
        # (value, any_case): matched per character in every encoding (`value_pattern`).
        self._values: frozenset[tuple[str, bool]] = frozenset()
        # Encodings that mix the characters (base64): matched as literal text.
        self._literals: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._bytes_pattern: re.Pattern[bytes] | None = None
        for secret in secrets:
            self.register(secret)

    @classmethod
    def for_settings(cls, settings: "Settings") -> "Redactor":
        """A redactor that knows every secret-looking variable's value the settings were
        read with, and the Alpaca key pair as one (its Basic-auth form)."""
        redactor = cls(secret.get_secret_value() for secret in settings.secret_values)
        key, secret = (
            None if value is None else value.get_secret_value()
            for value in (settings.alpaca_api_key, settings.alpaca_secret_key)
        )
        redactor.register_pair(key, secret)
        return redactor

    @classmethod
    def for_credentials(cls, key_id: str, secret: str) -> "Redactor":
        """A redactor for one API key pair: the key id, the secret, and the pair."""
        redactor = cls([key_id, secret])
        redactor.register_pair(key_id, secret)
        return redactor

    def register(self, value: str | None, *, any_case: bool = False) -> None:
        """Mask `value` in every encoded form from now on (letters in either case with
        `any_case`); values shorter than 4 characters are ignored."""
        if not value:
            return
        values = {(v, any_case) for v in (value, value.strip()) if len(v) >= MIN_SECRET_LENGTH}
        if not values:
            return
        literals: set[str] = set()
        for v, _ in values:
            for case in {v, v.lower(), v.upper()} if any_case else {v}:
                literals |= base64_forms(case)
        self._add(values, literals)

    def register_pair(self, user: str | None, password: str | None) -> None:
        """Mask both values, and the forms that carry them together (``user:password``).
        `user` is a key id: an identifier that may come back in another letter case."""
        if not user or not password:
            return
        self.register(user, any_case=True)
        self.register(password)
        self._add(set(), pair_forms(user, password) | pair_forms(user.strip(), password.strip()))

    def _add(self, values: set[tuple[str, bool]], literals: set[str]) -> None:
        literals = {form for form in literals if len(form) >= MIN_SECRET_LENGTH}
        with self._lock:
            if values <= self._values and literals <= self._literals:
                return
            self._values = self._values | values
            self._literals = self._literals | literals
            # Longest first, so a secret containing another is masked whole, not in part.
            ordered = sorted(
                [(len(v), v, any_case) for v, any_case in self._values]
                + [(len(form), form, None) for form in self._literals],
                key=lambda item: item[0],
                reverse=True,
            )
            text_sources, byte_sources = [], []
            # Every character a match can start with: a position starting with none of them
            # costs one set lookup instead of a try of every alternative (most of a message).
            starts = set("%&\\+")
            for _, item, any_case in ordered:
                starts |= {item[0], item[0].lower(), item[0].upper()} if any_case else {item[0]}
                if any_case is None:
                    text_sources.append(re.escape(item))
                    byte_sources.append(re.escape(item))  # base64: ASCII
                else:
                    text_sources.append(value_pattern(item, any_case=any_case))
                    byte_sources.append(value_pattern(item, any_case=any_case, as_bytes=True))
            text_start = "".join(re.escape(ch) for ch in sorted(starts))
            byte_start = "".join(sorted({f"\\x{ch.encode()[0]:02x}" for ch in starts}))
            self._pattern = re.compile(f"(?=[{text_start}])(?:{'|'.join(text_sources)})")
            self._bytes_pattern = re.compile(
                f"(?=[{byte_start}])(?:{'|'.join(byte_sources)})".encode("ascii")
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
        # Plain containers only: a tuple subclass (a NamedTuple, a Dagster event) rebuilt as a
        # tuple would lose its type for whoever reads it next.
        if type(value) in (list, tuple, set, frozenset):
            items = [self.redact_value(item) for item in cast("Iterable[object]", value)]
            return items if isinstance(value, list) else tuple(items)
        if value is None or isinstance(value, bool | int | float):
            return value
        try:
            text = str(value)
        except Exception:  # an object whose __str__ fails cannot leak through str() either
            return value
        return self.redact(text) if self.contains_secret(text) else value

    def __len__(self) -> int:
        return len(self._values) + len(self._literals)

    def __repr__(self) -> str:
        # Never the values: a repr ends up in tracebacks and debuggers.
        return f"Redactor({len(self)} secret forms)"


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
