"""Which session a run's partition key names, for the sensors' alerts (C1)."""

from datetime import date

import pytest

from tecl_pipeline.defs.partitions import session_of


@pytest.mark.parametrize(
    ("key", "session"),
    [
        ("2026-11-24", date(2026, 11, 24)),
        (None, None),
        ("", None),
        ("backfill-2026", None),  # a foreign partition key is no session, not a crash
    ],
)
def test_a_partition_key_names_a_session_or_none(key, session):
    assert session_of(key) == session
