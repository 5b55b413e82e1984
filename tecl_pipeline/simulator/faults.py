"""Fault plans: which request gets which wire-level fault, reproducibly from a seed (R2, R3).

A plan is a list of rules and one `random.Random(seed)`. For every request, the rules are
tried in order; each rule that matches the endpoint and still has injections left draws one
number, and the first draw under its probability wins. The same seed and the same sequence
of requests therefore give the same faults, run after run.

Not thread-safe on its own: the simulator consults it under its one lock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any


class FaultKind(StrEnum):
    LATENCY = "latency"
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    MAINTENANCE = "maintenance"
    BAD_GATEWAY_HTML = "bad_gateway_html"
    DROP_RESPONSE = "drop_response"
    ERROR_BODY = "error_body"
    MALFORMED = "malformed"
    UNAUTHORIZED = "unauthorized"

    @property
    def performs_request(self) -> bool:
        """Whether the broker still carries out the request (only the answer is wrong or late).

        A lost acknowledgement or a mangled body means the order may exist all the same; the
        other faults stop the request before it reaches the broker's book.
        """
        return self in _PERFORMING

    @property
    def default_status(self) -> int | None:
        return _DEFAULT_STATUS.get(self)


_PERFORMING = frozenset({FaultKind.LATENCY, FaultKind.DROP_RESPONSE, FaultKind.MALFORMED})
_DEFAULT_STATUS: Mapping[FaultKind, int] = MappingProxyType(
    {
        FaultKind.RATE_LIMIT: 429,
        FaultKind.SERVER_ERROR: 500,
        FaultKind.MAINTENANCE: 503,
        FaultKind.BAD_GATEWAY_HTML: 502,
        FaultKind.ERROR_BODY: 200,
        FaultKind.MALFORMED: 200,
        FaultKind.UNAUTHORIZED: 401,
    }
)

_RULE_KEYS = frozenset(
    {"endpoint", "kind", "probability", "times", "after", "retry_after", "delay", "status"}
)


class FaultPlanError(ValueError):
    """A fault plan or rule that cannot be used; the message names the field."""


@dataclass(frozen=True)
class FaultRule:
    """One line of a plan. `endpoint` is "METHOD /path/template" (e.g. "GET /v2/orders/{id}"),
    "*" for every broker request, or a shell-style pattern such as "GET *"."""

    kind: FaultKind
    endpoint: str = "*"
    probability: float = 1.0
    times: int | None = None
    after: int = 0
    retry_after: int = 1
    delay: float = 0.5
    status: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise FaultPlanError(f"probability must be within 0..1, got {self.probability}")
        if self.times is not None and self.times < 0:
            raise FaultPlanError(f"times must be >= 0 or null, got {self.times}")
        if self.after < 0:
            raise FaultPlanError(f"after must be >= 0, got {self.after}")
        if self.retry_after < 0:
            raise FaultPlanError(f"retry_after must be >= 0, got {self.retry_after}")
        if not (math.isfinite(self.delay) and self.delay >= 0):
            raise FaultPlanError(f"delay must be a finite number >= 0, got {self.delay}")
        if self.status is not None and not 100 <= self.status <= 599:
            raise FaultPlanError(f"status must be an HTTP status 100..599, got {self.status}")

    @classmethod
    def from_json(cls, data: object) -> FaultRule:
        if not isinstance(data, Mapping):
            raise FaultPlanError(f"a fault rule must be a JSON object, got {data!r}")
        unknown = sorted(set(data) - _RULE_KEYS)
        if unknown:
            raise FaultPlanError(f"unknown fault rule field(s): {', '.join(unknown)}")
        try:
            kind = FaultKind(data["kind"])
        except KeyError:
            raise FaultPlanError("a fault rule needs a 'kind'") from None
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise FaultPlanError(f"unknown fault kind {data['kind']!r} (known: {known})") from None
        endpoint = data.get("endpoint", "*")
        if not isinstance(endpoint, str) or not endpoint:
            raise FaultPlanError(f"endpoint must be a non-empty string, got {endpoint!r}")
        times = data.get("times")
        status = data.get("status")
        return cls(
            kind=kind,
            endpoint=endpoint,
            probability=_number(data, "probability", 1.0),
            times=None if times is None else _integer(data, "times", 0),
            after=_integer(data, "after", 0),
            retry_after=_integer(data, "retry_after", 1),
            delay=_number(data, "delay", 0.5),
            status=None if status is None else _integer(data, "status", 0),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "kind": self.kind.value,
            "probability": self.probability,
            "times": self.times,
            "after": self.after,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "status": self.status,
        }

    def matches(self, endpoint: str) -> bool:
        return self.endpoint == endpoint or fnmatchcase(endpoint, self.endpoint)


def _number(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultPlanError(f"{key} must be a number, got {value!r}")
    return float(value)


def _integer(data: Mapping[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultPlanError(f"{key} must be an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class Fault:
    """A decision to inject: what, and with which parameters."""

    kind: FaultKind
    rule_index: int
    status: int | None
    retry_after: int
    delay: float


@dataclass
class _RuleState:
    matched: int = 0
    injected: int = 0


@dataclass
class FaultPlan:
    seed: int
    rules: tuple[FaultRule, ...]
    _rng: random.Random = field(init=False, repr=False)
    _states: list[_RuleState] = field(init=False, repr=False)
    injected: dict[str, int] = field(init=False)
    log: list[dict[str, Any]] = field(init=False)
    _requests: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._states = [_RuleState() for _ in self.rules]
        self.injected = {}
        self.log = []

    @classmethod
    def empty(cls) -> FaultPlan:
        return cls(seed=0, rules=())

    @classmethod
    def from_json(cls, payload: object) -> FaultPlan:
        if not isinstance(payload, Mapping):
            raise FaultPlanError("a fault plan must be a JSON object {seed, rules}")
        seed = payload.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise FaultPlanError(f"seed must be an integer, got {seed!r}")
        rules = payload.get("rules", [])
        if not isinstance(rules, Sequence) or isinstance(rules, str):
            raise FaultPlanError("rules must be a list of fault rules")
        return cls(seed=seed, rules=tuple(FaultRule.from_json(rule) for rule in rules))

    def decide(self, endpoint: str) -> Fault | None:
        """The fault for this request, if any; call once per request, in arrival order."""
        self._requests += 1
        for index, (rule, state) in enumerate(zip(self.rules, self._states, strict=True)):
            if not rule.matches(endpoint):
                continue
            state.matched += 1
            if state.matched <= rule.after:
                continue
            if rule.times is not None and state.injected >= rule.times:
                continue
            if self._rng.random() >= rule.probability:
                continue
            state.injected += 1
            self.injected[rule.kind.value] = self.injected.get(rule.kind.value, 0) + 1
            self.log.append(
                {"request": self._requests, "endpoint": endpoint, "kind": rule.kind.value}
            )
            return Fault(
                kind=rule.kind,
                rule_index=index,
                status=rule.status if rule.status is not None else rule.kind.default_status,
                retry_after=rule.retry_after,
                delay=rule.delay,
            )
        return None

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "rules": [rule.to_json() for rule in self.rules]}
