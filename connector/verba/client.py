"""VerbaClient: the Verba Provisioning API v2 through zeep, shared by delivery workers."""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import functools
import importlib.resources
import io
import logging
import re
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
import zeep
import zeep.exceptions
from lxml import etree
from requests.utils import get_encoding_from_headers
from requests_toolbelt.multipart.decoder import MultipartDecoder
from zeep import plugins

from connector.ops.logs import MASK, register_secret
from connector.ops.metrics import observe_soap_call
from connector.passwords import RefusedPassword
from connector.records import ExtensionRecord, character, eid_problem, not_xml
from connector.store import without_password
from connector.verba.errors import (
    ExtensionAbsent,
    LeaseEnding,
    UnsendableSetting,
    UnsendableValue,
    VerbaAmbiguous,
    VerbaAuthError,
    VerbaError,
    VerbaMalformedResponse,
    VerbaStatusError,
    VerbaTransportError,
    VerbaUnreachable,
)
from connector.verba.guard import EXTENSION_WRITES, UserIdGuard
from connector.verba.sent import SentLog
from connector.verba.status import (
    ALREADY_EXISTS,
    GENERAL,
    OK,
    UNAUTHORIZED,
    Status,
    element_named,
    field,
    one_line,
    read_status,
    says_extension_absent,
)
from connector.verba.transport import SOAP_ENV, TNS, Answer, Transport, verba_pool

logger = logging.getLogger(__name__)

UNREACHABLE_HINT = "check target.url and that Provisioning API v2 is enabled on the Media Repository (port 7002)"
TLS_HINT = ("check that the CA bundle (REQUESTS_CA_BUNDLE, else certifi's; read at start-up) holds the CA that "
            "issued Verba's certificate, and that the certificate names target.url's host")
WSDL_FILE = "provisioning-v2.wsdl"
BINDING = f"{{{TNS}}}ProvisioningPortBinding"
# The delivery path's calls: each envelope a copy of zeep's first of its shape (`_envelope`), each answer read
# from its <return> element without zeep (by `read_status`, or `_read_element`).
COPIED = EXTENSION_WRITES | {"getExtension"}
ANY = "_value_1"  # how zeep names a type's xs:any
MIN_SECRET_LENGTH = (
    8  # shorter values (test tokens such as "t") are not masked: masking them would garble every message
)
KEPT_TOKENS = 8  # requested tokens still masked after renewals (an answer may echo an old one)
DIRECTORY_TIMEOUT = 300.0  # seconds a whole-directory listUsers may take (VerbaClient.every_user)
MESSAGE_LIMIT = 1000  # characters of an error message
# How an answer about another extension or user than was asked ends (VerbaAmbiguous: retried, then a dead letter).
MIXED_UP = ("not what was asked: the answer is not believed, and nothing is written on it; if Verba keeps answering "
            "so, check what answers at target.url (a caching proxy can mix answers up) and Verba's logs, then replay "
            "the event")
# The login name a fixed-token client's probe asks listUsers for: an exact criterion no user is expected to match
# (an empty <loginName> is an unused tag, which the vendor says to leave out; without it the list is every user).
PROBE_LOGIN = "verba-connector-probe"
USER_NOT_FOUND = "UserNotFoundException"  # what requestToken's ERROR_GENERAL names when it refuses a login or password
# lxml's reasons for a character XML cannot carry: "PCDATA invalid Char value 1", "xmlParseCharRef: invalid xmlChar
# value 1" (written &#1;), "Char 0x0 out of allowed range".
_INVALID_CHARACTER = re.compile(r"invalid (?:xml)?Char value (\d+)|Char 0x([0-9A-Fa-f]+) out of allowed range")
_HTML = re.compile(
    rb"\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!doctype\s+html|<html[\s>])", re.IGNORECASE | re.DOTALL
)


@dataclasses.dataclass(frozen=True, slots=True)
class ListedUser:
    """A user as listUsers answers it; `extensions` as `VerbaClient.listed_user` describes them (none when
    the call skipped them)."""

    user_id: int
    login_name: str | None
    extensions: list[dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class RecorderStatus:
    """What a recording server answered applyExtensionConfiguration (its name, environment and status)."""

    location: str | None
    eid: str | None
    code: str  # its statusCode: OK when it took the extension table
    message: str | None


class VerbaClient:
    """One connection pool and one token, safe to share between threads.

    Authenticate with `login` + `password` (requestToken, renewed once when a call answers
    ERROR_UNAUTHORIZED) or with a fixed `token` (never renewed).

    Every failure leaves as a VerbaError with a one-line message (see `_exchange`). Every secret the
    client holds (the password, the fixed token, each token requestToken gave it) is masked in those
    messages and in vendor status messages, in the envelopes `capture()` records, and, registered
    with `connector.ops.logs.register_secret`, in every log line. A password in `url` (http://user:password@host/...)
    is dropped: nothing would send it, and messages name the url. `agent` is the User-Agent header of
    every call (zeep's by default), e.g. "verba-connector (instance a)"; `unreachable_hint` ends the message
    of a call that got no answer; `password_source` (where the password came from, e.g. "file /etc/c/pw
    (target.password_file)") is what a refused login says to check. A password equal to the login is not masked
    (the login is in messages: masking it would garble them and tell the password); a warning says to change it.

    `read_password` reads the password again from its source (a password_file) before each requestToken, so a
    rotated password is used without a restart; it raises OSError or ValueError when it cannot (the last password
    read is sent). A password requestToken refused (`refuses_login`) is not sent again for a while
    (connector.passwords), unless it changes or `forget_refused_password` is called (SIGHUP): the calls fail at once
    with the refusal instead. Any other failed requestToken (Verba failing as it restarts) is tried again at the next
    call.
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
        agent: str | None = None,
        unreachable_hint: str = UNREACHABLE_HINT,
        password_source: str | None = None,
        read_password: Callable[[], str] | None = None,
    ) -> None:
        _check_settings(eid, environment_short_name, login, password, token)
        self.url = without_password(url)  # as every message names it (urllib3 would not send the password anyway)
        self.unreachable_hint = unreachable_hint  # what to check when no answer comes
        self.password_source = password_source  # what to check when the login is refused
        self.eid = eid
        self.environment_short_name = environment_short_name
        self.timeout = timeout
        self._login = login
        self._password = password
        self._read_password = read_password
        self._refused = RefusedPassword()
        self._refusal = ""  # what Verba answered the password refused last
        self._fixed_token = token is not None
        self._token = token
        self._lock = threading.Lock()
        self._token_requests = 0  # requestTokens ended, under _lock
        self._token_failure: VerbaError | None = None  # why the last one failed (None: it did not)
        self._local = threading.local()  # per thread: until when calls may start (see calls_until)
        if password is not None and password == login:
            logger.warning("the Verba password of login %r is the login itself: anyone who reads the login knows it; "
                           "give the API user another password in Verba and in %s", login,
                           password_source or "the config")
        self._configured = tuple(s for s in (password, token) if s and self._maskable(s))
        self._requested: tuple[str, ...] = ()  # the last KEPT_TOKENS tokens requestToken gave
        self._masked: tuple[str, ...] = ()
        self._remask()
        for secret in self._configured:
            register_secret(secret)
        self._transport = transport = Transport(verba_pool(self.url, pool_size), timeout, agent)
        self._sent = SentLog(self._mask)
        self._zeep = zeep.Client(
            _wsdl(),
            transport=transport,
            # strict=False: an element the WSDL does not list (a <serverTime>) is kept aside, not refused.
            # raw_response: zeep hands back the HTTP answer unread; `_exchange` parses it (strictly) and has
            # zeep read the parsed envelope.
            settings=zeep.Settings(strict=False, raw_response=True, xsd_ignore_sequence_order=True),
            plugins=[UserIdGuard(), self._sent],
        )
        self._service = self._zeep.create_service(BINDING, self.url)
        self._binding = self._service._binding
        self._templates: dict[tuple[str, Any], tuple[Any, dict[str, str]]] = {}  # envelopes copied (_envelope)

    @contextlib.contextmanager
    def calls_until(self, end: Callable[[], float]) -> Iterator[None]:
        """Inside the block, this thread starts a call only if it can end before `end()` (a Unix time):
        a call that could outlast the worker's lease is not sent (LeaseEnding), so that it never
        overlaps a push of the same user by the worker that takes over."""
        self._local.end = end
        try:
            yield
        finally:
            self._local.end = None

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
        `says_extension_absent`). Any other ERROR_GENERAL is unclear, so listUsers (filter `extension`, exact,
        with the users' extensions) is asked who holds it: one user answers it, with the fields of that
        extension as listUsers lists it (recording mode and flags: whether it records; None where it lists
        none); none means no user holds it (absent or unlinked: every field but `extension` None); several
        raise VerbaAmbiguous. So does an answer about another extension (`_about_another`): a getExtension
        naming another number or environment, or a holder that listUsers lists without this extension.
        """
        value, status = self._call("getExtension", environmentFilter=self._environment_filter(), extension=extension)
        if status.code == OK:
            found = field(value, "extension")
            if found is None:
                return None
            self._about_another("getExtension", f"extension {extension}", found, extension=extension)
            return _extension_dict(found)
        if says_extension_absent(status):
            return None
        if status.code != GENERAL:
            status.check("getExtension")
        unclear = f"getExtension {extension} answered {status.code}: {status.message}, and listUsers"
        holders = self._users(extension=extension, extensionExact=True, skip_extensions=False)
        if len(holders) > 1:
            raise VerbaAmbiguous(f"{unclear} finds {len(holders)} users holding it; Verba's answers are unclear")
        if not holders:
            return {**dict.fromkeys(_EXTENSION_FIELDS), "extension": extension}
        holder = self._listed(holders[0])
        listed = next((e for e in holder.extensions if e["extension"] == extension), None)
        if listed is None:
            numbers = ", ".join(repr(e["extension"]) for e in holder.extensions) or "none"
            raise VerbaAmbiguous(
                f"{unclear} finds Verba user {holder.user_id} ({holder.login_name}) holding it, but lists that user's "
                f"extensions without it (it lists {numbers}); Verba's answers are unclear, and the user is not taken "
                "for its holder"
            )
        return listed

    # users

    def find_user_id(self, login_name: str) -> int | None:
        """The Verba user id for an exact login name in the configured environment; None when listUsers answers no
        user. Raises what `_named` raises for an answer about other users."""
        user = self._named(self._users(loginName=login_name, loginNameExact=True), login_name)
        return None if user is None else _user_id(user, "listUsers")

    def listed_user(self, login_name: str) -> ListedUser | None:
        """The user with this exact login name in the configured environment and the extensions Verba links
        to it, as Verba holds them now (for drift checks); None when there is no such user.

        One listUsers call (loginName exact, skipExtensions false; groups and roles skipped). Each
        extension is a dict with the keys of `get_extension`: id, extension, user_id, user_login_name,
        recording_mode, voice, im, video, screen_capture_enabled, eid, environment_short_name, where
        user_id and user_login_name are the listed user's and any field Verba leaves out is None.
        Raises VerbaAmbiguous when listUsers answers several users for the exact login name, only other users, or
        an extension of another environment (`_named`, `_listed`), VerbaMalformedResponse when it answers a user
        without an integer id, VerbaStatusError for a non-OK status, and the client's other VerbaErrors (transport,
        auth) as every call does.
        """
        user = self._named(self._users(loginName=login_name, loginNameExact=True, skip_extensions=False), login_name)
        return None if user is None else self._listed(user)

    def every_user(self, *, extensions: bool, timeout: float = DIRECTORY_TIMEOUT) -> list[ListedUser]:
        """Every user of the configured environment that one listUsers without criterion answers, with the
        extensions Verba links to each when `extensions` (as `listed_user` gives them).

        Verba may answer fewer users than it holds (the vendor does not say whether it caps a list):
        callers look up one by one whoever is missing. The answer is read as it parses, one <users> at a
        time, so that a 100k-user answer is never held as a tree or as zeep objects; the call may take
        up to `timeout` seconds (the client's timeout if longer). Raises VerbaStatusError when Verba
        refuses a listUsers without criterion, and every call's VerbaErrors.
        """
        listed: list[ListedUser] = []
        self._current_token()  # within the client's timeout: only the list itself may take longer
        with self._transport.longer(timeout):
            _, status = self._call(
                "listUsers", listed=listed,
                filter={"environmentFilter": self._environment_filter(), "skipExtensions": not extensions,
                        "skipGroups": True, "skipRoles": True},
            )
        status.check("listUsers")
        return listed

    # recorders

    def apply_extension_configuration(self) -> list[RecorderStatus]:
        """applyExtensionConfiguration: the recording servers take the extension table from Verba's database.
        forceEvenIfNotRegistered is false: by the vendor's page, only servers whose table differs get it (what
        "registered" means there is not said). Each server tried, with its status (OK ones too:
        returnSuccessfulStatuses true); where the answer puts them, and their fields, are guessed (see the
        WSDL). Raises VerbaStatusError when Verba refuses the call, VerbaMalformedResponse for a server without
        a status, and every call's VerbaErrors."""
        value, status = self._call("applyExtensionConfiguration", returnSuccessfulStatuses=True,
                                   forceEvenIfNotRegistered=False)
        status.check("applyExtensionConfiguration")
        servers = []
        for server in field(value, "statuses") or []:
            answered = self._read_status(server, "applyExtensionConfiguration")
            servers.append(RecorderStatus(field(server, "location"), field(server, "eid"), answered.code,
                                          answered.message))
        return servers

    def probe(self) -> None:
        """One cheap authenticated read (listUsers for the API login name exactly, or with a fixed token PROBE_LOGIN,
        nothing else asked for), to see whether Verba answers at all; raises VerbaError if it does not."""
        self._users(loginName=self._login or PROBE_LOGIN, loginNameExact=True)

    def _users(self, *, skip_extensions: bool = True, **criteria: Any) -> list[Any]:
        """listUsers in the configured environment with these filter criteria; groups and roles skipped,
        extensions too unless `skip_extensions` is False."""
        value, status = self._call(
            "listUsers",
            filter={"environmentFilter": self._environment_filter(), **criteria,
                    "skipExtensions": skip_extensions, "skipGroups": True, "skipRoles": True},
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
        created = field(value, "user")
        self._about_another("createUser", f"loginName {login_name!r}", created, loginName=login_name)
        return _user_id(created, "createUser")

    # what an answer is about

    def _named(self, users: list[Any], login_name: str) -> Any | None:
        """The one of `users`, listUsers' answer for the exact `login_name`, that is the user asked for; None when
        listUsers answers no user (there is no such user). A user named otherwise (`_otherwise`: another login name,
        another environment) is an answer about another user, never taken for this one: VerbaAmbiguous when the answer
        holds only such users, or several users with the login name (Verba holds one per login name)."""
        named = [user for user in users if not self._otherwise(user, loginName=login_name)]
        if len(named) > 1:
            raise VerbaAmbiguous(f"listUsers returned {len(named)} users for the exact loginName {login_name!r} (Verba "
                                 f"users {', '.join(str(field(user, 'id')) for user in named)}); Verba's answers are "
                                 "unclear: check Verba for users that share the login name")
        if users and not named:
            others = "; ".join(f"Verba user {field(user, 'id')} with {self._otherwise(user, loginName=login_name)}"
                               for user in users)
            raise VerbaAmbiguous(f"listUsers for loginName {login_name!r} answered {others}, {MIXED_UP}")
        return named[0] if named else None

    def _listed(self, user: Any) -> ListedUser:
        """A listUsers user; its extensions carry its id and login name. VerbaAmbiguous when the user or one of
        its extensions is of another environment than the configured one (`_about_another`)."""
        user_id = _user_id(user, "listUsers")
        self._about_another("listUsers", f"the users of {self._environment()}", user)
        extensions = field(user, "extensions") or []
        for extension in extensions:
            self._about_another("listUsers", f"the extensions of Verba user {user_id} in {self._environment()}",
                                extension)
        login = field(user, "loginName")
        owner = {"user_id": user_id, "user_login_name": login}
        return ListedUser(user_id, login, [{**_extension_dict(e), **owner} for e in extensions])

    def _about_another(self, operation: str, asked_for: str, answered: Any, **asked: str) -> None:
        """VerbaAmbiguous when `answered`, an extension or a user in Verba's answer to `operation` (which asked for
        `asked_for`, e.g. "extension +14155550101"), is named otherwise than was asked (`_otherwise`): an answer about
        another extension or user, which the vendor does not document. Retried a few times (a proxy may have mixed one
        answer up), then a dead letter naming both; nothing is written on it."""
        other = self._otherwise(answered, **asked)
        if other:
            raise VerbaAmbiguous(f"{operation} for {asked_for} answered {other}, {MIXED_UP}")

    def _otherwise(self, answered: Any, **asked: str) -> str:
        """What `answered` (an extension or a user as Verba answers it) names otherwise than was asked: each field of
        `asked` (Verba's name: the value asked for) and the configured environment (eid, or environmentShortName)
        that it names, e.g. "extension '+14155550999' (asked '+14155550101')"; "" when none. A field it leaves out is
        not compared. Values compare exactly (the number as sent; a login name with a domain is another login name:
        connector.delivery.users, `differs_only_by`), but a login name in another case: a Verba whose look-ups ignore
        case answers its user under the spelling it holds, which is the user asked for there (a Verba that tells case
        apart answers no such user for it)."""
        wanted_fields: dict[str, str | None] = {**asked, "eid": self.eid,
                                                "environmentShortName": self.environment_short_name}
        return ", ".join(f"{name} {value!r} (asked {wanted!r})" for name, wanted in wanted_fields.items()
                         if wanted is not None and (value := field(answered, name)) is not None
                         and not _same(name, value, wanted))

    def _environment(self) -> str:
        """The configured environment, as messages name it: "eid 0000", or "environmentShortName default"."""
        return f"eid {self.eid}" if self.eid is not None else f"environmentShortName {self.environment_short_name}"

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
        status = self._read_status(self._send("releaseToken", token=token), "releaseToken")
        if status.code != UNAUTHORIZED:  # already expired: nothing left to release
            status.check("releaseToken")

    def close(self) -> None:
        try:
            self.release_token()
        except VerbaError as exc:
            logger.warning("could not release the Verba token: %s", exc)
        finally:
            self._transport.close()

    # internals

    def _extension_call(self, operation: str, record: ExtensionRecord) -> Status:
        return self._call(operation, extension=extension_payload(record))[1]

    def _call(self, operation: str, listed: list[ListedUser] | None = None, **params: Any) -> tuple[Any, Status]:
        """One operation with the current token; renews it once and retries on ERROR_UNAUTHORIZED. With
        `listed`, a listUsers answer's users are read one at a time into it (see `_stream_users`)."""
        token = self._current_token()
        value = self._send(operation, listed, token=token, **params)
        status = self._read_status(value, operation)
        if status.code == UNAUTHORIZED:
            token = self._renewed_token(token, status, operation)
            value = self._send(operation, listed, token=token, **params)
            status = self._read_status(value, operation)
        return value, status

    def _read_status(self, value: Any, operation: str) -> Status:
        """The answer's status, its vendor message with every secret masked (Verba echoes tokens)."""
        status = read_status(value, operation)
        return dataclasses.replace(status, message=self._mask(status.message)) if status.message else status

    def _current_token(self) -> str:
        token, requests = self._token, self._token_requests
        if token is None:
            with self._lock:
                if self._token is None:
                    if self._token_failure is not None and self._token_requests != requests:
                        raise self._token_failure  # the request this thread waited for failed: not asked again
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
        """A new token (called under _lock); a failure is kept for the threads that waited for it."""
        try:
            token = self._new_token()
        except VerbaError as exc:
            self._token_failure = exc
            raise
        else:
            self._token_failure = None
        finally:
            self._token_requests += 1  # once it ended: a thread that read the count before waited for this one
        return token

    def _new_token(self) -> str:
        password = self._current_password()
        withheld = self._refused.withheld(password or "")
        if withheld is not None:
            raise VerbaAuthError(f"requestToken not sent: the password was {withheld}. {self._refusal}")
        value = self._send("requestToken", eid=self.eid, loginName=self._login, password=password)
        status = self._read_status(value, "requestToken")
        if status.code != OK:
            raise self._login_failed(status, password or "")
        self._refused.forget()
        token = field(value, "token")
        if not isinstance(token, str) or not token.strip():
            raise VerbaMalformedResponse("requestToken answered OK without a token")
        self._remember_token(token)
        return token

    def _login_failed(self, status: Status, password: str) -> VerbaAuthError:
        """The error for a requestToken Verba answered with `status` (not OK). Only Verba's refusal of the login
        (`refuses_login`) withholds the password for a while; any other answer (a database error while Verba
        restarts) is Verba failing: the password is sent again at the next login. Either is target-wide."""
        detail = f"{status.code}: {status.message}" if status.message else status.code
        answered = f"requestToken for login {self._login!r} in environment {self.eid} answered {detail}"
        if not refuses_login(status):
            return VerbaAuthError(f"{answered}; Verba failed, it did not refuse the password: the login is tried "
                                  "again at the next call")
        reread = "; it is read again before each login" if self._read_password else ""
        check = f"check target.login and the password{f' in {self.password_source}' if self.password_source else ''}"
        if status.code != UNAUTHORIZED and not _ABOUT_LOGIN.search(status.message or ""):  # a refusal presumed
            check = ("Verba refused the login for the reason it gives, which does not name the password: fix that in "
                     f"Verba, then send SIGHUP; if it is the password after all, {check}")
        self._refusal = f"{answered}; {check}{reread} ({self._refused.refuse(password)}, or until SIGHUP)"
        return VerbaAuthError(self._refusal)

    # secrets

    def forget_refused_password(self) -> bool:
        """Send the password requestToken last refused again at the next login (it was fixed on Verba's side);
        whether one was withheld until now."""
        return self._refused.forget()

    def _current_password(self) -> str | None:
        """The password to send, read again from its source when the client has `read_password` (called under
        _lock); the last one read when the source cannot be read now."""
        if self._read_password is None:
            return self._password
        try:
            password = self._read_password()
        except (OSError, ValueError) as exc:
            logger.warning("cannot read the Verba password again (%s); sending the last one read", exc)
            return self._password
        if password != self._password and self._maskable(password):
            register_secret(password)
            self._configured = (*self._configured, password)
            self._remask()
        self._password = password
        return password

    def _maskable(self, secret: str) -> bool:
        """Whether to mask this password or token: not when it is short (masking would garble every message) or the
        login itself (masking it in the messages that name the login would tell it)."""
        return len(secret) >= MIN_SECRET_LENGTH and secret != self._login

    def _remember_token(self, token: str) -> None:
        """Mask a token requestToken gave from now on, in what the client raises and records and in every
        log line; called under _lock. The password and a fixed token are masked from the start."""
        if len(token) < MIN_SECRET_LENGTH or token in self._masked:
            return
        register_secret(token)
        self._requested = (*self._requested, token)[-KEPT_TOKENS:]
        self._remask()

    def _remask(self) -> None:
        """Mask the configured secrets and the tokens kept: all of them, longest first (a secret inside another goes
        with it), replaced whole so that readers take no lock."""
        self._masked = tuple(sorted({*self._configured, *self._requested}, key=len, reverse=True))

    def _mask(self, text: str) -> str:
        for secret in self._masked:
            text = text.replace(secret, MASK)
        return text

    def _scrub(self, exc: VerbaError) -> None:
        """Give the error a one-line message that holds no secret (in place: its class and fields stay)."""
        text = self._mask(one_line(str(exc), MESSAGE_LIMIT))
        if text != str(exc):
            exc.args = (text,)
        if isinstance(exc, VerbaStatusError) and exc.vendor_message:
            exc.vendor_message = self._mask(exc.vendor_message)

    def _send(self, operation: str, listed: list[ListedUser] | None = None, **params: Any) -> Any:
        """Call the operation, counting it in the metrics with its answer's status (unless it never went out)."""
        end = getattr(self._local, "end", None)
        if end is not None and time.time() + self.timeout > end():
            raise LeaseEnding(f"{operation} was not sent: the push's lease (or this instance's liveness) ends before "
                              f"a {self.timeout:g} s call could; the user is tried again")
        started = time.perf_counter()
        status, message = "not_sent", None
        try:
            value = self._exchange(operation, params, listed)
            status, message = _status(value, operation)
            return value
        except VerbaError as exc:
            status = exc.cause
            self._scrub(exc)
            message = exc.vendor_message if isinstance(exc, VerbaStatusError) else None
            raise
        finally:
            if self._sent.went_out:  # else refused by the guard or not buildable: nothing went over the wire
                seconds = time.perf_counter() - started
                observe_soap_call(operation, status, seconds)
                self._sent.answered(operation, status, None if message is None else self._mask(message))
                logger.debug("%s answered %s in %.0f ms", operation, status, seconds * 1000,
                             extra={"operation": operation, "status": status})

    def _exchange(self, operation: str, params: dict[str, Any], listed: list[ListedUser] | None = None) -> Any:
        """The one place where whatever zeep, urllib3, lxml or an odd answer raises becomes a VerbaError.

        Sending: zeep builds the envelope (an extension write's or getExtension's is a copy, see `_envelope`), the
        plugins check it, the transport posts it (raw_response: zeep returns the HTTP answer unread). An
        error before the envelope went out is a request this side cannot build (a zeep ValidationError: a
        value the WSDL refuses, a bug or bad data): not retryable, and with no better class it is a plain
        VerbaError; a value holding a character XML cannot carry is named, and classified by whose it is
        (`_unsendable`). One after it went out is the transport's. Reading: `_answer_envelope` parses the answer
        once, refusing what is not one well-formed SOAP envelope of this operation's answer, then zeep reads
        it (a COPIED call's answer is read from its <return> element, without zeep); anything either raises
        is a VerbaMalformedResponse naming what was wrong.
        """
        self._sent.start()
        try:
            if operation in COPIED:  # as zeep's send, which adds nothing more here (no WS-Addressing,
                # WS-Security or extra HTTP headers are configured)
                envelope, headers = plugins.apply_egress(self._zeep, *self._envelope(operation, params),
                                                         self._binding.get(operation), self._service._binding_options)
                response = self._transport.post_xml(self.url, envelope, headers)
            else:
                response = self._service[operation](**params)
        except VerbaError:
            raise
        except urllib3.exceptions.TimeoutError as exc:
            if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):  # NewConnectionError too, for history
                raise self._unreachable(operation, exc) from exc
            raise VerbaTransportError(
                f"{operation} to {self.url} got no answer within {self._transport.timeout_now():g} s; Verba is slow "
                "or unreachable"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(operation, exc) from exc
        except Exception as exc:
            if self._sent.went_out:
                raise VerbaTransportError(f"{operation} to {self.url} failed after sending ({_describe(exc)})") from exc
            unsendable = _unsendable_value(params)
            if unsendable is not None:
                raise self._unsendable(operation, *unsendable) from None
            raise VerbaError(
                f"{operation} was not sent: its request does not fit the WSDL ({_describe(exc)}); a bug or bad "
                "data on the connector's side, retrying cannot help"
            ) from exc
        try:
            envelope = _answer_envelope(operation, self._stream_users(response, listed) if listed is not None
                                        else _parsed(operation, _answer_content(operation, response)))
            soap_operation = self._binding.get(operation)
            if envelope.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault") is not None:
                self._binding.process_error(envelope, soap_operation)  # raises zeep's Fault
            if operation in EXTENSION_WRITES:  # their status is all the caller reads: zeep's reading is spared
                return _returned(envelope)
            if operation in COPIED:
                return_type = _children(soap_operation.output.body.type)["return"].type
                return _read_element(operation, _returned(envelope), return_type)
            return _read(operation, soap_operation.process_reply, envelope)
        except VerbaError:
            raise
        except zeep.exceptions.Fault as exc:
            fault = ": ".join(one_line(str(part), 300) for part in (exc.code, exc.message) if part)
            raise VerbaMalformedResponse(f"{operation} answered a SOAP Fault with HTTP 200 ({fault})") from exc
        except Exception as exc:
            raise VerbaMalformedResponse(
                f"{operation} answered something that is not its documented response ({_describe(exc)}); "
                "check that target.url points at Verba Provisioning API v2"
            ) from exc

    def _unsendable(self, operation: str, path: str, value: str) -> VerbaError:
        """The error for a request not built because the value at `path` holds a character XML cannot carry.

        A setting of the connector's own (`_setting`) fails every call alike: requestToken's is a VerbaAuthError,
        any other an UnsendableSetting, both target-wide (the breaker pauses delivery, nothing is dead-lettered), named
        by their key, never shown. Any other value is one person's (a login name, an extension, a name): an
        UnsendableValue, that person's dead letter, naming the field and the value."""
        setting = self._setting(operation, path)
        if setting is None:
            return UnsendableValue(f"{operation} was not sent: {path} {one_line(repr(value), 200)} {not_xml(value)}; "
                                   "fix the value at the source, then replay the event")
        key, fix = setting
        text = f"{operation} was not sent: {key} {not_xml(value)}, so Verba cannot be called; {fix}"
        return VerbaAuthError(text) if operation == "requestToken" else UnsendableSetting(text)

    def _setting(self, operation: str, path: str) -> tuple[str, str] | None:
        """Which setting of the connector's own the request value at `path` is, and how to fix it: (key, fix); None
        for a value of one person's."""
        name = path.rpartition(".")[2]
        restart = "fix it in the config and restart the connector"
        if path == "token":
            return ("the fixed token (target.token_env or target.token_file)",
                    "set it without that character and restart the connector (a token_file is read at start)")
        if operation == "requestToken" and path == "password":
            source = self.password_source or "target.password_env or target.password_file"
            return (f"the password ({source})", "write the password without it: a password_file is read again before "
                                                "each login, a password_env takes a restart")
        if operation == "requestToken" and path == "loginName":
            return "target.login", restart
        if path.startswith("extension.") and name in ("eid", "environmentShortName"):
            return (f"the mapping's [environment] {'eid' if name == 'eid' else 'short_name'}",
                    "fix it in the mapping file and restart every instance")
        if name == "eid":
            return "target.eid", restart
        if name in ("shortName", "environmentShortName"):
            return "target.environment_short_name", restart
        return None

    def _envelope(self, operation: str, params: dict[str, Any]) -> tuple[Any, dict[str, str]]:
        """The envelope and HTTP headers of a call in COPIED, before the plugins. zeep's rendering costs most of
        such a call on the delivery path, so zeep builds the first envelope of each shape (the operation, and
        which values are left out) and each later one is a copy of it with this call's values, written as the
        WSDL's types write them. An extension write without a user id is always zeep's, for UserIdGuard to
        refuse as zeep renders it."""
        soap_operation = self._binding.get(operation)
        extension = params.get("extension")
        copied = not isinstance(extension, dict) or (extension.get("user") or {}).get("id") is not None
        shape = (operation, _shape(params))
        template = self._templates.get(shape) if copied else None
        if template is None:
            serialized = soap_operation.create(**params)
            self._binding._set_http_headers(serialized, soap_operation)
            if copied:
                self._templates[shape] = (copy.deepcopy(serialized.content), dict(serialized.headers))
            return serialized.content, serialized.headers
        envelope = copy.deepcopy(template[0])
        _fill(envelope.find(f"{{{SOAP_ENV}}}Body")[0], params, soap_operation.input.body.type)
        return envelope, dict(template[1])

    def _stream_users(self, response: Answer, listed: list[ListedUser]) -> Any:
        """Read a listUsers answer's users into `listed` as the XML parses, each <users> by zeep on its own
        and then dropped; the answer's root element without them, for `_exchange` to read as any other."""
        listed.clear()  # a retried call starts again
        user_type = self._zeep.get_type(f"{{{TNS}}}user")
        content = _answer_content("listUsers", response)
        parsing = etree.iterparse(io.BytesIO(content), events=("end",), tag="{*}users", resolve_entities=False,
                                  no_network=True, remove_comments=True)
        try:
            for _, element in parsing:
                if etree.QName(element.getparent()).localname != "return":
                    continue
                user = _read("listUsers", user_type.parse_xmlelement, element, self._zeep.wsdl.types)
                listed.append(self._listed(user))
                element.getparent().remove(element)
        except etree.XMLSyntaxError as exc:
            raise _unparsable("listUsers", exc, content) from None
        return parsing.root

    def _unreachable(self, operation: str, exc: Exception) -> VerbaTransportError:
        """No answer came: VerbaUnreachable when no connection could be made (refused, unknown host, none within the
        timeout: nothing was sent), else the connection broke (reset, closed mid-answer); TLS failures say why
        (`_tls_failed`)."""
        if isinstance(exc, urllib3.exceptions.SSLError):
            return self._tls_failed(operation, exc)
        kind = VerbaUnreachable if isinstance(exc, urllib3.exceptions.ConnectTimeoutError) else VerbaTransportError
        return kind(f"{operation} could not reach {self.url} ({type(exc).__name__}); {self.unreachable_hint}")

    def _tls_failed(self, operation: str, exc: urllib3.exceptions.SSLError) -> VerbaTransportError:
        """TLS failed, with its reason: VerbaUnreachable when it refused Verba's certificate (in the handshake:
        nothing was sent), saying to check the CA bundle and the certificate."""
        refused = next((e for e in exc.args if isinstance(e, ssl.SSLCertVerificationError)), None)
        if refused is not None:
            why = getattr(refused, "verify_message", None) or one_line(str(refused), 200)
            return VerbaUnreachable(f"{operation} could not reach {self.url}: Verba's TLS certificate is not trusted "
                                    f"({why}); {TLS_HINT}")
        return VerbaTransportError(f"{operation} to {self.url} failed in TLS ({_describe(exc)}); check that "
                                   f"target.url's port serves https, and {TLS_HINT.removeprefix('check ')}")

    def _environment_filter(self) -> dict[str, Any]:
        if self.eid is not None:
            return {"eid": self.eid, "eidExact": True}
        return {"shortName": self.environment_short_name, "shortNameExact": True}


# A requestToken answer that says Verba is failing, not refusing the login (a database error while it restarts).
_VERBA_FAILING = re.compile(r"sql|jdbc|database|connection|timed?\s*-?out|unavailable|temporar|starting|"
                            r"NullPointer|OutOfMemory|internal\s+error", re.IGNORECASE)
# ... and one about the login, whatever else it says (a locked account, a directory-backed login's refusal).
_ABOUT_LOGIN = re.compile(r"password|credential|log\s*[io]n|locked|denied|authenticat|unauthori[sz]|" + USER_NOT_FOUND,
                          re.IGNORECASE)


def _same(name: str, answered: Any, asked: str) -> bool:
    """Whether Verba's `answered` value of field `name` is the `asked` one: equal, or for a loginName equal but for
    case (`VerbaClient._otherwise`)."""
    return answered == asked or (name == "loginName" and str(answered).casefold() == asked.casefold())


def refuses_login(status: Status) -> bool:
    """Whether a requestToken answer (not OK) may be Verba's refusal of the login or password: ERROR_UNAUTHORIZED,
    ERROR_GENERAL naming com.verba.web.user.UserNotFoundException (the vendor's page), and any answer but one that
    says Verba is failing and nothing of the login ("java.sql.SQLTransientConnectionException ..."). A refusal worded
    otherwise (a locked account) sent again at every probe could lock the account out where a policy counts them."""
    message = status.message or ""
    return status.code == UNAUTHORIZED or bool(_ABOUT_LOGIN.search(message)) or not _VERBA_FAILING.search(message)


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


def _parsed(operation: str, content: bytes) -> Any:
    """`content` parsed strictly (zeep, with strict=False, would recover broken XML: a truncated answer would
    read as whatever survived); refuses, saying what it is, text and broken XML."""
    try:
        return etree.fromstring(content, etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True))
    except etree.XMLSyntaxError as exc:
        raise _unparsable(operation, exc, content) from None


def _unsendable_value(values: dict[str, Any], within: str = "") -> tuple[str, str] | None:
    """The first string among a request's parameters (`values`, nested dicts and lists as zeep takes them) that holds
    a character XML cannot carry (`not_xml`): its path ("user.loginName", "filter.loginName") and the string; None when
    every one can be written."""
    for name, value in values.items():
        path = f"{within}.{name}" if within else name
        for item in value if isinstance(value, list) else [value]:
            found = (_unsendable_value(item, path) if isinstance(item, dict)
                     else (path, item) if isinstance(item, str) and not_xml(item) else None)
            if found is not None:
                return found
    return None


def _shape(params: dict[str, Any]) -> tuple[Any, ...]:
    """What an envelope's elements are for these parameters: their names, nested, and which are None (left out)."""
    return tuple((name, _shape(value) if isinstance(value, dict) else value is None) for name, value in params.items())


def _fill(element: Any, values: dict[str, Any], kind: Any) -> None:
    """Write `values` into the children of `element` (of zeep type `kind`) that a template holds, each as its
    WSDL type writes it (the template holds no element for a value left out)."""
    children = _children(kind)
    for child in element:
        value = values[child.tag]
        if isinstance(value, dict):
            _fill(child, value, children[child.tag].type)
        else:
            child.text = children[child.tag].type.xmlvalue(value)


@functools.cache
def _children(kind: Any) -> dict[str, Any]:
    """The child elements (zeep's) of a complex type, by name."""
    return dict(kind.elements)


def _read_element(operation: str, element: Any, kind: Any) -> dict[str, Any] | None:
    """An element of the complex zeep type `kind` read as zeep reads it (strict=False, xsd_ignore_sequence_order),
    without zeep's cost: each child the type lists, by its WSDL type (a complex one likewise; a repeated one into
    a list); the others, and the repeats of a single one, kept as elements in the type's xs:any ("_value_1") or
    else in "_raw_elements". None for no element. VerbaMalformedResponse when a value does not fit its type
    (zeep would read it as None)."""
    if element is None:
        return None
    children = _children(kind)
    values: dict[str, Any] = {name: [] if child.max_occurs != 1 and name != ANY else None
                              for name, child in children.items()}
    read: set[str] = set()
    others = []
    for child in element:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        listed = children.get(name) if name != ANY else None
        if listed is None or (name in read and listed.max_occurs == 1):
            others.append(child)
            continue
        read.add(name)
        if hasattr(listed.type, "elements"):
            value = _read_element(operation, child, listed.type)
        elif child.text is None:
            value = None
        else:
            try:
                value = listed.type.pythonvalue(child.text)
            except (TypeError, ValueError) as exc:
                raise VerbaMalformedResponse(
                    f"{operation} answered a value that does not fit the WSDL ({_describe(exc)})"
                ) from None
        if listed.max_occurs == 1:
            values[name] = value
        else:
            values[name].append(value)
    if others:
        values[ANY if ANY in children else "_raw_elements"] = others
    return values


def _returned(envelope: Any) -> Any:
    """The <return> element of an answer that `_answer_envelope` let through, as `read_status` reads it; None
    when there is none."""
    return element_named(envelope.find(f"{{{SOAP_ENV}}}Body")[0], "return")


def _answer_envelope(operation: str, root: Any) -> Any:
    """`root` if it is a SOAP 1.1 Envelope whose Body holds this operation's answer or a Fault. Refuses XML
    that declares entities (as zeep's parser does) and any other document: zeep answers such bodies with
    TypeError or IndexError, or reads another operation's answer as if it were this one's."""
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise VerbaMalformedResponse(f"{operation} answered XML that declares entities, which no SOAP answer "
                                     "does; check that target.url points at Verba Provisioning API v2")
    body = root.find(f"{{{SOAP_ENV}}}Body") if root.tag == f"{{{SOAP_ENV}}}Envelope" else None
    payload = body[0] if body is not None and len(body) else None
    if payload is None or payload.tag not in (f"{{{TNS}}}{operation}Response", f"{{{SOAP_ENV}}}Fault"):
        raise VerbaMalformedResponse(f"{operation} answered XML that is not a SOAP 1.1 {operation}Response; "
                                     "check that target.url points at Verba Provisioning API v2")
    return root


def _answer_content(operation: str, response: Answer) -> bytes:
    """The answer's XML (its first MIME part if multipart); refuses, saying what it is, an empty body, an
    HTML page, MIME parts that do not decode, and text that is not XML."""
    content_type = response.headers.get("Content-Type", "")
    content = response.content
    if content_type.split(";")[0].strip().lower() == "multipart/related":
        try:
            content = MultipartDecoder(content, content_type, get_encoding_from_headers(response.headers) or "utf-8"
                                       ).parts[0].content
        except Exception as exc:
            raise VerbaMalformedResponse(
                f"{operation} answered a MIME multipart body that does not decode ({_describe(exc)})"
            ) from exc
    head = content[:2048].lstrip().lower()
    if not head:
        raise VerbaMalformedResponse(
            f"{operation} answered an empty body with HTTP {response.status_code}; check that target.url points at "
            "Verba Provisioning API v2"
        )
    if _HTML.match(head):
        title = re.search(rb"<title[^>]*>(.*?)</title>", content[:8192], re.IGNORECASE | re.DOTALL)
        named = f" titled {_text(title.group(1), 80)!r}" if title else ""
        raise VerbaMalformedResponse(
            f"{operation} answered an HTML page{named} with HTTP {response.status_code}, not SOAP: a proxy or web "
            "server answers at target.url, or Verba is failing behind one"
        )
    if head.startswith(b"--"):
        raise VerbaMalformedResponse(
            f"{operation} answered a MIME multipart body under Content-Type {content_type or 'none'!r}, not SOAP XML"
        )
    return content


def _unparsable(operation: str, exc: etree.XMLSyntaxError, content: bytes) -> VerbaMalformedResponse:
    """The error for an answer lxml cannot parse: text, or broken XML and where (lxml's reason, line and column);
    when the reason is a character XML cannot carry, which one, in which element, and that a value Verba holds has
    it (Verba may write a control character of its data raw, as JAXB does)."""
    if not content.lstrip().startswith(b"<"):
        return VerbaMalformedResponse(f"{operation} answered text that is not XML: {_text(content, 80)!r}")
    line, column = exc.position
    reason = re.sub(r", line \d+, column \d+$", "", exc.msg or "")
    text = f"{operation} answered XML that does not parse (line {line}, column {column}: {one_line(reason, 200)})"
    invalid = _INVALID_CHARACTER.search(reason)
    if invalid is None:
        return VerbaMalformedResponse(text)
    code = int(invalid[1]) if invalid[1] else int(invalid[2], 16)
    written = character(chr(code)) if code <= sys.maxunicode else f"U+{code:X}"
    return VerbaMalformedResponse(
        f"{text}: Verba wrote {written}, which XML 1.0 cannot carry, into its answer{_where(content, line, column)}; "
        "a value Verba holds (a user's name, email or login name, an extension) has it: fix that value in Verba"
    )


def _where(content: bytes, line: int, column: int) -> str:
    """Where a parse error at `line` and `column` (lxml's: from 1, the column in bytes) is in `content`: ", in
    <displayName> after 'Da'", the element open there and its text up to the error; "" when none opens on that line
    before it."""
    lines = content.split(b"\n")
    if not 0 < line <= len(lines):
        return ""
    before = lines[line - 1][: max(column - 1, 0)].decode("utf-8", "replace")
    opened = re.search(r"<([\w.:-]+)[^<>]*>([^<>]*)$", before)
    if opened is None:
        return ""
    return f", in <{opened[1].rpartition(':')[2]}> after {one_line(opened[2][-60:], 60)!r}"


def _text(raw: bytes, limit: int) -> str:
    return one_line(raw.decode("utf-8", "replace"), limit)


def _describe(exc: BaseException) -> str:
    """An exception in one line: its class and what it says."""
    text = one_line(str(exc), 200)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _UnreadableValues(logging.Filter):
    """zeep reads an answer value that does not fit its XSD type (`<id>abc</id>` for an xs:int) as None
    and logs the error with its traceback at ERROR. While a thread reads an answer (`collecting`), the
    error is kept for a one-line VerbaMalformedResponse and the log record dropped."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    @contextlib.contextmanager
    def collecting(self) -> Iterator[list[str]]:
        found: list[str] = []
        self._local.found = found
        try:
            yield found
        finally:
            self._local.found = None

    def filter(self, record: logging.LogRecord) -> bool:
        found = getattr(self._local, "found", None)
        if found is None:
            return True
        error = record.exc_info[1] if record.exc_info else None
        found.append(_describe(error) if error is not None else one_line(record.getMessage(), 200))
        return False


_UNREADABLE_VALUES = _UnreadableValues()
for _name in ("zeep.xsd.types.simple", "zeep.xsd.elements.attribute"):
    logging.getLogger(_name).addFilter(_UNREADABLE_VALUES)


def _read(operation: str, read: Callable[..., Any], *args: Any) -> Any:
    """What `read(*args)` (zeep reading an answer, or a part of one) gives; VerbaMalformedResponse when a value
    in it does not fit its WSDL type (zeep would read it as None)."""
    with _UNREADABLE_VALUES.collecting() as unreadable:
        value = read(*args)
    if unreadable:
        raise VerbaMalformedResponse(f"{operation} answered a value that does not fit the WSDL ({unreadable[0]})")
    return value


def _status(value: Any, operation: str) -> tuple[str, str | None]:
    """The answer's status code and, unless it is OK, Verba's message ("malformed_response" when it has no readable
    status)."""
    try:
        status = read_status(value, operation)
    except VerbaError:
        return "malformed_response", None
    return status.code, None if status.code == OK else status.message


_EXTENSION_FIELDS = ("id", "extension", "user_id", "user_login_name", "recording_mode", "voice", "im", "video",
                     "screen_capture_enabled", "eid", "environment_short_name")


def _extension_dict(value: Any) -> dict[str, Any]:
    """The fields of `_EXTENSION_FIELDS` from a getExtension answer (or a listed user's extension)."""
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


def by_login_name(users: list[ListedUser]) -> dict[str, ListedUser]:
    """`users` (VerbaClient.every_user) by login name; a login name listed more than once is left out: looked
    up on its own (VerbaClient.listed_user, find_user_id), it raises what they raise for it."""
    logins = collections.Counter(user.login_name for user in users)
    return {login: user for user in users if (login := user.login_name) is not None and logins[login] == 1}


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
    if eid is not None and eid_problem(eid):
        raise ValueError(f"target.eid {eid_problem(eid)}")
    uses_login = login is not None or password is not None
    if uses_login == (token is not None):
        raise ValueError("give either target.login with a password, or a fixed token, not both")
    if uses_login and not (login and password):
        raise ValueError("target.login and a non-empty password are both needed (set the password env var/file)")
    if uses_login and eid is None:
        raise ValueError("requestToken needs target.eid; set it, or use a fixed token with environment_short_name")
