"""The optional apprise alert sink (TECL_APPRISE_URL): one URL per service reaches
Telegram, Discord, Slack, e-mail, ntfy... through apprise (https://github.com/caronc/apprise).

Apprise URLs are credentials (a bot token, a webhook's secret path, a mail password), so:

- S5, https only: a URL is accepted only in a form on the allow-list below, whose service
  apprise reaches over TLS, with the server's certificate checked (no ``verify=no``) and no
  redirect followed (``redirect=yes`` is refused: it could lead to plain http). Anything
  else is refused when the alert resource is built, in one line that names the setting and
  never the URL.
- S2: the value, each URL and every part of one that can be a credential are registered
  with the redactor before apprise parses anything.
- Apprise logs through its "apprise" logger: whole request URLs at DEBUG, a rejected token
  in some warnings. That logger reaches no handler but ours: WARNING and above only, each
  line redacted and any URL in it replaced, re-logged on "tecl_pipeline.alerts.apprise"
  (the project's redacted JSON log). While a URL is being checked it logs nothing at all.

Imported only when an apprise URL is configured: the rest of the alert path stays plain
stdlib (see alerts.py), so a broken third-party HTTP stack cannot take the log, the file
and the webhook down with it.
"""

import logging
import re
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from tecl_pipeline.common.events import Severity
from tecl_pipeline.config.settings import ENV_KEYS, ConfigError
from tecl_pipeline.observability.logs import LOGGER_NAME
from tecl_pipeline.observability.redaction import Redactor

if TYPE_CHECKING:
    from apprise import NotifyBase

    from tecl_pipeline.observability.alerts import Alert

SETTING: Final = ENV_KEYS["alert_apprise_url"]
APPRISE_LOGGER: Final = "apprise"
FORWARDED_LOGGER: Final = f"{LOGGER_NAME}.alerts.apprise"
DELIVERY_TIMEOUT: Final = 10.0
"""Seconds for one alert, all attempts included: a slow service must not hold up a run."""

TLS_FORMS: Final = frozenset(
    {
        "apprises",
        "forms",
        "gotifys",
        "jsons",
        "mailtos",
        "matrixs",
        "mmosts",
        "nclouds",
        "nctalks",
        "ntfys",
        "rockets",
        "signals",
        "xmls",
    }
)
"""Self-hosted services, in the form in which apprise speaks https to them (their
`secure_protocol`); the form without the `s` is clear text and refused. E-mail also needs
its TLS mode (ssl or starttls, the default), not ``mode=insecure``."""
HTTPS_SERVICES: Final = frozenset(
    {"discord", "gchat", "opsgenie", "pagerduty", "pbul", "pover", "slack", "tgram"}
)
"""Services apprise reaches only at their own https API: there is no clear-text form."""
_TLS_MAIL_MODES: Final = frozenset({"ssl", "starttls"})
# Apprise's canonical URL of an e-mail service says its TLS mode in this attribute.
_MAIL_MODE_ATTRIBUTE: Final = "secure_mode"

_FORWARD_HANDLER: Final = "tecl_pipeline.apprise_forward"
# Set while this thread has apprise parse a URL being checked: a ContextVar, so that another
# thread's alert, delivered meanwhile, still logs what it must.
_CHECKING: ContextVar[bool] = ContextVar("tecl_pipeline_apprise_checking", default=False)
_ANY_URL: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")
_URL_PLACEHOLDER: Final = "<url>"
# Query keys whose value is a credential whatever it looks like.
_CREDENTIAL_KEYS: Final = ("pass", "token", "key", "secret")
_NOT_A_TOKEN_HOSTS: Final = frozenset({"localhost"})


def apprise_sinks(
    value: str, redactor: Redactor, *, timeout: float = DELIVERY_TIMEOUT
) -> tuple["AppriseSink", ...]:
    """One sink per URL of `value` (apprise's list: URLs separated by spaces or commas).
    Registers the credentials with `redactor` first; raises ConfigError naming the setting,
    in one line without the URL, for a URL that apprise cannot read or that would not
    travel over verified TLS."""
    register_apprise_secrets(value, redactor)
    urls = split_urls(value)
    if not urls:
        raise ConfigError(f"{SETTING}: no apprise URL in the value")
    route_apprise_logs(redactor)
    sinks = []
    for number, url in enumerate(urls, start=1):
        where = f"URL {number} of {len(urls)}: " if len(urls) > 1 else ""
        try:
            plugin = checked_plugin(url)
        except ValueError as exc:
            raise ConfigError(f"{SETTING}: {where}{redactor.redact(str(exc))}") from None
        # Apprise's own rewriting of the URL (its canonical form) is what it logs and sends.
        with _quiet_apprise():
            canonical = str(plugin.url(privacy=False))
        redactor.register(canonical)
        register_apprise_secrets(canonical, redactor)
        sinks.append(AppriseSink(plugin, redactor, timeout=timeout, number=number))
    return tuple(sinks)


def checked_plugin(url: str) -> "NotifyBase":
    """Apprise's plugin for `url`, if its service would send only over verified TLS.
    ValueError says why not, naming the scheme and the service, never the URL."""
    import apprise

    with _quiet_apprise():
        plugin = apprise.Apprise.instantiate(url, asset=_asset())
        try:
            # Apprise's own rewriting of the URL: the form it sends with (ntfy://topic, a
            # topic on ntfy.sh, is ntfys://; a native https://discord.com/... is discord://).
            scheme = urlsplit(str(plugin.url(privacy=True))).scheme.lower() if plugin else ""
        except Exception:
            scheme = ""
    if plugin is None or not scheme:
        raise ValueError(
            "not a URL apprise can read (an unknown service, or a token of the wrong form)"
        )
    service = f"{scheme}:// ({plugin.service_name})"
    if not plugin.verify_certificate:
        raise ValueError(
            f"{service} with verify=no would not check the server's certificate; trust "
            "its CA instead (REQUESTS_CA_BUNDLE)"
        )
    if plugin.redirects:
        raise ValueError(f"{service} with redirect=yes could be redirected to plain http")
    if scheme in TLS_FORMS:
        mode = getattr(plugin, _MAIL_MODE_ATTRIBUTE, None)
        if scheme == "mailtos" and mode not in _TLS_MAIL_MODES:
            raise ValueError(f"{service} with mode={mode} would send the mail in clear text")
        return plugin
    if scheme in HTTPS_SERVICES:
        return plugin
    secure = _secure_form(plugin)
    if secure and secure != scheme:
        raise ValueError(f"{service} sends in clear text; use its TLS form {secure}://")
    known = ", ".join(f"{s}://" for s in sorted(TLS_FORMS | HTTPS_SERVICES))
    raise ValueError(f"{service} is not one of the forms known to send only over TLS: {known}")


def _secure_form(plugin: "NotifyBase") -> str | None:
    secure = type(plugin).secure_protocol
    if isinstance(secure, tuple | list):
        secure = secure[0] if secure else None
    return secure if isinstance(secure, str) else None


def _asset() -> Any:
    import apprise
    from apprise import PersistentStoreMode

    # No redirect followed (one could lead to plain http); nothing kept on disk (a cache
    # of a service's answers would sit beside the token that fetched it).
    return apprise.AppriseAsset(
        http_redirects=False, secure_logging=True, storage_mode=PersistentStoreMode.MEMORY
    )


def split_urls(value: str) -> tuple[str, ...]:
    from apprise.utils.parse import parse_urls

    return tuple(url for url in parse_urls(value) if url.strip())


def register_apprise_secrets(value: str, redactor: Redactor) -> None:
    """`value`, each of its URLs, and every part of one that can be a credential: the user
    name and password, a "host" that is a token (a Telegram bot token, a Discord webhook
    id: no dot, not an address), path segments and query values that look like tokens
    (long, or holding a digit), and any value of a key naming a credential. Common words
    ("webhooks", "services") stay readable elsewhere; the whole path is registered too."""
    redactor.register(value)
    for url in split_urls(value):
        redactor.register(url)
        try:
            parts = urlsplit(url)
        except ValueError:
            continue  # the check refuses it, and the whole URL is registered
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        redactor.register(unquote(password))
        if _token_like(unquote(user)):
            redactor.register(unquote(user))
        if _token_host(hostport):
            redactor.register(hostport)
            for piece in hostport.split(":"):
                if _token_like(piece):
                    redactor.register(piece)
        if len(parts.path.strip("/")) >= 8:
            redactor.register(parts.path)
        for segment in parts.path.split("/"):
            if _token_like(unquote(segment)):
                redactor.register(unquote(segment))
        for key, item in parse_qsl(parts.query):
            if _token_like(item) or any(word in key.lower() for word in _CREDENTIAL_KEYS):
                redactor.register(item)


def _token_like(text: str) -> bool:
    return len(text) >= 16 or (len(text) >= 8 and any(ch.isdigit() for ch in text))


def _token_host(hostport: str) -> bool:
    host = hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport
    if "." in host or host.startswith("[") or host.lower() in _NOT_A_TOKEN_HOSTS:
        return False
    return _token_like(hostport)


class AppriseDeliveryError(RuntimeError):
    """Apprise answered that the service did not take the alert."""


_NOTIFY_TYPES: Final = MappingProxyType(
    {Severity.INFO: "info", Severity.WARNING: "warning", Severity.CRITICAL: "failure"}
)


class AppriseSink:
    """Sends each alert through one apprise service: the title, then the detail and where
    it comes from (kind, session, run). Raises AppriseDeliveryError when apprise reports a
    failure, with apprise's reasons redacted and without any URL."""

    def __init__(
        self,
        plugin: "NotifyBase",
        redactor: Redactor,
        *,
        timeout: float = DELIVERY_TIMEOUT,
        number: int = 1,
    ) -> None:
        import apprise

        # The service's name, never its URL or host: for Telegram the "host" is the token.
        service = str(plugin.service_name)
        self.name = f"apprise({service})" if number == 1 else f"apprise({service} #{number})"
        self.timeout = timeout
        self._redactor = redactor
        self._apprise = apprise.Apprise(asset=plugin.asset)
        self._apprise.add(plugin)

    def __repr__(self) -> str:
        return f"AppriseSink({self.name})"

    def send(self, alert: "Alert") -> None:
        from apprise import NotifyType

        from tecl_pipeline.observability.alerts import headline

        result = self._apprise.notify(
            body=_body(alert),
            title=headline(alert),
            notify_type=NotifyType(_NOTIFY_TYPES[alert.severity]),
            timeout=self.timeout,
        )
        try:
            if result:
                return
            # What apprise said of the failure, each line once; a service's own wording of
            # a URL or token is masked like any log line of apprise.
            reasons = "; ".join(
                dict.fromkeys(
                    scrub(entry.message, (self._redactor,))
                    for entry in result.logs()
                    if _at_least_warning(entry.level)
                )
            )
        finally:
            result.close()
        raise AppriseDeliveryError(
            f"{self.name} did not deliver ({result.status.name.lower()})"
            + (f": {reasons}" if reasons else "")
        )


def _body(alert: "Alert") -> str:
    where = [f"kind {alert.kind}"]
    if alert.session:
        where.append(f"session {alert.session.isoformat()}")
    if alert.run_id:
        where.append(f"run {alert.run_id}")
    return "\n".join(part for part in (alert.detail, " | ".join(where)) if part)


def _at_least_warning(level_name: str) -> bool:
    # Apprise's entries name their level ("WARNING", "DEPRECATION WARNING").
    level = logging.getLevelName(level_name)
    return isinstance(level, int) and level >= logging.WARNING


def scrub(text: str, redactors: Iterable[Redactor]) -> str:
    """An apprise log line fit for the project's log and errors: every registered secret
    masked, then any URL replaced (apprise prints URLs in forms no redactor was given)."""
    for redactor in list(redactors):
        text = redactor.redact(text)
    return " ".join(_ANY_URL.sub(_URL_PLACEHOLDER, text).split())


class _ForwardAppriseLogs(logging.Handler):
    """Apprise's log lines, scrubbed, re-logged on FORWARDED_LOGGER: the project's log
    handlers (and Dagster's capture of them) see them with the run's context and redaction.

    The redactors of every alert path built in this process, held weakly: a redactor
    nothing else uses any more drops out, and a sensor building its alerter on every tick
    adds nothing new (the resource's redactor is one object)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.set_name(_FORWARD_HANDLER)
        self.redactors: weakref.WeakSet[Redactor] = weakref.WeakSet()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = scrub(record.getMessage(), self.redactors)
            level = min(record.levelno, logging.CRITICAL)
            logging.getLogger(FORWARDED_LOGGER).log(level, "apprise: %s", message)
        except Exception:  # a log line of a third party must never fail an alert (C5)
            return


def route_apprise_logs(redactor: Redactor) -> None:
    """Apprise's logger reaches no handler but the forwarder: it no longer propagates to
    the root logger (whose handlers redact nothing), and only WARNING and above are made at
    all (DEBUG lines carry whole request URLs). Idempotent; the state lives on the logger."""
    logger = logging.getLogger(APPRISE_LOGGER)
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    forward = next(
        (h for h in logger.handlers if isinstance(h, _ForwardAppriseLogs)),
        None,
    )
    if forward is None:
        forward = _ForwardAppriseLogs()
        logger.addHandler(forward)
    forward.redactors.add(redactor)


class _SilentWhileChecking(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _CHECKING.get()


@contextmanager
def _quiet_apprise() -> Iterator[None]:
    """Apprise logs nothing from this thread while it parses a URL: it quotes a rejected
    token whole, or cut to its first and last characters, forms no redactor can know."""
    logger = logging.getLogger(APPRISE_LOGGER)
    if not any(isinstance(f, _SilentWhileChecking) for f in logger.filters):
        logger.addFilter(_SilentWhileChecking())
    token = _CHECKING.set(True)
    try:
        yield
    finally:
        _CHECKING.reset(token)
