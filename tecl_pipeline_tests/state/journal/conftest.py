"""A local (file://) journal with its spool, for the journal tests; the S3 tests define
their own `journal` and `spool_dir`."""

from pathlib import Path

import pytest

from tecl_pipeline.adapters.journal_store import open_journal
from tecl_pipeline.state.journal.base import JournalStore
from tecl_pipeline_tests.adapters.aws.moto_fixtures import Events


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def journal(root: Path, spool_dir: Path, journal_events: Events) -> JournalStore:
    return open_journal(root.as_uri(), spool_dir=spool_dir, on_event=journal_events)
