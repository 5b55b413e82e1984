"""Where credentials may be sent: HTTPS anywhere, plain HTTP only to this machine (S5).

Light on purpose (no alpaca-py): settings validate endpoints at load time with it.
"""

import ipaddress
from urllib.parse import urlsplit

_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def validate_endpoint(url: str, what: str = "broker URL") -> str:
    """The URL without a trailing slash, if it is safe to send credentials to (S5).

    HTTPS anywhere; plain HTTP only to this machine (127.0.0.0/8, ::1, localhost), which
    is where the simulator runs. Anything else would put the API secret on the wire.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError as exc:
        raise ValueError(f"{what} {url!r} is not a valid URL") from exc
    if parts.username is not None or parts.password is not None:
        # Credentials travel in headers; a URL carrying some would end up in logs.
        raise ValueError(f"{what} must not contain a user name or password")
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"{what} {url!r} must be https://HOST[:PORT][/PATH]")
    if parts.query or parts.fragment:
        raise ValueError(f"{what} {url!r} must not have a query or fragment")
    if parts.path.rstrip("/").endswith("/v2"):
        # alpaca-py appends /v2 itself; ".../v2/v2/orders" would 404 on every call.
        raise ValueError(f"{what} {url!r} must be the base URL, without /v2")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(
            f"{what} {url!r} uses plain http to a non-loopback host; the API secret "
            "would travel unencrypted. Use https (plain http is allowed only to "
            "127.0.0.0/8, ::1 or localhost)"
        )
    return url.rstrip("/")


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
