"""Credentials never show their secret, and providers refresh on demand (S2, B4, X6, C4)."""

import logging

import pytest

from tecl_pipeline.trading.credentials import (
    Credentials,
    EnvCredentials,
    MissingCredentialsError,
    StaticCredentials,
)
from tecl_pipeline.trading.errors import AuthError

SECRET = "s3cr3t-VALUE-never-shown"
KEY = "PKTESTKEYID123456"


def test_repr_and_str_never_show_the_secret(caplog):
    """S2: repr, str, f-strings and log records hide the secret (and most of the key id)."""
    creds = Credentials(KEY, SECRET)
    logging.getLogger("test").warning("using %s / %r", creds, creds)
    shown = [repr(creds), str(creds), f"{creds}", f"{creds!r}", caplog.text]
    shown.append(repr(StaticCredentials(creds)))
    for text in shown:
        assert SECRET not in text
        assert KEY not in text
    assert "PKTE" in repr(creds)


@pytest.mark.parametrize(
    ("key", "secret", "field"),
    [("", SECRET, "key_id"), (KEY, "", "secret_key"), (KEY, "  ", "secret_key")],
)
def test_empty_values_are_refused_without_echoing_them(key, secret, field):
    """C4, S2: a bad pair fails at once, naming the field, never the other value."""
    with pytest.raises(ValueError, match=field) as caught:
        Credentials(key, secret)
    assert SECRET not in str(caught.value)


def test_static_credentials_refresh_returns_the_same_pair():
    """B4: a fixed pair cannot change; refreshing is harmless."""
    creds = Credentials(KEY, SECRET)
    provider = StaticCredentials(creds)
    assert provider.get() is creds
    assert provider.get(refresh=True) is creds


def test_env_credentials_read_once_and_reread_on_refresh():
    """X6: a rotated key is picked up on refresh, not before (the cache is per provider)."""
    environ = {"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET}
    provider = EnvCredentials(environ)
    assert provider.get() == Credentials(KEY, SECRET)
    environ["ALPACA_SECRET_KEY"] = "rotated-secret"
    assert provider.get().secret_key == SECRET
    assert provider.get(refresh=True).secret_key == "rotated-secret"
    assert provider.get().secret_key == "rotated-secret"


def test_env_credentials_strip_a_trailing_newline():
    """B4: a secret mounted from a file with a newline must not be sent as a wrong key."""
    provider = EnvCredentials({"ALPACA_API_KEY": KEY + "\n", "ALPACA_SECRET_KEY": SECRET + "\n"})
    assert provider.get() == Credentials(KEY, SECRET)


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({}, "ALPACA_API_KEY"),
        ({"ALPACA_API_KEY": KEY}, "ALPACA_SECRET_KEY"),
        ({"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": ""}, "ALPACA_SECRET_KEY"),
        ({"ALPACA_API_KEY": " ", "ALPACA_SECRET_KEY": SECRET}, "ALPACA_API_KEY"),
    ],
)
def test_missing_variable_is_named_and_no_value_is_shown(environ, missing):
    """C4, S2: the error names the variable that is missing, never a value."""
    with pytest.raises(MissingCredentialsError, match=missing) as caught:
        EnvCredentials(environ).get()
    assert isinstance(caught.value, AuthError)
    assert SECRET not in str(caught.value)
    assert KEY not in str(caught.value)


def test_custom_variable_names_and_a_refresh_that_finds_the_secret_gone():
    """X6: a refresh that finds no secret fails clearly, naming the variable."""
    environ = {"MY_KEY": KEY, "MY_SECRET": SECRET}
    provider = EnvCredentials(environ, key_var="MY_KEY", secret_var="MY_SECRET")
    assert provider.get().key_id == KEY
    del environ["MY_SECRET"]
    with pytest.raises(MissingCredentialsError, match="MY_SECRET"):
        provider.get(refresh=True)
    assert "MY_SECRET" in repr(provider)
    assert SECRET not in repr(provider)
