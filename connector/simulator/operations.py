"""The provisioning operations, as the vendor documents them.

Each handler takes the parsed call and returns the payload that goes next to an OK status
in `<return>` ("" for none); a `Refusal` carries a non-OK status.

Documented behaviour, kept on purpose:
- createExtension of an existing (eid, extension): ERROR_ALREADY_EXISTS, "This extension
  already exists in the database: <eid>:<extension>".
- updateExtension is a full replace: fields left out become empty, and a missing <user>
  (or a <user> without an id) removes the extension-user link, as the vendor's comment warns.
- A bad, expired or released token: ERROR_UNAUTHORIZED, "This token is expired or never
  got authenticated."
- requestToken with a wrong login or password: ERROR_GENERAL,
  "com.verba.web.user.UserNotFoundException".
Not documented, chosen here: how getExtension and updateExtension answer for a missing
extension. The vendor does not say, so the simulator can answer in each plausible shape, the
`missing_extension` setting (State(missing_extension=...), `--missing-extension`, or at run time
POST /_sim/behaviour), one of MISSING_EXTENSION_SHAPES:
- "ok_empty" (the default): getExtension answers OK without an <extension>; updateExtension
  answers ERROR_GENERAL, "The extension does not exist in the database: <eid>:<extension>".
- "error_general": both answer ERROR_GENERAL, "Extension not found: <eid>:<extension>" (the
  most hostile shape: it looks like an outage).
- "error_illegal_argument": both answer ERROR_ILLEGAL_ARGUMENT, "Extension <extension> does
  not exist in environment <eid>".
- an answer of a test's choosing instead of a name (state.MissingAnswer): {"status": "ERROR_NOT_FOUND",
  "message": "Extension {eid}:{extension} not found"}: both answer that status code and message, with
  the missing extension's eid and number in place of {eid} and {extension}.
Only a missing extension is answered so: createExtension, and the reads and updates of an existing
extension, are the same in every shape.
Inferred: listUsers answers each user's extensions (<extensions>, shaped like getExtension's
<extension> without the user) unless skipExtensions is true; the flag exists, so the default
lists them. Not documented either: whether listUsers without a text criterion (loginName,
externalId, extension) answers every user of the environment. The `unfiltered_list_users`
setting (POST /_sim/behaviour) is one of UNFILTERED_LIST_USERS_SHAPES:
- "all" (the default): every user.
- "capped": the first LIST_CAP users only, with nothing to say there are more (the most hostile).
- "refused": ERROR_ILLEGAL_ARGUMENT, "A filter criterion is required".
Not documented either: how a createExtension or updateExtension naming a user id Verba does not hold
(deleted by an admin since the connector looked it up) is answered. The `unknown_user` setting (POST
/_sim/behaviour) is one of UNKNOWN_USER_SHAPES:
- "error_illegal_argument" (the default): ERROR_ILLEGAL_ARGUMENT, "No user with id <id>".
- "error_general": ERROR_GENERAL, "Could not save extension <extension>: user <id> does not exist" (it looks like
  an outage, and names the extension too).
- "not_found": an undocumented code named for absence, ERROR_NOT_FOUND, "User <id> not found".
- "soap_fault": a SOAP Fault at HTTP 500, "javax.persistence.EntityNotFoundException: Unable to find
  com.verba.model.User with id <id>" (the most hostile: an HTTP 5xx speaks of Verba failing as a whole).
Nor whether login names are unique regardless of case. Users whose login names differ only in case can always be
held (seeded, POST /_sim/users); the `case_duplicate_login` setting (POST /_sim/behaviour) says how createUser
answers a login name another user of the environment has but for case, one of CASE_DUPLICATE_LOGIN_SHAPES:
- "created" (the default): a second user is created.
- "already_exists": ERROR_ALREADY_EXISTS, "This user already exists in the database: <eid>:<loginName asked for>".
Guessed (the vendor's page was not found): listExtensions' filter and answer, after
listUsers' (see list_extensions). applyExtensionConfiguration pushes the extension table to the
recording servers (the seed's "recorders", one "recorder-1" by default); where its answer puts the
per-server statuses, and their fields, are guessed (see apply_extension_configuration).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from lxml import etree

from connector.simulator import soap
from connector.simulator.soap import Call, children, element, text
from connector.simulator.state import Environment, Extension, MissingAnswer, State, User

OK = "OK"
GENERAL = "ERROR_GENERAL"
ILLEGAL = "ERROR_ILLEGAL_ARGUMENT"
UNAUTHORIZED = "ERROR_UNAUTHORIZED"
ALREADY_EXISTS = "ERROR_ALREADY_EXISTS"

RECORDING_MODES = ("FULL", "ON_DEMAND", "CONTROLLED")
FLAGS = (("voice", "voice"), ("im", "im"), ("video", "video"), ("screenCaptureEnabled", "screen_capture_enabled"))
TOKEN_MESSAGE = "This token is expired or never got authenticated."
USER_NOT_FOUND = "com.verba.web.user.UserNotFoundException"
FLAT_STATUS = frozenset({"createExtension", "updateExtension", "releaseToken"})  # return/statusCode
# JAX-WS writes <extension> (getExtension) and <extensionCount>/<extensions> (listExtensions) before <status>
PAYLOAD_FIRST = frozenset({"getExtension", "listExtensions"})
# How a missing extension is answered (see the module docstring); the first is the default.
MISSING_EXTENSION_SHAPES = ("ok_empty", "error_general", "error_illegal_argument")
# How listUsers without a text criterion is answered (see the module docstring); the first is the default.
UNFILTERED_LIST_USERS_SHAPES = ("all", "capped", "refused")
LIST_CAP = 100  # users a "capped" answer holds
# How an extension write naming an unknown user id is answered, and how createUser answers a login name another
# user has but for case (see the module docstring); the first of each is the default.
UNKNOWN_USER_SHAPES = ("error_illegal_argument", "error_general", "not_found", "soap_fault")
CASE_DUPLICATE_LOGIN_SHAPES = ("created", "already_exists")
BEHAVIOURS = {"missing_extension": MISSING_EXTENSION_SHAPES, "unfiltered_list_users": UNFILTERED_LIST_USERS_SHAPES,
              "unknown_user": UNKNOWN_USER_SHAPES, "case_duplicate_login": CASE_DUPLICATE_LOGIN_SHAPES}


class Refusal(Exception):
    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ServerFault(Exception):
    """Answered as a SOAP Fault (faultcode Server, this faultstring) at HTTP 500, as JAX-WS answers an exception
    the service lets out."""


def status_inner(operation: str, code: str, message: str | None = None) -> str:
    """`<return>` content holding only a status, in the operation's shape."""
    status = soap.status(code, message)
    return status if operation in FLAT_STATUS else f"<status>{status}</status>"


@functools.cache
def ok_response(operation: str) -> bytes:
    return soap.response(operation, status_inner(operation, OK))


# authentication


def request_token(state: State, call: Call) -> str:
    eid = text(call.fields, "eid")
    if not eid:
        raise Refusal(ILLEGAL, "eid is mandatory")
    login_name = text(call.fields, "loginName")
    password = text(call.fields, "password")
    if state.environment(eid=eid) is None or state.api_users.get(login_name or "") != password:
        raise Refusal(GENERAL, USER_NOT_FOUND)
    return element("token", state.issue_token())


def release_token(state: State, call: Call) -> str:
    token = authorize(state, call)
    state.release_token(token)
    return ""


def authorize(state: State, call: Call) -> str:
    token = text(call.fields, "token")
    if not state.token_valid(token):
        raise Refusal(UNAUTHORIZED, TOKEN_MESSAGE)
    return token or ""


# extensions


def create_extension(state: State, call: Call) -> str:
    authorize(state, call)
    env, number, fields = extension_input(state, call)
    if (env.eid, number) in state.extensions:
        raise Refusal(ALREADY_EXISTS, f"This extension already exists in the database: {env.eid}:{number}")
    state.put_extension(env.eid, number, **fields)
    return ""


def update_extension(state: State, call: Call) -> str:
    authorize(state, call)
    env, number, fields = extension_input(state, call)
    if (env.eid, number) not in state.extensions:
        refuse_missing(state, "updateExtension", env.eid, number)
    state.put_extension(env.eid, number, **fields)
    return ""


def get_extension(state: State, call: Call) -> str:
    authorize(state, call)
    environment_filter = call.fields.get("environmentFilter")
    if environment_filter is None:
        raise Refusal(ILLEGAL, "environmentFilter is mandatory")
    env = filtered_environment(state, children(environment_filter))
    number = text(call.fields, "extension")
    if not number:
        raise Refusal(ILLEGAL, "extension is mandatory and cannot be empty")
    found = state.extensions.get((env.eid, number))
    if found is None:
        refuse_missing(state, "getExtension", env.eid, number)
        return ""
    return extension_xml(state, found)


def refuse_missing(state: State, operation: str, eid: str, number: str) -> None:
    """Answer a missing extension in the state's `missing_extension` shape; returns only for an empty OK."""
    shape = state.missing_extension
    if isinstance(shape, MissingAnswer):
        raise Refusal(shape.status, shape.message_for(eid, number))
    if shape == "error_general":
        raise Refusal(GENERAL, f"Extension not found: {eid}:{number}")
    if shape == "error_illegal_argument":
        raise Refusal(ILLEGAL, f"Extension {number} does not exist in environment {eid}")
    if operation == "updateExtension":  # "ok_empty": an update still cannot succeed
        raise Refusal(GENERAL, f"The extension does not exist in the database: {eid}:{number}")


def extension_input(state: State, call: Call) -> tuple[Environment, str, dict[str, object]]:
    """The validated Extension of a create/update call: environment, number and the stored fields."""
    wrapper = call.fields.get("extension")
    if wrapper is None:
        raise Refusal(ILLEGAL, "extension is mandatory")
    fields = children(wrapper)
    env = environment(state, text(fields, "eid"), text(fields, "environmentShortName"))
    number = text(fields, "extension")
    if not number:
        raise Refusal(ILLEGAL, "extension.extension is mandatory and cannot be empty")
    mode = text(fields, "recordingMode")
    if mode is not None and mode not in RECORDING_MODES:
        raise Refusal(ILLEGAL, f"Unknown recordingMode: {mode!r}; use one of {', '.join(RECORDING_MODES)}")
    stored: dict[str, object] = {"recording_mode": mode, "user_id": linked_user_id(state, fields.get("user"), number)}
    for wire, name in FLAGS:
        stored[name] = flag(fields, wire)
    return env, number, stored


def linked_user_id(state: State, user: etree._Element | None, extension: str) -> int | None:
    """The user id to link to `extension`; None (unlink) when <user> or its id is missing. An id no user has is
    answered in the state's `unknown_user` shape."""
    raw = text(children(user), "id")
    if raw is None or not raw.strip():
        return None
    try:
        user_id = int(raw.strip())
    except ValueError:
        raise Refusal(ILLEGAL, f"user.id must be an integer, got {raw!r}") from None
    if user_id not in state.users:
        refuse_unknown_user(state, user_id, extension)
    return user_id


def refuse_unknown_user(state: State, user_id: int, extension: str) -> None:
    """Answer an extension write naming a user id no user has, in the state's `unknown_user` shape."""
    shape = state.unknown_user
    if shape == "soap_fault":
        raise ServerFault(f"javax.persistence.EntityNotFoundException: Unable to find com.verba.model.User with id "
                          f"{user_id}")
    if shape == "error_general":
        raise Refusal(GENERAL, f"Could not save extension {extension}: user {user_id} does not exist")
    if shape == "not_found":
        raise Refusal("ERROR_NOT_FOUND", f"User {user_id} not found")
    raise Refusal(ILLEGAL, f"No user with id {user_id}")


def flag(fields: dict[str, etree._Element], name: str) -> bool | None:
    try:
        return soap.boolean(text(fields, name))
    except ValueError:
        raise Refusal(ILLEGAL, f"{name} must be a boolean (true, false, 1 or 0), got {text(fields, name)!r}") from None


def extension_xml(state: State, ext: Extension, tag: str = "extension", *, with_user: bool = True) -> str:
    """The extension as getExtension answers it: with its full user, unless `with_user` is False."""
    env = state.environment(eid=ext.eid)
    user = state.users.get(ext.user_id) if with_user and ext.user_id is not None else None
    return (
        f"<{tag}>"
        + element("eid", ext.eid)
        + element("environmentShortName", env.short_name if env else None)
        + element("extension", ext.extension)
        + element("id", ext.id)
        + element("im", ext.im)
        + element("recordingMode", ext.recording_mode)
        + element("screenCaptureEnabled", ext.screen_capture_enabled)
        + ("" if user is None else user_xml(state, user, "user"))
        + element("video", ext.video)
        + element("voice", ext.voice)
        + f"</{tag}>"
    )


def list_extensions(state: State, call: Call) -> str:
    """listExtensions: its filter is guessed (the vendor's page was not found), after listUsers'.

    filter{environmentFilter?, extension?, extensionExact?, userId?, justCount?}: no environment
    filter means every environment; `extension` matches as listUsers' criteria do (exact, or
    case-insensitive "contains"); `userId` keeps the extensions linked to that user. Answers
    <extensionCount> when justCount, else one <extensions> per extension, each as getExtension's.
    """
    fields, eids = list_filter(state, call)
    try:
        number = matcher(fields, "extension")
        just_count = soap.boolean(text(fields, "justCount"))
    except ValueError as exc:
        raise Refusal(ILLEGAL, f"Not a boolean: {exc}") from None
    raw_user_id = text(fields, "userId")
    user_id = None
    if raw_user_id is not None:
        try:
            user_id = int(raw_user_id.strip())
        except ValueError:
            raise Refusal(ILLEGAL, f"userId must be an integer, got {raw_user_id!r}") from None
    found = [
        ext
        for ext in state.extensions.values()
        if ext.eid in eids and number(ext.extension) and (user_id is None or ext.user_id == user_id)
    ]
    if just_count:
        return element("extensionCount", len(found))
    return "".join(extension_xml(state, ext, "extensions") for ext in found)


# recorders


def apply_extension_configuration(state: State, call: Call) -> str:
    """applyExtensionConfiguration: each recorder (those `theseServersOnly` names, else all) takes the extension
    table, unless it already has it (forceEvenIfNotRegistered false, the default) or fails (set with PUT
    /_sim/recorders/{location}). Answers one <statuses> per recorder tried that failed, and per one that took
    it when returnSuccessfulStatuses; each as the WSDL guesses: eid, location, status."""
    authorize(state, call)
    try:
        successful = soap.boolean(text(call.fields, "returnSuccessfulStatuses"))
        force = soap.boolean(text(call.fields, "forceEvenIfNotRegistered"))
    except ValueError as exc:
        raise Refusal(ILLEGAL, f"Not a boolean: {exc}") from None
    first = call.fields.get("theseServersOnly")  # call.fields keeps the first of each name: the rest follow it
    servers = [] if first is None else [first, *first.itersiblings(first.tag)]
    named = {text(children(server), "location") for server in servers}
    answers = []
    for recorder in state.recorders.values():
        if (named and recorder.location not in named) or (not force and recorder.applied == state.changes):
            continue
        if recorder.failure is None:
            recorder.applied = state.changes
        if recorder.failure is not None or successful:
            code, message = recorder.failure or (OK, None)
            answers.append("<statuses>" + element("eid", recorder.eid) + element("location", recorder.location)
                           + f"<status>{soap.status(code, message)}</status></statuses>")
    return "".join(answers)


# environments


def environment(state: State, eid: str | None, short_name: str | None) -> Environment:
    """The environment named by exactly one of eid / environmentShortName."""
    if (eid is None) == (short_name is None):
        raise Refusal(ILLEGAL, "Give exactly one of eid or environmentShortName")
    if eid is not None and len(eid) != 4:
        raise Refusal(ILLEGAL, f"eid must be exactly 4 characters, got {eid!r}")
    env = state.environment(eid=eid, short_name=short_name)
    if env is None:
        raise Refusal(ILLEGAL, f"Unknown environment: {eid or short_name!r}")
    return env


def list_filter(state: State, call: Call) -> tuple[dict[str, etree._Element], set[str]]:
    """An authorized list call's filter fields, and the eids its environmentFilter names (all when it has none)."""
    authorize(state, call)
    fields = children(call.fields.get("filter"))
    envs = state.environments
    if "environmentFilter" in fields:
        envs = [filtered_environment(state, children(fields["environmentFilter"]))]
    return fields, {env.eid for env in envs}


def filtered_environment(state: State, fields: dict[str, etree._Element]) -> Environment:
    return environment(state, text(fields, "eid"), text(fields, "shortName"))


# users


def list_users(state: State, call: Call) -> str:
    fields, eids = list_filter(state, call)
    try:
        login = matcher(fields, "loginName")
        external = matcher(fields, "externalId")
        extension = matcher(fields, "extension")
        just_count = soap.boolean(text(fields, "justCount"))
        skip_extensions = soap.boolean(text(fields, "skipExtensions"))
    except ValueError as exc:
        raise Refusal(ILLEGAL, f"Not a boolean: {exc}") from None
    unfiltered = login.unset and external.unset and extension.unset
    if unfiltered and state.unfiltered_list_users == "refused":
        raise Refusal(ILLEGAL, "A filter criterion is required")
    # An exact loginName looks its users up by name (in the order added, as the full scan finds them).
    exact = login.wanted if login.exact else None
    candidates = state.users.values() if exact is None else state.users_by_login.get(exact, [])
    users = [user for user in candidates
             if user.eid in eids and login(user.login_name) and external(user.external_id)]
    if unfiltered and state.unfiltered_list_users == "capped":
        users = users[:LIST_CAP]
    # The extensions of the users found so far only: one pass, however many users Verba has; none when
    # the answer needs no extensions (skipExtensions, no extension criterion).
    ids = {user.id for user in users}
    owned: dict[int, list[Extension]] = {}
    if ids and (not extension.unset or not (just_count or skip_extensions)):
        for ext in state.extensions.values():
            if ext.user_id in ids:
                owned.setdefault(ext.user_id, []).append(ext)
    if not extension.unset:
        users = [user for user in users if any(extension(ext.extension) for ext in owned.get(user.id, []))]
    if just_count:
        return element("userCount", len(users))
    # Each user's extensions unless skipExtensions is true (the flag exists, so the default lists them).
    return "".join(
        user_xml(state, user, "users", extensions=None if skip_extensions else owned.get(user.id, []))
        for user in users
    )


class Matcher:
    """A listUsers text criterion: exact, or case-insensitive 'contains'."""

    def __init__(self, wanted: str | None, exact: bool | None) -> None:
        self.unset = wanted is None
        self.wanted = wanted if exact or wanted is None else wanted.lower()
        self.exact = bool(exact)

    def __call__(self, value: str | None) -> bool:
        if self.wanted is None:
            return True
        if value is None:
            return False
        return value == self.wanted if self.exact else self.wanted in value.lower()


def matcher(fields: dict[str, etree._Element], name: str) -> Matcher:
    """The criterion `name`; an empty one (`<loginName></loginName>`) is unset, the most hostile reading: the
    vendor says to leave unused tags out, and does not say what an empty one means."""
    return Matcher(text(fields, name) or None, soap.boolean(text(fields, f"{name}Exact")))


def create_user(state: State, call: Call) -> str:
    authorize(state, call)
    wrapper = call.fields.get("user")
    if wrapper is None:
        raise Refusal(ILLEGAL, "user is mandatory")
    fields = children(wrapper)
    env = environment(state, text(fields, "eid"), text(fields, "environmentShortName"))
    login_name = text(fields, "loginName")
    if not login_name:
        raise Refusal(ILLEGAL, "user.loginName is mandatory and cannot be empty")
    flag(fields, "apiAccessOnly")
    if state.user_by_login(login_name, env.eid) is not None or (
            state.case_duplicate_login == "already_exists" and state.user_in_other_case(login_name, env.eid)):
        raise Refusal(ALREADY_EXISTS, f"This user already exists in the database: {env.eid}:{login_name}")
    user = state.add_user(
        {
            "loginName": login_name,
            "eid": env.eid,
            "displayName": text(fields, "displayName"),
            "email": text(fields, "email"),
            "externalId": text(fields, "externalId"),
        }
    )
    return user_xml(state, user, "user")


def user_xml(state: State, user: User, tag: str, *, extensions: list[Extension] | None = None) -> str:
    """The user; with `extensions`, each as an <extensions> shaped like getExtension's, without its user."""
    env = state.environment(eid=user.eid)
    return (
        f"<{tag}>"
        + element("displayName", user.display_name)
        + element("eid", user.eid)
        + element("email", user.email)
        + element("environmentShortName", env.short_name if env else None)
        + "".join(extension_xml(state, ext, "extensions", with_user=False) for ext in extensions or ())
        + element("externalId", user.external_id)
        + element("id", user.id)
        + element("loginName", user.login_name)
        + f"</{tag}>"
    )


Handler = Callable[[State, Call], str]

OPERATIONS: dict[str, Handler] = {
    "requestToken": request_token,
    "releaseToken": release_token,
    "createExtension": create_extension,
    "updateExtension": update_extension,
    "getExtension": get_extension,
    "listUsers": list_users,
    "listExtensions": list_extensions,
    "createUser": create_user,
    "applyExtensionConfiguration": apply_extension_configuration,
}


def handle(state: State, call: Call) -> tuple[str, bytes, int]:
    """Run one known operation under the state lock: its status code (HTTP_500 for a SOAP Fault), the response body
    and its HTTP status."""
    operation = call.operation
    try:
        with state.lock:
            payload = OPERATIONS[operation](state, call)
    except Refusal as refusal:
        return refusal.code, soap.response(operation, status_inner(operation, refusal.code, refusal.message)), 200
    except ServerFault as fault:
        return "HTTP_500", soap.fault("Server", str(fault)), 500
    if not payload:
        return OK, ok_response(operation), 200
    status = status_inner(operation, OK)
    return OK, soap.response(operation, payload + status if operation in PAYLOAD_FIRST else status + payload), 200
