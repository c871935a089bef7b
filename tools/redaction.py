"""The one redaction point: every text crmops shows, logs or stores passes `redact`.

A secret leaves crmops in more forms than its own: a gateway that echoes the request copies
`Authorization: Basic base64(client_id:client_secret)`, a URL carries `user:password@` or
`?password=`, a query string percent-encodes. `redact` removes all of them::

    register(["s3cret"], pairs=[("client-id", "s3cret")])   # settings do this when built
    redact("Basic Y2xpZW50LWlkOnMzY3JldA== at https://u:s3cret@host/?password=s3cret")
    # -> "Basic *** at https://u:***@host/?password=***"
    shown_url("redis://:pw@cache:6379/0?password=pw")       # -> "redis://:***@cache:6379/0?password=***"

Two layers, both one compiled regular expression:

- every form of every registered secret (`forms`): raw, URL-quoted (`quote`, `quote_plus`),
  base64 (standard and URL-safe, with or without padding) of the secret and of each
  `user:secret` pair sent as HTTP Basic auth. Settings register their secrets when they are
  built (`tools.settings`); another component (the Slack bot) calls `register` with its own.
  Secrets shorter than `MIN_SECRET_LENGTH` are not matched raw: a 2-letter value would blank
  ordinary words out of every message;
- what looks like a secret whoever it belongs to: a URL's password, a query or form value
  named like a secret (`password=`, `client_secret=`, `token=` ...), a JSON value under such
  a key, and the credentials after `Basic ` / `Bearer `.

`RedactingFilter` applies it to log records; `install_log_redaction()` puts it on every
handler of the root logger and on `logging.lastResort` (each entry point calls it after
configuring logging; importing this module covers `lastResort`, what a process that
configures no logging, the CLI, writes its warnings through).
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

REDACTED = "***"
MIN_SECRET_LENGTH = 6
"""Characters a secret needs before its raw and URL-quoted forms are matched in any text."""

# The names of secret values (not a secret): matched in query strings and JSON keys.
_SECRET_NAMES = "|".join(
    [
        *("password", "passwd", "pwd", "client_secret", "secret", "api_?key"),
        *("access_token", "refresh_token", "token"),
    ]
)
_GENERIC = re.compile(
    # scheme://user:password@  (the password, up to the last @ before the host)
    r"(?P<userinfo>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s/?#@:]*:)[^\s/?#]*@"
    # ?password=...  &client_secret=...  (a query string or a form body)
    rf"|(?P<query>(?<![\w-])(?i:{_SECRET_NAMES})=)[^&\s#\"'<>]*"
    # "password": "..."  'client_secret': '...'
    rf"|(?P<json>[\"'](?i:{_SECRET_NAMES})[\"']\s*:\s*[\"'])[^\"']*"
    # Authorization: Basic ...  / Bearer ...
    # (a credential has a digit or a sign in it: "Basic Information" is prose)
    r"|(?P<scheme>\b(?:Basic|Bearer|basic|bearer)\s+)(?=[\w.~+/=-]*[0-9+/=])[\w.~+/\-]{8,}=*"
)

# Each alternative of _GENERIC needs one of these: most texts have none and skip the scan.
_GENERIC_MARKS = ("://", "=", '":', "':", '" :', "' :", "asic ", "earer ")


def forms(secret: str, *, users: Iterable[str] = ()) -> set[str]:
    """Every form `secret` can take on the wire: raw, URL-quoted, base64 of itself and of
    `user:secret` for each of `users` (HTTP Basic). Empty for an empty secret."""
    if not secret:
        return set()
    found = set()
    if len(secret) >= MIN_SECRET_LENGTH:
        found |= {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    for plain in (secret, *(f"{user}:{secret}" for user in users)):
        found |= _base64_forms(plain.encode("utf-8"))
    return {form for form in found if len(form) >= MIN_SECRET_LENGTH}


def _base64_forms(raw: bytes) -> set[str]:
    encoded = {base64.b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii")}
    return encoded | {text.rstrip("=") for text in encoded}


class Redactor:
    """Removes every form of the secrets it was built with, and whatever looks like a
    secret (see the module docstring), from a text. Build once; call for each text."""

    def __init__(self, secrets: Iterable[str] = (), pairs: Iterable[tuple[str, str]] = ()) -> None:
        users: dict[str, set[str]] = {}
        for user, secret in pairs:
            users.setdefault(secret, set()).add(user)
        every: set[str] = set()
        for secret in {*secrets, *users}:
            every |= forms(secret, users=users.get(secret, ()))
        # Longest first, so a form that contains another is replaced whole.
        alternation = "|".join(re.escape(form) for form in sorted(every, key=len, reverse=True))
        self._known = re.compile(alternation) if alternation else None

    def __call__(self, text: str) -> str:
        """`text` without any secret."""
        if self._known is not None:
            text = self._known.sub(REDACTED, text)
        if any(mark in text for mark in _GENERIC_MARKS):
            text = _GENERIC.sub(_keep_the_name, text)
        return text


def _keep_the_name(match: re.Match[str]) -> str:
    for group in ("userinfo", "query", "json", "scheme"):
        if match.group(group) is not None:
            tail = "@" if group == "userinfo" else ""
            return match.group(group) + REDACTED + tail
    return REDACTED  # pragma: no cover - every alternative names a group


class _Registry:
    """The process's secrets and the one `Redactor` built from them, rebuilt only when a
    secret not seen before is registered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pairs: set[tuple[str, str]] = set()
        self.redactor = Redactor()

    def add(self, secrets: Iterable[str], pairs: Iterable[tuple[str, str]]) -> None:
        new_secrets = {secret for secret in secrets if secret} - self._secrets
        new_pairs = {(user, secret) for user, secret in pairs if user and secret} - self._pairs
        if not new_secrets and not new_pairs:
            return
        with self._lock:
            self._secrets |= new_secrets
            self._pairs |= new_pairs
            self.redactor = Redactor(self._secrets, self._pairs)


_REGISTRY = _Registry()


def register(secrets: Iterable[str], *, pairs: Iterable[tuple[str, str]] = ()) -> None:
    """Make `redact` remove every form of `secrets`, and of each `(user, secret)` pair sent
    as HTTP Basic auth. Registering the same secrets again costs a set difference."""
    _REGISTRY.add(secrets, pairs)


def url_secrets(url: str) -> list[str]:
    """The passwords a URL carries (`user:password@`, `?password=`), as given and decoded."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    found = [value for name, value in parse_qsl(parts.query) if name.lower() == "password"]
    if password:
        found += [password, unquote(password)]
    return found


def redact(text: str) -> str:
    """`text` without any registered secret (in any of its forms) or anything that looks
    like a secret. Use it on every text that leaves crmops: a message, a log line, a row."""
    return _REGISTRY.redactor(text)


def shown_url(url: str) -> str:
    """`url` as it may be shown: the password of its userinfo and of its query as `***`,
    the rest as given (`redact` does both; this names the intent where a URL is shown)."""
    return redact(url)


class RedactingFilter(logging.Filter):
    """A handler filter that passes every record, its message and traceback redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format string: keep its parts, redacted
            message = f"{record.msg} {record.args}"
        shown = redact(message)
        if shown != message:
            record.msg, record.args = shown, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Put a `RedactingFilter` on every handler of `logger` (the root logger by default).

    Call it right after configuring logging (`logging.basicConfig`): records of every
    logger that propagate to those handlers are then redacted. Installing twice is harmless.
    """
    handlers = [*(logger or logging.getLogger()).handlers, logging.lastResort]
    for handler in handlers:
        if handler is not None and not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


# A process that configures no logging (the CLI) writes its warnings through `lastResort`.
install_log_redaction(logging.getLogger("crmops"))
