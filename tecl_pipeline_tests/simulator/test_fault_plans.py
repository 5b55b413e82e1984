"""Fault plans on their own: rule matching, counting, and reproducibility from the seed (R2)."""

import pytest

from tecl_pipeline.simulator.faults import FaultKind, FaultPlan, FaultPlanError, FaultRule

ENDPOINTS = (
    "GET /v2/account",
    "POST /v2/orders",
    "GET /v2/orders/{id}",
    "GET /v2/stocks/bars",
    "GET /v2/clock",
)


def _run(plan: FaultPlan, n: int = 200) -> list[str | None]:
    outcomes = []
    for i in range(n):
        fault = plan.decide(ENDPOINTS[i % len(ENDPOINTS)])
        outcomes.append(None if fault is None else fault.kind.value)
    return outcomes


def _plan(seed: int) -> FaultPlan:
    return FaultPlan.from_json(
        {
            "seed": seed,
            "rules": [
                {"endpoint": "POST /v2/orders", "kind": "drop_response", "probability": 0.3},
                {"endpoint": "GET *", "kind": "rate_limit", "probability": 0.2},
                {"endpoint": "*", "kind": "server_error", "probability": 0.1},
            ],
        }
    )


@pytest.mark.parametrize("seed", [0, 7, 20261124])
def test_the_same_seed_gives_the_same_faults(seed):
    """R2: a plan replayed from its seed injects the same faults into the same requests."""
    print(f"fault plan seed: {seed}")
    first, second = _plan(seed), _plan(seed)
    assert _run(first) == _run(second)
    assert first.log == second.log
    assert first.injected == second.injected
    assert sum(first.injected.values()) > 0


def test_different_seeds_give_different_faults():
    print("fault plan seeds: 1, 2")
    assert _run(_plan(1)) != _run(_plan(2))


def test_probability_is_roughly_honoured():
    seed = 99
    print(f"fault plan seed: {seed}")
    plan = FaultPlan.from_json({"seed": seed, "rules": [{"kind": "latency", "probability": 0.25}]})
    hits = sum(plan.decide("GET /v2/account") is not None for _ in range(2000))
    assert 400 < hits < 600


def test_after_skips_the_first_matches_and_times_caps_the_injections(seed):
    plan = FaultPlan.from_json(
        {
            "seed": seed,
            "rules": [{"endpoint": "GET /v2/account", "kind": "timeout", "after": 2, "times": 3}],
        }
    )
    outcomes = [plan.decide("GET /v2/account") for _ in range(8)]
    assert [o is not None for o in outcomes] == [
        False,
        False,
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    assert plan.injected == {"timeout": 3}
    assert [e["request"] for e in plan.log] == [3, 4, 5]


def test_only_matching_endpoints_count_towards_after_and_times(seed):
    plan = FaultPlan.from_json(
        {
            "seed": seed,
            "rules": [{"endpoint": "POST /v2/orders", "kind": "drop_response", "after": 1}],
        }
    )
    assert plan.decide("GET /v2/account") is None
    assert plan.decide("POST /v2/orders") is None  # the first match is skipped
    assert plan.decide("GET /v2/account") is None
    fault = plan.decide("POST /v2/orders")
    assert fault is not None and fault.kind is FaultKind.DROP_RESPONSE


def test_the_first_rule_that_fires_wins(seed):
    plan = FaultPlan.from_json(
        {
            "seed": seed,
            "rules": [
                {"endpoint": "GET /v2/orders/{id}", "kind": "rate_limit", "times": 1},
                {"endpoint": "*", "kind": "server_error"},
            ],
        }
    )
    first, second = plan.decide("GET /v2/orders/{id}"), plan.decide("GET /v2/orders/{id}")
    assert first is not None and first.kind is FaultKind.RATE_LIMIT
    assert second is not None and second.kind is FaultKind.SERVER_ERROR
    assert plan.injected == {"rate_limit": 1, "server_error": 1}


def test_endpoint_patterns():
    rule = FaultRule(kind=FaultKind.LATENCY, endpoint="GET *")
    assert rule.matches("GET /v2/orders/{id}")
    assert not rule.matches("POST /v2/orders")
    assert FaultRule(kind=FaultKind.LATENCY).matches("DELETE /v2/orders")
    assert FaultRule(kind=FaultKind.LATENCY, endpoint="* /v2/orders").matches("DELETE /v2/orders")


def test_defaults_and_status_override(seed):
    plan = FaultPlan.from_json(
        {
            "seed": seed,
            "rules": [
                {"kind": "maintenance", "retry_after": 30, "times": 1},
                {"kind": "server_error", "status": 504},
            ],
        }
    )
    maintenance, gateway = plan.decide("GET /v2/clock"), plan.decide("GET /v2/clock")
    assert maintenance is not None and (maintenance.status, maintenance.retry_after) == (503, 30)
    assert gateway is not None and gateway.status == 504
    assert plan.to_json()["rules"][1]["status"] == 504


def test_which_faults_still_perform_the_request():
    """B5: a dropped acknowledgement or a mangled body happen after the broker acted."""
    performing = {k for k in FaultKind if k.performs_request}
    assert performing == {FaultKind.LATENCY, FaultKind.DROP_RESPONSE, FaultKind.MALFORMED}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"seed": 1, "rules": [{"kind": "meteor"}]}, "unknown fault kind"),
        ({"seed": 1, "rules": [{"endpoint": "*"}]}, "needs a 'kind'"),
        ({"seed": 1, "rules": [{"kind": "latency", "probability": 1.5}]}, "probability"),
        ({"seed": 1, "rules": [{"kind": "latency", "times": -1}]}, "times"),
        ({"seed": 1, "rules": [{"kind": "latency", "delay": "slow"}]}, "delay"),
        ({"seed": 1, "rules": [{"kind": "latency", "status": 999}]}, "status"),
        ({"seed": 1, "rules": [{"kind": "latency", "colour": "red"}]}, "unknown fault rule field"),
        ({"seed": "x", "rules": []}, "seed"),
        ({"seed": 1, "rules": "latency"}, "rules must be a list"),
    ],
)
def test_invalid_plans_are_refused_naming_the_field(payload, message):
    with pytest.raises(FaultPlanError, match=message):
        FaultPlan.from_json(payload)
