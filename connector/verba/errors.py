"""Verba errors, each with a short `cause` class and whether a retry can help.

    VerbaError
     ├── VerbaTransportError     cause "transport"            retryable
     ├── VerbaHTTPError          cause "http_5xx"/"http_<code>" retryable for 5xx, 401 and 403
     │    └── VerbaRateLimited   cause "rate_limited"         waits as Retry-After says, attempts not spent
     ├── VerbaMisconfigured      cause "target_misconfigured" not retryable: a SOAP client fault or a redirect
     │    ├── VerbaNotServed     cause "target_misconfigured" retryable, target-wide: HTTP 404/405 (nothing served at
     │    │                                                    target.url's path: mistyped, or Verba restarting)
     │    └── UnsendableSetting  cause "target_misconfigured" retryable, target-wide: a setting holds a character XML
     │                                                         cannot carry (requestToken's: a VerbaAuthError instead)
     ├── VerbaMalformedResponse  cause "malformed_response"   retryable 3 times, target-wide (a maintenance page)
     ├── VerbaStatusError        cause "<status code lower>"  retryable for ERROR_GENERAL, ERROR_UNAUTHORIZED
     ├── VerbaAuthError          cause "auth"                 retryable
     ├── VerbaAmbiguous          cause "verba_ambiguous"      retryable (a bounded number of times)
     ├── ExtensionAbsent         cause "extension_absent"     not retryable: the caller decides
     ├── LeaseEnding             cause "lease_ending"         retryable: the push's lease ends too soon for a call
     ├── UnsendableValue         cause "mapping"              not retryable: one person's value holds a character XML
     │                                                         cannot carry (fix it at the source, then replay)
     └── MissingUserIdError      cause "missing_user_id"      not retryable

No message ever holds the password or the token.
"""

from __future__ import annotations

from connector.errors import ConnectorError

RETRYABLE_STATUS_CODES = frozenset({"ERROR_GENERAL", "ERROR_UNAUTHORIZED"})
# HTTP statuses that refuse every call alike (a login refused at the HTTP level, by Verba or a proxy before it).
REFUSED_HTTP_STATUSES = frozenset({401, 403})
# The causes of the errors that are `target_wide`: their events need not wait out their backoff once Verba is back.
TARGET_WIDE_CAUSES = ("transport", "http_5xx", "rate_limited", "auth", "http_401", "http_403", "error_unauthorized",
                      "target_misconfigured", "malformed_response")


class VerbaError(ConnectorError):
    """The Verba provisioning call failed."""

    cause = "verba"
    retryable = False
    max_attempts: int | None = None  # a retry budget of its own, below [delivery] max_attempts; None: that one
    target_wide = False  # says Verba fails as a whole, not for one user: counts for the circuit breaker


class VerbaTransportError(VerbaError):
    """Verba could not be reached: check target.url and that Provisioning API v2 is enabled on the Media Repository."""

    cause = "transport"
    retryable = True
    target_wide = True


class VerbaUnreachable(VerbaTransportError):
    """No connection to Verba could be made (refused, no route, unknown host): nothing was sent."""


class VerbaHTTPError(VerbaError):
    """Verba answered with an HTTP error status; `soap_fault` when its body was a SOAP Fault (`detail` is then its
    faultstring): Verba's service itself read the call and refused it, rather than failing on the way to it."""

    def __init__(self, status_code: int, detail: str = "", *, soap_fault: bool = False) -> None:
        self.status_code = status_code
        self.soap_fault = soap_fault
        refused = status_code in REFUSED_HTTP_STATUSES
        self.cause = "http_5xx" if status_code >= 500 else f"http_{status_code}"
        self.retryable = status_code >= 500 or refused
        self.target_wide = status_code >= 500 or status_code == 429 or refused
        hint = (
            "a server-side failure, worth retrying" if status_code >= 500
            else "Verba (or a proxy before it) refuses this connector's calls: check the proxy's access rules and the "
                 "credentials it expects; delivery waits meanwhile" if refused
            else "Verba (or a proxy before it) asks for fewer calls: waiting as it says" if status_code == 429
            else "check target.url (path /provisioning, port 7002 for v2)"
        )
        super().__init__(f"Verba answered HTTP {status_code}{': ' + detail if detail else ''}; {hint}")


class VerbaRateLimited(VerbaHTTPError):
    """Verba (or a proxy before it) answered HTTP 429: wait `retry_after` seconds, then call again."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(429, f"too many requests, retry after {retry_after:g} s")
        self.cause = "rate_limited"
        self.retryable = True
        self.retry_after = retry_after


class VerbaMisconfigured(VerbaError):
    """The target as a whole is set up wrong (a SOAP client fault such as "Cannot find dispatch method", a
    redirect): no retry can help until target.url is fixed."""

    cause = "target_misconfigured"
    retryable = False


class VerbaNotServed(VerbaMisconfigured):
    """HTTP 404/405 at target.url's path: nothing serves SOAP there. A mistyped target.url, or for a while Verba's web
    application redeploying as Verba restarts: it fails every call alike, so it is target-wide (the circuit breaker
    pauses delivery and probes until Verba serves it again) and retryable."""

    retryable = True
    target_wide = True


class UnsendableSetting(VerbaMisconfigured):
    """A call was not sent: a setting of the connector's own (target.eid, a fixed token, the mapping's environment)
    holds a character XML 1.0 cannot carry, so every call fails alike until it is fixed: target-wide and retryable, as
    for a refused login (the circuit breaker pauses delivery; nothing is dead-lettered). The message names the setting,
    never its value."""

    retryable = True
    target_wide = True


class VerbaMalformedResponse(VerbaError):
    """Verba's answer is not the documented SOAP response; check that target.url points at Provisioning API v2.

    Target-wide: a load balancer's maintenance page or an empty body at HTTP 200 while Verba restarts garbles every
    call alike (the circuit breaker pauses delivery; nothing is dead-lettered). A garbled answer about one record (a
    control character Verba wrote into a user's name) is that user's: retried a few times (a proxy may garble one
    answer), then a dead letter (connector/delivery/breaker.py tells the two apart)."""

    cause = "malformed_response"
    retryable = True
    max_attempts = 3
    target_wide = True


class VerbaStatusError(VerbaError):
    """Verba answered with a status other than OK."""

    def __init__(self, status_code: str, message: str | None, operation: str, hint: str = "") -> None:
        self.status_code = status_code
        self.vendor_message = message
        self.operation = operation
        self.cause = status_code.lower()
        self.retryable = status_code in RETRYABLE_STATUS_CODES
        self.target_wide = status_code == "ERROR_UNAUTHORIZED"  # a token refused (a fixed one expired): every call
        text = f"{operation} answered {status_code}"
        if message:
            text += f": {message}"
        super().__init__(f"{text}; {hint}" if hint else text)


class VerbaAuthError(VerbaError):
    """requestToken gave no token: Verba refused the login or password, or failed (the message says which)."""

    cause = "auth"
    retryable = True
    target_wide = True


class MissingUserIdError(VerbaError):
    """Refused to send an extension without <user><id>: it would unlink the extension from its user."""

    cause = "missing_user_id"
    retryable = False


class VerbaAmbiguous(VerbaError):
    """Verba's answers contradict each other (about an extension; or createUser says a user with the login name
    exists while listUsers finds none), or an answer is about another extension, user or environment than was asked
    (or names several users for one login name); retried a few times, then a dead letter. Nothing is written on it."""

    cause = "verba_ambiguous"
    retryable = True
    max_attempts = 3


class ExtensionAbsent(VerbaError):
    """Verba says the extension does not exist (in any of the shapes `says_extension_absent` knows)."""

    cause = "extension_absent"
    retryable = False


class UnsendableValue(VerbaError):
    """A call was not sent: a value of one person's (a login name, an extension) holds a character XML 1.0 cannot carry
    (lxml refuses to build the request). The message names the field, the value and the character. Only that
    person's push fails: a dead letter with cause "mapping", as for any value of the user's state Verba cannot be
    given, replayed once the source fixed it."""

    cause = "mapping"
    retryable = False


class LeaseEnding(VerbaError):
    """The worker's lease ends before a call could: not sent, so it never overlaps another worker's push."""

    cause = "lease_ending"
    retryable = True
