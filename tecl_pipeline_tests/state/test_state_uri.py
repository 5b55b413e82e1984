"""One state URI, one folder: a percent-encoded `file://` URI (a folder with a space) puts the
journal, the session locks, the spool, the demo account and the logs under the same decoded
path, and nothing under a literal `%20` folder (D1, D3: state split in two is state lost)."""

from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance

from tecl_pipeline.adapters.journal_store import open_journal
from tecl_pipeline.config.settings import ConfigError, Settings
from tecl_pipeline.definitions import build_definitions

SESSION = date(2026, 11, 24)


def test_an_encoded_state_uri_is_one_decoded_folder_for_every_artefact(tmp_path):
    state = tmp_path / "x y" / "state"
    uri = state.as_uri()
    assert "%20" in uri  # what Path.as_uri() and a hand-written URI both say for a space
    settings = Settings(state_uri=uri)
    assert settings.machine_dir == state
    journal = open_journal(f"{uri}/journal", spool_dir=settings.machine_dir / "spool")
    assert journal.location == (state / "journal").as_uri()

    job = build_definitions(settings).resolve_job_def("daily_trading_job")
    result = job.execute_in_process(
        partition_key=SESSION.isoformat(),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )

    assert result.success
    [record] = (state / "journal" / "sessions" / SESSION.isoformat()).glob("*.json")
    assert result.asset_value("post_trade_positions").journal_record == str(record)
    assert (state / "locks" / f"{SESSION.isoformat()}.lock").is_file()
    assert (state / "spool").is_dir()
    assert (state / "demo-broker" / "account.json").is_file()
    assert (state.parent / "logs").is_dir()
    encoded = [p for p in tmp_path.rglob("*") if "%" in p.name]
    assert encoded == [], f"state written under an undecoded path: {encoded}"


def test_a_decoded_and_an_encoded_uri_name_the_same_journal(tmp_path: Path):
    """Two runs configured with the two spellings of one folder read one journal."""
    state = tmp_path / "a b"
    encoded = open_journal(state.as_uri(), spool_dir=tmp_path / "spool")
    plain = open_journal(f"file://{state}", spool_dir=tmp_path / "spool")
    assert encoded.location == plain.location == state.as_uri()
    assert Settings(state_uri=f"file://{state}").machine_dir == state


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("file:///srv/tecl?x=1", "query or fragment"),
        ("s3://bucket/prefix?X-Amz-Signature=s3cr3t", "query or fragment"),
        ("s3://bucket/prefix#top", "query or fragment"),
        ("file://otherhost/srv/tecl", "absolute file:///DIR"),
        ("file:relative/tecl", "absolute file:///DIR"),
        ("https://bucket/prefix", "absolute file:///DIR"),
        ("s3://AKIAUSER:s3cr3t@bucket/x", "user name or password"),
    ],
)
def test_a_state_uri_of_the_wrong_shape_is_refused_alike_by_the_settings_and_the_journal(
    tmp_path: Path, uri: str, why: str
) -> None:
    """One check of the state URI's shape: what the settings refuse, naming TECL_STATE_URI,
    opening the journal refuses for the same reason; neither echoes a user-info part."""
    with pytest.raises(ConfigError, match=why) as read:
        Settings.from_env({"TECL_STATE_URI": uri}, cwd=tmp_path)
    with pytest.raises(ConfigError, match=why) as opened:
        open_journal(uri, spool_dir=tmp_path / "spool")
    assert "TECL_STATE_URI" in str(read.value)
    assert all("s3cr3t" not in str(e.value) for e in (read, opened))


@pytest.mark.parametrize("host", ["", "localhost", "LOCALHOST"])
def test_a_file_uri_of_this_machine_is_accepted_alike_by_the_settings_and_the_journal(
    tmp_path: Path, host: str
) -> None:
    """file:///DIR and file://localhost/DIR (a host name in any case, RFC 8089) name the
    same folder, for the settings and for the journal."""
    uri = f"file://{host}{tmp_path / 'state'}"
    assert Settings.from_env({"TECL_STATE_URI": uri}, cwd=tmp_path).state_uri == uri
    journal = open_journal(uri, spool_dir=tmp_path / "spool")
    assert str(tmp_path / "state") in journal.location
