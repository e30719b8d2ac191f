"""ldap3 plumbing: connect and bind, paged searches that must complete, range retrieval, the rootDSE."""

from __future__ import annotations

import ast
import contextlib
import re
import ssl
from collections.abc import Iterator, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPStartTLSError

from connector.config import LdapConfig
from connector.errors import ConnectorError
from connector.ops.logs import register_secret
from connector.passwords import RefusedPassword

PAGED_RESULTS = "1.2.840.113556.1.4.319"  # RFC 2696
SHOW_DELETED = "1.2.840.113556.1.4.417"  # AD: tombstones are returned too
REFERRAL, NO_SUCH_OBJECT, INVALID_DN_SYNTAX, INVALID_CREDENTIALS, INSUFFICIENT_ACCESS_RIGHTS = 10, 32, 34, 49, 50
_RANGE = re.compile(r"^(?P<name>[^;]+);range=(?P<start>\d+)-(?P<end>\d+|\*)$", re.IGNORECASE)

Control = tuple[str, bool, Any]


class DirectoryError(ConnectorError):
    """The directory could not be read; the watcher retries with backoff and skips nothing."""

    def __init__(self, message: str | None = None, code: int | None = None, base: str | None = None,
                 matched: str | None = None) -> None:
        super().__init__(message)
        self.code = code  # the LDAP resultCode, when the server answered
        self.base = base  # the base of the search that ended with `code`
        self.matched = matched  # of a noSuchObject: the closest entry above `base` that exists, if the server said


TIME_LIMIT, SIZE_LIMIT, ADMIN_LIMIT = 3, 4, 11  # timeLimitExceeded, sizeLimitExceeded, adminLimitExceeded
LIMITS = (TIME_LIMIT, SIZE_LIMIT, ADMIN_LIMIT)


_BIND_ADVICE = {
    7: "the server does not accept simple binds here; use ldaps:// or starttls = true",
    8: "the server demands a protected connection for simple binds (Active Directory does); "
       "use ldaps://host:636 or starttls = true",
    13: "the server demands TLS for this bind; use ldaps:// or starttls = true",
    32: "the bind DN does not exist; check bind_dn",
    49: "the bind DN or password is wrong, or the account is locked or expired; check bind_dn and the password",
    53: "the server refused the bind (account disabled or password expired?); check the service account",
}
# Active Directory's reason for an invalidCredentials bind, the "data 775" of its message.
_AD_BIND_DATA = {
    "525": "Active Directory knows no account by bind_dn (data 525); check bind_dn",
    "52e": "Active Directory refused the password (data 52e); check the password",
    "530": "the account may not log on at this time of day (data 530); widen its logon hours",
    "531": "the account may not log on from this computer (data 531); allow it in the account's logon workstations",
    "532": "the account's password has expired (data 532); set a new one on the account",
    "533": "the account is disabled (data 533); enable it",
    "701": "the account has expired (data 701); extend its expiry date",
    "773": "the account must change its password at next logon (data 773); set a new one and clear that flag",
    "775": "the account is locked out (data 775) after too many wrong passwords; have it unlocked once the "
           "password is right",
}
_AD_DATA = re.compile(r"\bdata ([0-9a-f]{3,4})\b", re.IGNORECASE)
# What each server refused last, by (url, bind_dn): a refused password is not sent again (RefusedPassword).
_REFUSED: dict[tuple[str, str | None], RefusedPassword] = {}


def open_connection(config: LdapConfig) -> ldap3.Connection:
    """A bound, read-only connection that does not chase referrals; raise DirectoryError saying what to fix.

    The bind password is read again from its source first (`LdapConfig.read_password`), so that a rotated password
    is used without a restart. A password the server refused (invalidCredentials) is not sent again for
    REFUSED_PASSWORD_SECONDS unless it changes (or `forget_refused_passwords`): the bind is not attempted, and
    the DirectoryError says why and what to do.
    """
    where = f"directory {config.name} ({config.url})"
    password = _bind_password(config, where)
    # The password goes as UTF-8 bytes: ldap3 would run SASLprep on a str (RFC 4013), which turns U+00A0 into a
    # space and U+2168 into "IX", so that a correct password fails. The server gets exactly what was configured.
    conn = ldap3.Connection(
        _server(config), user=config.bind_dn,
        password=None if password is None else password.encode("utf-8"),  # type: ignore[arg-type]  # str only
        read_only=True, raise_exceptions=False,
        auto_referrals=False, receive_timeout=int(config.timeout_seconds), check_names=False,
        return_empty_attributes=False, auto_range=False,  # ldap3's own range retrieval fails on a missing key
    )
    try:
        conn.open()
        if config.starttls and not conn.start_tls():
            raise DirectoryError(f"{where}: StartTLS failed ({conn.result.get('description')}); check that the "
                                 "server offers it, or use ldaps://")
        if not conn.bind():
            raise DirectoryError(f"{where}: {_bind_failure(config, conn.result, password)}")
    except BaseException as exc:  # whatever failed, the socket is closed: a failed open or bind leaves it open
        close(conn)
        if isinstance(exc, LDAPException):
            raise DirectoryError(f"{where}: {_connect_failure(config, exc)}") from None
        raise
    if password is not None:
        refused_password(config).forget()
    return conn


def refused_password(config: LdapConfig) -> RefusedPassword:
    """What the server of `config` refused last for its bind_dn (shared by every connection of this process)."""
    return _REFUSED.setdefault((config.url, config.bind_dn), RefusedPassword())


def forget_refused_passwords() -> list[tuple[str, str | None]]:
    """Send every refused bind password again at the next bind (the account was fixed on the server's side); the
    (url, bind_dn) of those withheld until now."""
    return [key for key, refused in list(_REFUSED.items()) if refused.forget()]


def _bind_password(config: LdapConfig, where: str) -> str | None:
    """The password to bind with, read again from its source (and masked in the logs from now on); None for an
    anonymous bind. DirectoryError when it cannot be read, or when the server refused it and it has not changed
    since (nothing is sent then)."""
    try:
        password = config.read_password()
    except ValueError as exc:
        raise DirectoryError(f"{where}: the bind password cannot be read again: {exc}; nothing was sent") from None
    if password is None:
        return None
    if password != config.password:
        register_secret(password)
    withheld = refused_password(config).withheld(password)
    if withheld is not None:
        raise DirectoryError(f"{where}: bind as {config.bind_dn} not attempted: the password from "
                             f"{config.password_source or 'the config'} was {withheld}, so that the account is not "
                             f"locked out: {_password_fix(config)}")
    return password


def _bind_failure(config: LdapConfig, result: dict[str, Any], password: str | None) -> str:
    """Why the bind failed and what to fix, from ldap3's `result`; a refused password is remembered
    (`refused_password`), and the message says it is not sent again."""
    code: int = result.get("result", -1)
    advice = _BIND_ADVICE.get(code, "check bind_dn, the password and the server's log")
    data = _AD_DATA.search(result.get("message") or "") if code == INVALID_CREDENTIALS else None
    advice = _AD_BIND_DATA.get(data[1].lower(), advice) if data else advice
    text = (f"bind as {config.bind_dn or 'anonymous'} failed ({result.get('description')}): {advice}"
            f"{describe_password(config, password)}")
    if code != INVALID_CREDENTIALS or password is None:
        return text
    return f"{text}; {refused_password(config).refuse(password)}, so that the account is not locked out: " + (
        _password_fix(config))


def _password_fix(config: LdapConfig) -> str:
    """What to do about a refused bind password, by where it comes from."""
    if config.password_file is not None:
        return (f"put the right password in {config.password_file} (read again before each bind), or reload the "
                "connector (SIGHUP: systemctl reload) once the account is fixed")
    if config.password_env is not None:
        return f"set the right password in {config.password_env} and restart the connector"
    return "fix the password"


class _Tls(ldap3.Tls):
    """ldap3's Tls, with the server's name checked by the ssl module (OpenSSL) in the handshake.

    ldap3 2.9 turns the context's check_hostname off and matches the name after the handshake with
    ssl.match_hostname, which Python 3.12 removed; its own fallback ignores IP addresses in subjectAltName, so
    that ldaps://10.0.0.5 would fail with a right certificate. A name the certificate does not carry now fails
    the handshake as CERTIFICATE_VERIFY_FAILED ("Hostname mismatch" or "IP address mismatch"). As with ldap3,
    a certificate with no DNS name in subjectAltName may name the host in its subject's CN.
    """

    def __init__(self, config: LdapConfig, *, check_hostname: bool = True) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED if config.tls_verify else ssl.CERT_NONE,
                         ca_certs_file=config.ca_file)
        self.check_hostname = check_hostname and config.tls_verify

    def wrap_socket(self, connection: ldap3.Connection, do_handshake: bool = False) -> None:
        context = ssl.create_default_context(cafile=self.ca_certs_file)
        context.check_hostname = self.check_hostname
        context.hostname_checks_common_name = True
        context.verify_mode = self.validate
        connection.socket = context.wrap_socket(connection.socket, server_hostname=connection.server.host,
                                                do_handshake_on_connect=do_handshake)


def _server(config: LdapConfig, *, check_hostname: bool = True) -> ldap3.Server:
    """The ldap3 Server of `config.url`, its TLS checked as `config` says (and its name unless `check_hostname`)."""
    return ldap3.Server(config.url.rstrip("/"), tls=_Tls(config, check_hostname=check_hostname),
                        get_info=ldap3.NONE, connect_timeout=config.timeout_seconds)


def describe_password(config: LdapConfig, password: str | None) -> str:
    """What was sent as `password`, in terms an admin can check against the secret, never the secret itself."""
    if password is None:
        return ""
    notes = []
    if password != password.strip():
        ends = [side for side, stripped in (("starts", password.lstrip()), ("ends", password.rstrip()))
                if stripped != password]
        notes.append(f"it {' and '.join(ends)} with white space, which is sent too")
    if password.startswith("\ufeff"):
        notes.append("it starts with a byte-order mark (U+FEFF), which is sent too; save the file without it")
    if not password.isascii():
        notes.append("it has non-ASCII characters, sent as UTF-8 without normalization")
    return (f"; the password sent has {len(password)} characters ({len(password.encode('utf-8'))} bytes as UTF-8), "
            f"from {config.password_source or 'the config'}" + "".join(f"; {note}" for note in notes))


def close(conn: ldap3.Connection) -> None:
    """Unbind if the connection still works; a broken socket (a failed TLS handshake, an outage) is just dropped."""
    try:
        conn.unbind()
    except LDAPException:
        pass
    finally:  # a socket whose connect failed is left open by ldap3 (ResourceWarning when collected)
        if conn.socket is not None:
            with contextlib.suppress(OSError):
                conn.socket.close()


_VERIFY_FAILED = re.compile(r"certificate verify failed: ([^(]+)")


def _connect_failure(config: LdapConfig, exc: LDAPException) -> str:
    """What went wrong opening the connection, and what to change."""
    text = ldap3_message(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        found = _VERIFY_FAILED.search(text)
        reason = found[1].strip().replace("\\'", "'") if found else "verify failed"  # ldap3 shows a repr
        return _verify_failure(config, reason)
    if isinstance(exc, LDAPStartTLSError):
        return f"StartTLS failed ({text}); check that the server offers it, or use ldaps://"
    parts = urlsplit(config.url)
    if parts.scheme == "ldaps" and _TLS_HANDSHAKE in text and any(sign in text for sign in _PLAIN_ANSWER):
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        return (f"cannot connect: the TLS handshake failed ({text}); port {parts.port or 636} likely speaks plain "
                f"LDAP, not LDAPS: use ldap://{host}:{parts.port or 389} with starttls = true, or the LDAPS port, "
                f"ldaps://{host}:636")
    if parts.scheme == "ldap" and text == _SERVER_CLOSED:
        return (f"cannot connect ({text}); if port {parts.port or 389} speaks LDAPS (TLS from the first byte, "
                f"usually 636), use ldaps://{parts.netloc}; else check that the server is up")
    return (f"cannot connect ({text}); check the url, that the server is up and reachable from here, "
            "and its certificate (ca_file, tls_verify)")


_TLS_HANDSHAKE = "socket ssl wrapping error"  # ldap3's words for a failed TLS handshake
# How OpenSSL reports a handshake that a server speaking plain LDAP answered (it hangs up, or answers in LDAP).
_PLAIN_ANSWER = ("EOF", "WRONG_VERSION_NUMBER", "reset by peer", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")
_SERVER_CLOSED = "the server closed the connection"
_LDAP3_WORDS = {"session terminated by server": _SERVER_CLOSED}


def ldap3_message(exc: LDAPException) -> str:
    """ldap3's message of `exc` in plain words, without the tuple reprs it may wrap it in: "socket ssl wrapping
    error: [SSL: UNEXPECTED_EOF_WHILE_READING] ...", not "(("('socket ssl wrapping error: ...',)",))"; "the server
    closed the connection" for its "session terminated by server"."""
    text: object = exc.args[0] if len(exc.args) == 1 else str(exc)
    for _ in range(4):  # each level of wrapping: a one-item tuple, or the repr of one
        if isinstance(text, tuple) and len(text) == 1:
            text = text[0]
        elif isinstance(text, str) and text.startswith("(") and text.endswith(",)"):
            try:
                text = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                break
        else:
            break
    return _LDAP3_WORDS.get(str(text), str(text))


# OpenSSL's reasons (X509_verify_cert_error_string) for a certificate no CA in reach vouches for.
_UNTRUSTED = ("unable to get local issuer certificate", "unable to get issuer certificate",
              "unable to verify the first certificate", "self-signed certificate in certificate chain",
              "certificate signature failure")
# Other reasons: what is wrong with the certificate, and the fix ({dates} and {show}: commands that print it).
_CERTIFICATE_FIXES = {
    "certificate has expired": (
        "has expired", "renew the server's certificate (see its dates with {dates}); if they are still current, "
        "this machine's clock is wrong: set it right (timedatectl)"),
    "certificate is not yet valid": (
        "is not valid yet", "the clocks disagree: check this machine's clock (timedatectl) against the "
        "certificate's notBefore ({dates}); if this clock is right, the CA's was ahead: reissue the certificate"),
    "unsupported certificate purpose": (
        "is not for TLS servers", "have it reissued with serverAuth in its extendedKeyUsage (see {show})"),
    "ee certificate key too weak": (
        "has too weak a key", "have it reissued with an RSA key of 2048 bits or more, or an EC key"),
    "ca signature digest algorithm too weak": (
        "is signed with too weak a digest (MD5 or SHA-1)", "have it reissued signed with SHA-256"),
}


def _verify_failure(config: LdapConfig, reason: str) -> str:
    """What OpenSSL's `reason` ("certificate has expired", "Hostname mismatch, ...") for refusing the server's
    certificate means, and the fix."""
    known = reason.lower().replace("self signed", "self-signed")  # OpenSSL 1.1 spells it without the hyphen
    ca_file = config.ca_file
    if "mismatch" in known:
        return _name_mismatch(config, reason)
    if known in _UNTRUSTED and ca_file:
        return (f"the server's TLS certificate is not signed by the CA in ca_file {ca_file} ({reason}); set "
                "ca_file to the PEM file of the CA that issued the server's certificate (with any intermediate "
                "CA certificates the server does not send appended)")
    if known in _UNTRUSTED:
        return (f"the server's TLS certificate is not trusted by this machine's CA store ({reason}); set ca_file to "
                "the PEM file of the CA that issued it, or set tls_verify = false explicitly to skip the check")
    if known == "self-signed certificate":
        held = f", and ca_file {ca_file} does not hold it" if ca_file else ""
        return (f"the server's TLS certificate is self-signed ({reason}): no CA vouches for it{held}; give the "
                "server a certificate issued by your CA and set ca_file to that CA's PEM file, or set ca_file to "
                f"a copy of this very certificate: `{_s_client(config)} | openssl x509 > server.pem`")
    what, fix = _CERTIFICATE_FIXES.get(known, ("was refused", "inspect it with {show}"))
    return f"the server's TLS certificate {what} ({reason}); " + fix.format(
        dates=f"`{_s_client(config)} | openssl x509 -noout -dates`",
        show=f"`{_s_client(config)} | openssl x509 -noout -text`")


def _name_mismatch(config: LdapConfig, reason: str) -> str:
    host = urlsplit(config.url).hostname
    names = _certificate_names(config)
    carried = (f"it names {', '.join(names)}" if names else "see the names it carries with "
               f"`{_s_client(config)} | openssl x509 -noout -subject -ext subjectAltName`")
    return (f"the server's TLS certificate is not issued for {host} ({reason}); {carried}: use one of those in url, "
            f"or have the certificate reissued with {host} in its subjectAltName")


def _certificate_names(config: LdapConfig) -> list[str]:
    """The names in the server's certificate ("DNS:dc1.corp.example", "IP:10.0.0.5", and its subject's
    "CN:..." when no DNS name is there), read over a second connection that checks all but the name; [] when
    that fails too."""
    conn = ldap3.Connection(_server(config, check_hostname=False), receive_timeout=int(config.timeout_seconds))
    try:
        conn.open()
        if config.starttls and not conn.start_tls():  # refused this time: no certificate to read
            return []
        certificate = conn.socket.getpeercert() or {}
    except (LDAPException, OSError):
        return []
    finally:
        close(conn)
    names = [("IP" if kind == "IP Address" else kind, value) for kind, value in certificate.get("subjectAltName", ())]
    if not any(kind == "DNS" for kind, _ in names):  # then a host name is matched against the CN
        names += [("CN", value) for rdn in certificate.get("subject", ()) for kind, value in rdn
                  if kind == "commonName"]
    return [f"{kind}:{value}" for kind, value in names]


def _s_client(config: LdapConfig) -> str:
    """The openssl command that prints the certificate the server in `config.url` presents."""
    parts = urlsplit(config.url)
    address = parts.netloc if parts.port else f"{parts.netloc}:{636 if parts.scheme == 'ldaps' else 389}"
    return f"openssl s_client -connect {address}{' -starttls ldap' if config.starttls else ''} </dev/null"


def search(
    conn: ldap3.Connection,
    base: str,
    search_filter: str,
    attributes: Sequence[str],
    page_size: int | None,
    controls: Sequence[Control] = (),
    scope: Literal["BASE", "LEVEL", "SUBTREE"] = ldap3.SUBTREE,
    what: str | None = None,
) -> Iterator[tuple[str, dict[str, Any], dict[str, list[bytes]]]]:
    """Yield (dn, attributes, raw attributes) of every entry, page by page.

    Raises DirectoryError unless every page ended with resultCode 0: a truncated
    enumeration (size or time limit, missing base, no access) must never look complete; the error of a limit
    names it and what to change (`limit_advice`).
    Referrals are skipped. Attributes the server cut into ranges are fetched whole.
    `what` names the search in those errors ("reading the rootDSE"); by default its base and filter.
    """
    what = what or f"search under {base!r} with {search_filter}"
    cookie: bytes | None = None
    read = 0
    while True:
        try:
            conn.search(base, search_filter, scope, attributes=list(attributes), paged_size=page_size,
                        paged_cookie=cookie, controls=list(controls) or None)
        except LDAPException as exc:
            raise DirectoryError(f"{what} failed ({ldap3_message(exc)})") from None
        result = conn.result
        entries = [item for item in conn.response or () if item.get("type") == "searchResEntry"]
        read += len(entries)
        code, message = result["result"], result.get("message") or ""
        if code in LIMITS:
            advice = limit_advice(conn, code, message, read, page_size)
            raise DirectoryError(f"{what} ended with {result['description']} ({code}{': ' if message else ''}"
                                 f"{message}){f' after {read} entries' if read else ''}: {advice}", code=code,
                                 base=base)
        if code != 0:
            raise DirectoryError(f"{what} ended with {result['description']} "
                                 f"({code}: {message or 'no message'}); check the base, the filter and the bind "
                                 "account's read rights", code=code, base=base, matched=result.get("dn") or None)
        for item in entries:
            values = dict(item["attributes"])
            if any(";" in name for name in values):
                values = _complete_ranges(conn, item["dn"], values)
            yield item["dn"], values, item["raw_attributes"]
        cookie = result.get("controls", {}).get(PAGED_RESULTS, {}).get("value", {}).get("cookie")
        if not cookie:
            return


def sample(conn: ldap3.Connection, base: str, search_filter: str, attributes: Sequence[str],
           limit: int) -> list[tuple[str, dict[str, Any], dict[str, list[bytes]]]]:
    """(dn, attributes, raw attributes) of at most `limit` of the entries that match, whichever the server
    returns first: a size limit (`limit`, or the bind account's) is no error here. DirectoryError on any other."""
    try:
        conn.search(base, search_filter, ldap3.SUBTREE, attributes=list(attributes), size_limit=limit)
    except LDAPException as exc:
        raise DirectoryError(f"search under {base!r} with {search_filter} failed ({ldap3_message(exc)})") from None
    if conn.result["result"] not in (0, SIZE_LIMIT):
        raise DirectoryError(f"search under {base!r} with {search_filter} ended with {conn.result['description']} "
                             f"({conn.result['result']}); check the base and the bind account's read rights",
                             code=conn.result["result"], base=base)
    return [(item["dn"], dict(item["attributes"]), item["raw_attributes"]) for item in conn.response or ()
            if item.get("type") == "searchResEntry"]


def limit_advice(conn: ldap3.Connection, code: int, message: str, read: int, page_size: int | None) -> str:
    """What to change when a search of the bind account of `conn` ended at a server limit (`LIMITS`) after `read`
    entries, `message` the server's words: the limit, and the setting that raises it (the account's limits on the
    server) or the page_size that fits it. slapd's words: "illegal pagedResults page size" (a page larger than
    size.pr), "pagedResults control not allowed" (size.prtotal=disabled); its default size limit is 500 entries,
    and size.prtotal (by default the hard size limit) counts every page of a paged search (slapd.conf(5) limits)."""
    who = conn.user or "an anonymous bind"
    limits = f'limits dn.exact="{conn.user}"' if conn.user else "limits anonymous"
    where = "in slapd.conf (olcLimits on the database in cn=config)"
    if code == SIZE_LIMIT:
        return (f"the server lets {who} read at most {read} entries in one search, and more match: raise that "
                f"account's size limit (OpenLDAP: {limits} size=unlimited size.prtotal=unlimited {where}; its "
                "default is 500 entries, and page_size does not get round it), or bind as an account without one")
    if code == TIME_LIMIT:
        return (f"the search took longer than the server lets {who} search: raise that account's time limit "
                f"(OpenLDAP: {limits} time=unlimited {where}; Active Directory: MaxQueryDuration), or narrow base "
                "and filter")
    if "page size" in message.lower():
        return (f"the server refuses pages of {page_size} entries to {who}: lower page_size in the directory's "
                f"[ldap.NAME] section to the largest page it allows, or raise that limit (OpenLDAP: {limits} "
                f"size.pr=unlimited {where})")
    if "not allowed" in message.lower():
        return (f"the server does not let {who} page a search, and every search of a directory's users is paged: "
                f"allow it (OpenLDAP: {limits} size.prtotal=unlimited {where})")
    return (f"an administrative limit of the server stopped the search for {who}: raise the limit its message "
            f"names for that account (Active Directory: the LDAP policy's MaxPageSize, MaxResultSetSize), or lower "
            f"page_size (now {page_size}) in the directory's [ldap.NAME] section")


def _complete_ranges(conn: ldap3.Connection, dn: str, values: dict[str, Any]) -> dict[str, Any]:
    """Replace `member;range=0-1499` by the whole `member`, asking for `member;range=1500-*` and on."""
    whole: dict[str, Any] = {}
    for key, value in values.items():
        match = _RANGE.match(key)
        if match is None:
            whole[key] = value
            continue
        name, collected, end = match["name"], list(value), match["end"]
        while end != "*":
            wanted = f"{name};range={int(end) + 1}-*"
            try:
                conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[wanted])
            except LDAPException as exc:
                raise DirectoryError(f"range retrieval of {name} on {dn!r} failed ({ldap3_message(exc)})") from None
            if conn.result["result"] != 0 or not conn.response:
                raise DirectoryError(f"range retrieval of {name} on {dn!r} ended with {conn.result['description']}")
            ranged = next(((k, v) for k, v in conn.response[0]["attributes"].items() if _RANGE.match(k)), None)
            if ranged is None:
                break
            collected.extend(ranged[1])
            end = _RANGE.match(ranged[0])["end"]  # type: ignore[index]
        whole[name] = collected
    return whole


FILTER_BATCH = 50  # values per (|(...)(...)) filter


def in_batches(values: list[str]) -> Iterator[list[str]]:
    """`values` in slices of FILTER_BATCH, one (|...) search filter each."""
    for start in range(0, len(values), FILTER_BATCH):
        yield values[start:start + FILTER_BATCH]


def first_raw(raw: dict[str, list[bytes]], name: str) -> bytes | None:
    """The first raw value of attribute `name` (case-insensitive) as the server sent it, or None."""
    return next((values[0] for key, values in raw.items() if key.lower() == name.lower() and values), None)


def read_entry(conn: ldap3.Connection, dn: str, attributes: Sequence[str],
               controls: Sequence[Control] = ()) -> tuple[str, dict[str, Any], dict[str, list[bytes]]] | None:
    """One entry by DN, or None if it does not exist or the bind account may not see it."""
    try:
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=list(attributes), controls=list(controls) or None)
    except LDAPException as exc:
        raise DirectoryError(f"reading {dn!r} failed ({ldap3_message(exc)})") from None
    code = conn.result["result"]
    if code in (REFERRAL, NO_SUCH_OBJECT, INSUFFICIENT_ACCESS_RIGHTS, INVALID_DN_SYNTAX):
        return None
    if code != 0:
        raise DirectoryError(f"reading {dn!r} ended with {conn.result['description']} ({code})")
    entry = next((item for item in conn.response or () if item.get("type") == "searchResEntry"), None)
    return None if entry is None else (entry["dn"], dict(entry["attributes"]), entry["raw_attributes"])


def root_dse(conn: ldap3.Connection, attributes: Sequence[str]) -> dict[str, Any]:
    """The rootDSE's attributes, read by an explicit search (operational ones need it)."""
    entries = list(search(conn, "", "(objectClass=*)", attributes, page_size=None, scope=ldap3.BASE,
                          what="reading the rootDSE"))
    if not entries:
        raise DirectoryError("the server returned no rootDSE; is this an LDAP v3 directory?")
    return entries[0][1]
