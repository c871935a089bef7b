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


class ConfigurationError(CrmopsError):
    """A vendor is called but its settings are incomplete or invalid."""

    meaning = "crmops cannot make the call: a setting is missing or does not parse"

    def __init__(
        self, *, vendor: str, missing: Sequence[str] = (), detail: str = "", action: str = ""
    ) -> None:
        self.vendor = vendor
        self.missing = list(missing)
        self.detail = redact(detail)
        verb = "set" if self.missing and not detail else "fix"
        self.action = redact(action) or (
            f"{verb} the variables named (environment or .env), then run crmops doctor again"
        )
        text = f"{vendor} is not configured"
        if self.missing:
            text += f": set {', '.join(self.missing)} (environment or .env)"
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
        where = self.field if self.index is None else f"record {self.index}: {self.field}"
        return f"{where}: {self.message}"


class InputError(CrmopsError):
    """Input that the vendor would refuse; raised before any request is made."""

    meaning = "crmops refused the call before sending it"
    action = "fix each problem listed, then try again"

    def __init__(self, problems: Sequence[Problem], *, summary: str = "invalid input") -> None:
        self.problems = list(problems)
        lines = [f"{summary} ({len(self.problems)} problem(s)):"]
        lines += [f"  - {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


class StorageError(CrmopsError):
    """One of crmops's own backends (Redis, PostgreSQL) failed; nothing was sent to a vendor
    because of it. `backend` names it: "redis" or "postgresql"."""

    def __init__(self, message: str, *, backend: str, action: str = "") -> None:
        self.backend = backend
        self.action = action or f"check that {backend} runs and crmops's URL for it is right"
        super().__init__(message)


class StorageUnavailableError(StorageError):
    """The backend did not answer: down, refused, timed out. Try again once it is back."""

    meaning = "one of crmops's own backends did not answer; no vendor was asked"


class VendorError(CrmopsError):
    """Talking to a vendor failed."""

    def __init__(self, message: str, *, vendor: str, operation: str = "") -> None:
        self.vendor = vendor
        self.operation = operation
        super().__init__(message)


class VendorUnavailableError(VendorError):
    """No answer from the vendor. `request_sent` is False only when it surely never arrived."""

    meaning = "the request did not get an answer: wrong host or port, DNS, proxy, firewall"

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
        self.action = (
            redact(action) or f"check {vendor.upper()}_BASE_URL and that this machine reaches it"
        )
        super().__init__(message, vendor=vendor, operation=operation)


class MalformedResponseError(VendorError):
    """The vendor answered something that is not its documented format."""

    meaning = "the answer is not the vendor's API format (an HTML page, a proxy)"

    def __init__(
        self, message: str, *, vendor: str, operation: str = "", http_status: int, body: str
    ) -> None:
        self.http_status = http_status
        self.body = _kept(body)
        self.action = f"check {vendor.upper()}_BASE_URL points at the vendor's API host"
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
            self.meaning, self.action = entry.meaning_en, entry.action
        else:
            self.action = f"not in the catalog: `crmops errors {code}` lists near codes"
        super().__init__(self._text(vendor, operation), vendor=vendor, operation=operation)

    def _text(self, vendor: str, operation: str) -> str:
        head = f"{vendor} {operation} failed" if operation else f"{vendor} request failed"
        text = f"{head}: code {self.code} {self.vendor_message!r} (HTTP {self.http_status}"
        text += f", request id {self.request_id})" if self.request_id else ")"
        if self.entry is not None:
            text += f". Meaning: {self.entry.meaning_en}. What to do: {self.entry.action}"
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
