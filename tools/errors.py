"""The one error tree of crmops.

Every failure a caller can see is a `CrmopsError`; the adapters (MCP, Slack, CLI) render
`str(error)`, which is written for a person: what went wrong, the vendor's own code and
message, what it means and what to do. No error ever carries a secret: every message, and
the vendor's message and body an error keeps, passes `tools.redaction.redact` when the error
is made (a gateway may echo the request, Basic credentials and all). Every error also
carries `meaning` (what the failure means) and `action` (what to do about it), one sentence
each, so `doctor` and the adapters show advice without a table of their own.

    CrmopsError
     ├── ConfigurationError          a vendor is not configured: names the missing variables
     ├── InputError                  bad input, refused before any request: each problem with
     │                               its record index and field, and how to fix it
     ├── AccessDeniedError           the access policy refuses this caller the command (who
     │                               may is configuration: `tools.policy`); nothing was sent
     ├── StorageError                one of our own backends failed (Redis, PostgreSQL, the
     │    │                          SQLite file): knows `backend`; never a vendor's fault
     │    └── StorageUnavailableError    the backend did not answer (down, refused, timed out)
     └── VendorError                 talking to a vendor failed; knows `vendor` and `operation`
          ├── VendorUnavailableError     no answer: refused, reset, timed out (`request_sent`
          │                              says whether the vendor may have acted on it)
          ├── MalformedResponseError     an answer that is not the vendor's format (HTML, bad JSON)
          └── VendorAPIError             the vendor answered with an error: `http_status`, `code`,
               │                         `message`, `request_id`, and its catalog `entry`
               ├── AuthenticationError       wrong key, signature or token; API not enabled
               ├── RequestRejectedError      signature missing, stale or replayed; bad timestamp
               ├── RateLimitedError          over the vendor's rate limit (`retry_after`)
               ├── InvalidRequestError       the vendor refused the data
               ├── NotFoundError             no such resource
               └── ServerError               the vendor failed (5xx, database error)

Which vendor code is which kind is data in the error catalog (`tools/error_catalog.toml`),
shared with the `lookup_error_code` tool; a code the catalog lacks takes the kind of its HTTP
status, from the one table `kind_for_status`.

Retrying: the vendor transport (`tools.transport.retry_decision`) retries only the vendor
failures named there. A `StorageError` is never retried as a vendor failure: the backend's
own client has its own bounded retry (Redis reconnects once), and whoever meets the error
stops cleanly (a bulk import leaves the rows it could not send pending, for `--resume`).
The CLI exits 75 (sysexits EX_TEMPFAIL: try again once the backend is back) for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from tools.i18n import marked, tr
from tools.redaction import redact

if TYPE_CHECKING:
    from tools.catalog import CatalogEntry

_BODY_KEPT = 2000


def _kept(body: str) -> str:
    """The part of a vendor's answer an error keeps, redacted before it is cut (a secret
    cut in two would survive in part); a long body is cut first, generously."""
    return redact(body[: _BODY_KEPT * 4])[:_BODY_KEPT]


class CrmopsError(Exception):
    """Base of every error crmops raises on purpose.

    `meaning` says what the failure means and `action` what to do about it, each a sentence
    for a person; either is empty when the message says it all.
    """

    meaning: str = ""
    action: str = ""

    def __init__(self, message: str = "") -> None:
        super().__init__(redact(message))
        # A class's own meaning and action are English ids (`marked`): shown in the language
        # of the moment the error is made, as its message is.
        for name in ("meaning", "action"):
            if name not in vars(self) and getattr(self, name):
                setattr(self, name, tr(getattr(self, name)))


class ConfigurationError(CrmopsError):
    """A vendor is called but its settings are incomplete or invalid."""

    meaning = marked("crmops cannot make the call: a setting is missing or does not parse")

    def __init__(
        self, *, vendor: str, missing: Sequence[str] = (), detail: str = "", action: str = ""
    ) -> None:
        self.vendor = vendor
        self.missing = list(missing)
        self.detail = redact(detail)
        self.action = redact(action) or (
            tr("set the variables named (environment or .env), then run crmops doctor again")
            if self.missing and not detail
            else tr("fix the variables named (environment or .env), then run crmops doctor again")
        )
        text = tr("{vendor} is not configured", vendor=vendor)
        if self.missing:
            text += tr(": set {names} (environment or .env)", names=", ".join(self.missing))
        if detail:
            text += f"; {detail}"
        super().__init__(text)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (`index`, `field`), what, and the fix."""

    field: str
    message: str
    index: int | None = None

    def __str__(self) -> str:
        if self.index is None:
            return f"{self.field}: {self.message}"
        return tr("record {index}: {field}", index=self.index, field=self.field) + (
            f": {self.message}"
        )


class InputError(CrmopsError):
    """Input that the vendor would refuse; raised before any request is made."""

    meaning = marked("crmops refused the call before sending it")
    action = marked("fix each problem listed, then try again")

    def __init__(
        self, problems: Sequence[Problem], *, summary: str = marked("invalid input")
    ) -> None:
        self.problems = list(problems)
        lines = [
            tr("{summary} ({count} problem(s)):", summary=tr(summary), count=len(self.problems))
        ]
        lines += [f"  - {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


class AccessDeniedError(CrmopsError):
    """The access policy (`tools.policy`) refuses the caller this command; nothing was sent.
    `command` names it; the message says why and which setting would allow it."""

    meaning = marked("the access policy does not allow you this command; nothing was sent")
    action = marked("ask an admin to grant it to you (the message names the setting)")

    def __init__(self, message: str, *, command: str) -> None:
        self.command = command
        super().__init__(message)


class StorageError(CrmopsError):
    """One of crmops's own backends (Redis, PostgreSQL) failed; nothing was sent to a vendor
    because of it. `backend` names it: "redis" or "postgresql"."""

    def __init__(self, message: str, *, backend: str, action: str = "") -> None:
        self.backend = backend
        self.action = action or tr(
            "check that {backend} runs and crmops's URL for it is right", backend=backend
        )
        super().__init__(message)


class StorageUnavailableError(StorageError):
    """The backend did not answer: down, refused, timed out. Try again once it is back."""

    meaning = marked("one of crmops's own backends did not answer; no vendor was asked")


class VendorError(CrmopsError):
    """Talking to a vendor failed."""

    def __init__(self, message: str, *, vendor: str, operation: str = "") -> None:
        self.vendor = vendor
        self.operation = operation
        super().__init__(message)


class VendorUnavailableError(VendorError):
    """No answer from the vendor. `request_sent` is False only when it surely never arrived."""

    meaning = marked("the request did not get an answer: wrong host or port, DNS, proxy, firewall")

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        operation: str = "",
        request_sent: bool = True,
        action: str = "",
    ) -> None:
        self.request_sent = request_sent
        variable = f"{vendor.upper()}_BASE_URL"
        self.action = redact(action) or tr(
            "check {variable} and that this machine reaches it", variable=variable
        )
        super().__init__(message, vendor=vendor, operation=operation)


class MalformedResponseError(VendorError):
    """The vendor answered something that is not its documented format."""

    meaning = marked("the answer is not the vendor's API format (an HTML page, a proxy)")

    def __init__(
        self, message: str, *, vendor: str, operation: str = "", http_status: int, body: str
    ) -> None:
        self.http_status = http_status
        self.body = _kept(body)
        variable = f"{vendor.upper()}_BASE_URL"
        self.action = tr("check {variable} points at the vendor's API host", variable=variable)
        super().__init__(message, vendor=vendor, operation=operation)


class VendorAPIError(VendorError):
    """The vendor answered with an error. Pick the subclass with `VendorAPIError.build`."""

    kind: ClassVar[str] = "other"

    def __init__(
        self,
        *,
        vendor: str,
        operation: str = "",
        http_status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        body: str = "",
        entry: CatalogEntry | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.http_status = http_status
        self.code = code
        self.vendor_message = redact(message)
        self.request_id = request_id
        self.body = _kept(body)
        self.entry = entry
        self.retry_after = retry_after
        if entry is not None:
            self.meaning, self.action = entry.meaning(), entry.what_to_do()
        else:
            self.action = tr(
                "not in the catalog: `crmops errors {code}` lists near codes", code=code
            )
        super().__init__(self._text(vendor, operation), vendor=vendor, operation=operation)

    def _text(self, vendor: str, operation: str) -> str:
        head = (
            tr("{vendor} {operation} failed", vendor=vendor, operation=operation)
            if operation
            else tr("{vendor} request failed", vendor=vendor)
        )
        text = head + tr(
            ": code {code} {message} (HTTP {status}",
            code=self.code,
            message=repr(self.vendor_message),
            status=self.http_status,
        )
        text += tr(", request id {id})", id=self.request_id) if self.request_id else ")"
        if self.entry is not None:
            text += tr(
                ". Meaning: {meaning}. What to do: {action}",
                meaning=self.meaning,
                action=self.action,
            )
        return text

    @staticmethod
    def build(
        *,
        kind: str,
        vendor: str,
        operation: str = "",
        http_status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        body: str = "",
        entry: CatalogEntry | None = None,
        retry_after: float | None = None,
    ) -> VendorAPIError:
        """The subclass for `kind` (a catalog entry's `kind`), filled in."""
        cls = _KINDS.get(kind, VendorAPIError)
        return cls(
            vendor=vendor,
            operation=operation,
            http_status=http_status,
            code=code,
            message=message,
            request_id=request_id,
            body=body,
            entry=entry,
            retry_after=retry_after,
        )


class AuthenticationError(VendorAPIError):
    kind = "auth"


class RequestRejectedError(VendorAPIError):
    kind = "rejected"


class RateLimitedError(VendorAPIError):
    kind = "rate_limited"


class InvalidRequestError(VendorAPIError):
    kind = "invalid"


class NotFoundError(VendorAPIError):
    kind = "not_found"


class ServerError(VendorAPIError):
    kind = "server"


_KINDS: dict[str, type[VendorAPIError]] = {
    cls.kind: cls
    for cls in (
        AuthenticationError,
        RequestRejectedError,
        RateLimitedError,
        InvalidRequestError,
        NotFoundError,
        ServerError,
    )
}
ERROR_KINDS = (*_KINDS, "other")

_KIND_OF_STATUS = {
    400: "invalid",
    401: "auth",
    403: "rejected",
    404: "not_found",
    422: "invalid",
    429: "rate_limited",
}


def kind_for_status(status: int) -> str:
    """The error kind an HTTP error status means when the catalog has no entry for the
    vendor's code: the 4xx of the table, any 5xx "server", anything else "other"."""
    return "server" if status >= 500 else _KIND_OF_STATUS.get(status, "other")
