"""Settings are validated before anything runs, and each error names its variable (C4, S5)."""

from pathlib import Path

import pytest

from tecl_pipeline.common.endpoints import validate_endpoint
from tecl_pipeline.config.settings import ConfigError, DataFeed, Mode, Settings


def load(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(env, cwd=tmp_path)


def test_defaults_are_demo_with_project_local_state(tmp_path):
    settings = load(tmp_path)
    assert settings.mode is Mode.DEMO
    assert settings.data_dir is None and settings.broker_url is None
    # The built-in demo market keeps its account, journal and logs apart.
    assert settings.machine_dir == tmp_path / ".tecl" / "demo" / "state"
    assert settings.logs_dir == tmp_path / ".tecl" / "demo" / "logs"


@pytest.mark.parametrize("mode", ["paper", "demo with CSV files"])
def test_csv_and_real_data_keep_state_apart_from_the_demo(tmp_path, mode):
    (tmp_path / "csv").mkdir()
    env = {"TECL_MODE": "paper"} if mode == "paper" else {"TECL_DATA_DIR": str(tmp_path / "csv")}
    settings = load(tmp_path, **env)
    assert settings.machine_dir == tmp_path / ".tecl" / "state"
    assert settings.logs_dir == tmp_path / ".tecl" / "logs"


def test_empty_variables_mean_the_default(tmp_path):
    assert load(tmp_path, TECL_MODE="", TECL_DATA_DIR="  ").mode is Mode.DEMO


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TECL_MODE": "sandbox"}, "TECL_MODE"),
        ({"TECL_DATA_DIR": "/no/such/dir"}, "TECL_DATA_DIR"),
        ({"TECL_STATE_URI": "relative/path"}, "TECL_STATE_URI"),
        ({"TECL_STATE_URI": "ftp://host/x"}, "TECL_STATE_URI"),
        ({"TECL_BROKER_URL": "http://broker.example.com"}, "TECL_BROKER_URL"),
        ({"TECL_DATA_URL": "http://10.0.0.5:8080"}, "TECL_DATA_URL"),
        ({"TECL_MODE": "live"}, "TECL_LIVE_CONFIRM"),
        ({"TECL_MODE": "live", "TECL_LIVE_CONFIRM": "yes"}, "TECL_LIVE_CONFIRM"),
        ({"TECL_DATA_FEED": "nasdaq"}, "TECL_DATA_FEED"),
    ],
)
def test_bad_settings_fail_naming_the_variable(tmp_path, env, named):
    with pytest.raises(ConfigError, match=named):
        load(tmp_path, **env)


def test_the_data_feed_is_iex_unless_set(tmp_path):
    """IEX is the feed every Alpaca plan includes, the free one too; SIP and delayed SIP are
    chosen by name."""
    assert load(tmp_path).data_feed is DataFeed.IEX
    assert load(tmp_path, TECL_DATA_FEED="sip").data_feed is DataFeed.SIP
    assert load(tmp_path, TECL_DATA_FEED="delayed_sip").data_feed is DataFeed.DELAYED_SIP


def test_a_bad_data_feed_is_one_line_listing_the_feeds(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, TECL_DATA_FEED="SIP ")
    message = str(raised.value)
    assert "\n" not in message and "TECL_DATA_FEED" in message
    assert all(feed.value in message for feed in DataFeed)


def test_data_dir_and_state_uri_are_read(tmp_path):
    settings = load(tmp_path, TECL_DATA_DIR=str(tmp_path), TECL_STATE_URI=(tmp_path / "s").as_uri())
    assert settings.data_dir == tmp_path
    assert settings.machine_dir == tmp_path / "s"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://localhost:1",
        "http://[::1]:5000",
        "https://api.alpaca.markets",
    ],
)
def test_https_or_loopback_http_is_accepted(url):
    """S5: keys travel over TLS, or stay on this machine."""
    assert validate_endpoint(url + "/", "endpoint") == url


@pytest.mark.parametrize(
    "url", ["http://paper-api.alpaca.markets", "http://192.168.1.10", "ftp://127.0.0.1", "https://"]
)
def test_plain_http_off_this_machine_is_refused(url):
    with pytest.raises(ValueError, match=r"https|valid URL"):
        validate_endpoint(url, "endpoint")


def test_s3_state_keeps_machine_local_state_on_this_machine(tmp_path):
    settings = load(tmp_path, TECL_STATE_URI="s3://tecl-state/prod")
    assert settings.state_uri == "s3://tecl-state/prod"
    assert settings.machine_dir.name == "local" and settings.machine_dir.is_absolute()


@pytest.mark.parametrize("uri", ["s3://", "s3:///prefix-without-bucket"])
def test_s3_state_needs_a_bucket(tmp_path, uri):
    with pytest.raises(ConfigError, match="TECL_STATE_URI"):
        load(tmp_path, TECL_STATE_URI=uri)


def test_a_state_uri_with_credentials_is_refused_when_read_without_echoing_them(tmp_path):
    """S2, C4: user:password in TECL_STATE_URI stops at the settings read, before any run,
    and the line names the variable but never the credentials."""
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"TECL_STATE_URI": "s3://AKIAUSER:s3cr3t@bucket/x"}, cwd=tmp_path)
    message = str(refused.value)
    assert "TECL_STATE_URI" in message and "user name or password" in message
    assert "s3cr3t" not in message and "AKIAUSER" not in message
