"""Reproducible randomness in the suite (R2): one fixed, printed seed per test.

- The `seed` fixture is the seed a test draws all of its randomness from (RNGs, fault plans,
  jitter). It is fixed: derived from the test's node id (CRC-32, stable across runs, machines
  and Python's hash randomisation), so every run of a test sees the same values. Setting
  TECL_TEST_SEED=<n> overrides it for every test, to replay a failure or explore other seeds.
  The fixture prints `seed=<n> (rerun with TECL_TEST_SEED=<n>)`; pytest shows a failing
  test's captured output, so the seed is always in the failure report.
- Hypothesis runs under the "tecl" profile: derandomized (the examples depend only on the
  test, never on the run) with no example database, and `print_blob` so a failure prints the
  `@reproduce_failure` line that replays it. `--hypothesis-profile=tecl-explore` (optionally
  with `--hypothesis-seed=<n>`) draws fresh examples instead.

tecl_pipeline_tests/test_seeds.py checks statically that every test's randomness is seeded
and its seed printed.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping

import pytest
from hypothesis import settings

SEED_ENV = "TECL_TEST_SEED"

settings.register_profile("tecl", derandomize=True, database=None, print_blob=True)
settings.register_profile("tecl-explore", derandomize=False, database=None, print_blob=True)
settings.load_profile("tecl")


def seed_for(nodeid: str, environ: Mapping[str, str] = os.environ) -> int:
    """The seed of the test `nodeid`: TECL_TEST_SEED if set, else a fixed hash of the id."""
    override = environ.get(SEED_ENV, "").strip()
    if override:
        try:
            return int(override)
        except ValueError:
            raise pytest.UsageError(f"{SEED_ENV} must be an integer, got {override!r}") from None
    return zlib.crc32(nodeid.encode())


def seed_banner(value: int) -> str:
    return f"seed={value} (rerun with {SEED_ENV}={value})"


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """This test's fixed seed, printed so that a failure's captured output shows it."""
    value = seed_for(request.node.nodeid)
    print(seed_banner(value))
    return value


def pytest_report_header(config: pytest.Config) -> str:
    override = os.environ.get(SEED_ENV, "").strip()
    source = f"{SEED_ENV}={override}" if override else "fixed per test (CRC-32 of the node id)"
    return f"tecl seeds: {source}; hypothesis profile: {settings.get_current_profile_name()}"
