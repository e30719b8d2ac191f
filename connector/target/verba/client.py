"""VerbaClient: the Verba Provisioning API v2 through zeep, shared by delivery workers."""

from __future__ import annotations

import importlib.resources
import contextlib
import io
import logging
import threading
import time
from typing import Any

import requests
import zeep
import zeep.exceptions

from connector.mapping.records import ExtensionRecord
from connector.ops.metrics import observe_soap_call
from connector.target.verba.errors import (
    ExtensionAbsent,
    VerbaAmbiguous,
    VerbaAuthError,
    VerbaError,
    VerbaMalformedResponse,
    VerbaStatusError,
    VerbaTransportError,
)
from connector.target.verba.guard import UserIdGuard
from connector.target.verba.sent import SentLog
from connector.target.verba.status import (
    ALREADY_EXISTS, GENERAL, OK, UNAUTHORIZED, Status, field, read_status, says_extension_absent,
)
from connector.target.verba.transport import TNS, EnvelopeCheck, Transport, pooled_session

logger = logging.getLogger(__name__)

WSDL_FILE = "provisioning-v2.wsdl"
BINDING = f"{{{TNS}}}ProvisioningPortBinding"


class VerbaClient:
    """One connection pool and one token, safe to share between threads.

    Authenticate with `login` + `password` (requestToken, renewed once when a call answers
    ERROR_UNAUTHORIZED) or with a fixed `token` (never renewed).
    """

    def __init__(
        self,
        url: str,
        *,
        eid: str | None = None,
        environment_short_name: str | None = None,
        login: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        pool_size: int = 8,
    ) -> None:
        _check_settings(eid, environment_short_name, login, password, token)
        self.url = url
        self.eid = eid
        self.environment_short_name = environment_short_name
        self.timeout = timeout
        self._login = login
        self._password = password
        self._fixed_token = token is not None
        self._token = token
        self._lock = threading.Lock()
        self._session = pooled_session(url, pool_size)
        transport = Transport(session=self._session, timeout=timeout, operation_timeout=timeout)
        self._sent = SentLog()
        self._zeep = zeep.Client(
            _wsdl(),
            transport=transport,
            settings=zeep.Settings(xsd_ignore_sequence_order=True),
            plugins=[UserIdGuard(), self._sent, EnvelopeCheck()],
        )
        self._service = self._zeep.create_service(BINDING, url)

    def capture(self) -> contextlib.AbstractContextManager[list[dict[str, Any]]]:
        """Collect what this thread sends inside the block: operation, envelope (secrets masked), status."""
        return self._sent.capture()

    def __enter__(self) -> VerbaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # extensions

    def create_extension(self, record: ExtensionRecord) -> bool:
        """createExtension: True when created, False when Verba already holds the extension."""
        status = self._extension_call("createExtension", record)
        if status.code == ALREADY_EXISTS:
            return False
        status.check("createExtension")
        return True

    def update_extension(self, record: ExtensionRecord) -> None:
        """updateExtension with the full record; ExtensionAbsent when Verba says there is no such extension."""
        status = self._extension_call("updateExtension", record)
        if status.code != OK and says_extension_absent(status):
            raise ExtensionAbsent(f"updateExtension: {status.message}")
        status.check("updateExtension")

    def get_extension(self, extension: str) -> dict[str, Any] | None:
        """The extension in the configured environment, or None when Verba says it does not exist.

        Absence comes in several shapes (OK without an extension, or a not-found message; see
        `says_extension_absent`). Any other ERROR_GENERAL is unclear, so listUsers (filter
        `extension`, exact) is asked who holds it: one user answers it, none means no user holds it
        (absent or unlinked, `user_id` None; other fields are None either way), several raise
        VerbaAmbiguous.
        """
        value, status = self._call("getExtension", environmentFilter=self._environment_filter(), extension=extension)
        if status.code == OK:
            found = field(value, "extension")
            return None if found is None else _extension_dict(found)
        if says_extension_absent(status):
            return None
        if status.code != GENERAL:
            status.check("getExtension")
        holders = self._users(extension=extension, extensionExact=True)
        if len(holders) > 1:
            raise VerbaAmbiguous(
                f"getExtension {extension} answered {status.code}: {status.message}, and listUsers finds "
                f"{len(holders)} users holding it; Verba's answers are unclear"
            )
        holder = holders[0] if holders else None
        return {**dict.fromkeys(_EXTENSION_FIELDS), "extension": extension,
                "user_id": None if holder is None else _user_id(holder, "listUsers"),
                "user_login_name": field(holder, "loginName")}

    # users

    def find_user_id(self, login_name: str) -> int | None:
        """The Verba user id for an exact login name in the configured environment."""
        users = self._users(loginName=login_name, loginNameExact=True)
        if not users:
            return None
        if len(users) > 1:
            raise VerbaMalformedResponse(f"listUsers returned {len(users)} users for the exact loginName {login_name!r}")
        return _user_id(users[0], "listUsers")

    def _users(self, **criteria: Any) -> list[Any]:
        """listUsers in the configured environment with these filter criteria."""
        value, status = self._call(
            "listUsers",
            filter={"environmentFilter": self._environment_filter(), **criteria,
                    "skipExtensions": True, "skipGroups": True, "skipRoles": True},
        )
        status.check("listUsers")
        return list(field(value, "users") or [])

    def create_user(
        self,
        login_name: str,
        display_name: str | None = None,
        email: str | None = None,
        external_id: str | None = None,
    ) -> int:
        user = {
            "eid": self.eid,
            "environmentShortName": self.environment_short_name,
            "loginName": login_name,
            "displayName": display_name,
            "email": email,
            "externalId": external_id,
        }
        value, status = self._call("createUser", user=user)
        status.check("createUser")
        return _user_id(field(value, "user"), "createUser")

    # token

    def request_token(self) -> None:
        """Authenticate now instead of on the first call; a fixed token is kept as it is."""
        if self._fixed_token:
            return
        with self._lock:
            self._token = self._request_token()

    def release_token(self) -> None:
        """Release the token this client requested; a fixed token belongs to the operator and is kept."""
        if self._fixed_token:
            return
        with self._lock:
            token, self._token = self._token, None
        if token is None:
            return
        status = read_status(self._send("releaseToken", token=token), "releaseToken")
        if status.code != UNAUTHORIZED:  # already expired: nothing left to release
            status.check("releaseToken")

    def close(self) -> None:
        try:
            self.release_token()
        except VerbaError as exc:
            logger.warning("could not release the Verba token: %s", exc)
        finally:
            self._session.close()

    # internals

    def _extension_call(self, operation: str, record: ExtensionRecord) -> Status:
        return self._call(operation, extension=extension_payload(record))[1]

    def _call(self, operation: str, **params: Any) -> tuple[Any, Status]:
        """One operation with the current token; renews it once and retries on ERROR_UNAUTHORIZED."""
        token = self._current_token()
        value = self._send(operation, token=token, **params)
        status = read_status(value, operation)
        if status.code == UNAUTHORIZED:
            token = self._renewed_token(token, status, operation)
            value = self._send(operation, token=token, **params)
            status = read_status(value, operation)
        return value, status

    def _current_token(self) -> str:
        token = self._token
        if token is None:
            with self._lock:
                if self._token is None:
                    self._token = self._request_token()
                token = self._token
        return token

    def _renewed_token(self, failed: str, status: Status, operation: str) -> str:
        if self._fixed_token:
            raise VerbaStatusError(
                status.code,
                status.message,
                operation,
                hint="a fixed token cannot be renewed: set a new token, or configure target.login and a password",
            )
        with self._lock:
            if self._token in (failed, None):  # another thread may have renewed it already
                logger.info("renewing the Verba token: %s answered %s", operation, status.code)
                self._token = self._request_token()
            return self._token

    def _request_token(self) -> str:
        value = self._send("requestToken", eid=self.eid, loginName=self._login, password=self._password)
        status = read_status(value, "requestToken")
        if status.code != OK:
            detail = f"{status.code}: {status.message}" if status.message else status.code
            raise VerbaAuthError(
                f"requestToken for login {self._login!r} in environment {self.eid} answered {detail}; "
                "check target.login and the password env var/file"
            )
        token = field(value, "token")
        if not token:
            raise VerbaMalformedResponse("requestToken answered OK without a token")
        return token

    def _send(self, operation: str, **params: Any) -> Any:
        """Call the operation, counting it in the metrics with its answer's status."""
        started = time.perf_counter()
        status = "not_sent"
        try:
            value = self._send_unobserved(operation, **params)
            status = _status_code(value, operation)
            return value
        except VerbaError as exc:
            status = exc.cause
            raise
        finally:
            if status != "missing_user_id":  # refused by the guard: nothing went over the wire
                seconds = time.perf_counter() - started
                observe_soap_call(operation, status, seconds)
                self._sent.answered(operation, status)
                logger.debug("%s answered %s in %.0f ms", operation, status, seconds * 1000,
                             extra={"operation": operation, "status": status})

    def _send_unobserved(self, operation: str, **params: Any) -> Any:
        """Call the operation, translating zeep and requests errors into VerbaError."""
        try:
            return self._service[operation](**params)
        except requests.Timeout as exc:
            raise VerbaTransportError(
                f"{operation} to {self.url} got no answer within {self.timeout} s; Verba is slow or unreachable"
            ) from exc
        except requests.RequestException as exc:
            raise VerbaTransportError(
                f"{operation} could not reach {self.url} ({type(exc).__name__}); check target.url and that "
                "Provisioning API v2 is enabled on the Media Repository (port 7002)"
            ) from exc
        except zeep.exceptions.ValidationError:
            raise  # a bad call from our side, not a Verba answer
        except zeep.exceptions.Fault as exc:
            raise VerbaMalformedResponse(f"{operation} answered a SOAP Fault with HTTP 200: {exc.message}") from exc
        except zeep.exceptions.Error as exc:
            raise VerbaMalformedResponse(
                f"{operation} answered something that is not the documented response ({type(exc).__name__}); "
                "check that target.url points at Verba Provisioning API v2"
            ) from exc

    def _environment_filter(self) -> dict[str, Any]:
        if self.eid is not None:
            return {"eid": self.eid, "eidExact": True}
        return {"shortName": self.environment_short_name, "shortNameExact": True}


def extension_payload(record: ExtensionRecord) -> dict[str, Any]:
    """The SOAP Extension for a record; None fields are left out of the XML."""
    return {
        "eid": record.eid,
        "environmentShortName": record.environment_short_name,
        "extension": record.extension,
        "recordingMode": record.recording_mode,
        "im": record.im,
        "video": record.video,
        "voice": record.voice,
        "screenCaptureEnabled": record.screen_capture_enabled,
        "user": {"id": record.user_id},
    }


def _status_code(value: Any, operation: str) -> str:
    try:
        return read_status(value, operation).code
    except VerbaError:
        return "malformed_response"


_EXTENSION_FIELDS = ("id", "extension", "user_id", "user_login_name", "recording_mode", "voice", "im", "video",
                     "screen_capture_enabled", "eid", "environment_short_name")


def _extension_dict(value: Any) -> dict[str, Any]:
    """The fields of `_EXTENSION_FIELDS` from a getExtension answer."""
    user = field(value, "user")
    return {
        "id": field(value, "id"),
        "extension": field(value, "extension"),
        "user_id": field(user, "id"),
        "user_login_name": field(user, "loginName"),
        "recording_mode": field(value, "recordingMode"),
        "voice": field(value, "voice"),
        "im": field(value, "im"),
        "video": field(value, "video"),
        "screen_capture_enabled": field(value, "screenCaptureEnabled"),
        "eid": field(value, "eid"),
        "environment_short_name": field(value, "environmentShortName"),
    }


def _user_id(user: Any, operation: str) -> int:
    user_id = field(user, "id")
    if not isinstance(user_id, int):
        raise VerbaMalformedResponse(f"{operation} answered OK without a user id")
    return user_id


def _wsdl() -> io.BytesIO:
    return io.BytesIO(importlib.resources.files(__package__).joinpath(WSDL_FILE).read_bytes())


def _check_settings(
    eid: str | None, short_name: str | None, login: str | None, password: str | None, token: str | None
) -> None:
    if (eid is None) == (short_name is None):
        raise ValueError("give exactly one of target.eid or target.environment_short_name")
    if eid is not None and (not isinstance(eid, str) or len(eid) != 4):
        raise ValueError(f"target.eid must be a 4-character string such as '0000', got {eid!r}")
    uses_login = login is not None or password is not None
    if uses_login == (token is not None):
        raise ValueError("give either target.login with a password, or a fixed token, not both")
    if uses_login and not (login and password):
        raise ValueError("target.login and a non-empty password are both needed (set the password env var/file)")
    if uses_login and eid is None:
        raise ValueError("requestToken needs target.eid; set it, or use a fixed token with environment_short_name")
