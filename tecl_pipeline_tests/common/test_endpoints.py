"""Where credentials may be sent (S5): URLs that are malformed, or carry a query, a
fragment or /v2, are refused with a message naming the setting."""

import pytest

from tecl_pipeline.common.endpoints import is_loopback, validate_endpoint


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://127.0.0.1:99999", "is not a valid URL"),
        ("http://127.0.0.1:port", "is not a valid URL"),
        ("https://api.alpaca.markets?key=1", "must not have a query or fragment"),
        ("https://api.alpaca.markets#top", "must not have a query or fragment"),
        ("https://api.alpaca.markets/v2/", "must be the base URL, without /v2"),
        ("https://user:pw@api.alpaca.markets", "must not contain a user name or password"),
    ],
)
def test_unusable_urls_are_refused_naming_the_setting(url, match):
    with pytest.raises(ValueError, match=match) as caught:
        validate_endpoint(url, "TECL_BROKER_URL")
    assert str(caught.value).startswith("TECL_BROKER_URL")
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("LOCALHOST", True), ("127.8.9.10", True), ("::1", True), ("10.0.0.1", False), ("x", False)],
)
def test_only_this_machine_counts_as_loopback(host, loopback):
    assert is_loopback(host) is loopback
