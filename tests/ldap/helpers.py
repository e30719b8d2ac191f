"""LDAP test helpers: stored events, a config file for the CLI, Samba AD sections and users, and a group mapping for
the end-to-end tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ldap3

from connector.store import Store
from tests.ldap.samba_server import ADMIN_DN as AD_ADMIN_DN
from tests.ldap.samba_server import ADMIN_PASSWORD as AD_ADMIN_PASSWORD
from tests.ldap.samba_server import DOMAIN_DN, URL, SambaDC
from tests.ldap.slapd_server import ADMIN_DN, ADMIN_PASSWORD

REALM = "corp.example.test"


def events_of(store: Store, since: int = 0) -> list[Any]:
    """Stored events with id above `since`, oldest first."""
    return sorted((e for e in store.list_events(limit=100_000) if e.id > since), key=lambda e: e.id)


def slapd_section(tmp_path: Path, url: str, base: str, **keys: Any) -> dict[str, Any]:
    """An [ldap.corp] section reading `base` at `url` bound as slapd's admin (its password in tmp_path/ldap-password);
    `keys` add to or override its keys."""
    (tmp_path / "ldap-password").write_text(ADMIN_PASSWORD)
    return {"url": url, "base": base, "bind_dn": ADMIN_DN, "password_file": str(tmp_path / "ldap-password"), **keys}


def config_file(tmp_path: Path, url: str, base: str, **keys: Any) -> Path:
    """tmp_path/connector.toml for the CLI: the store tmp_path/ldap.db (the `store` fixture's) and the
    slapd_section of `url`, `base` and `keys`."""
    section = slapd_section(tmp_path, url, base, **keys)
    path = tmp_path / "connector.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "ldap.db"}"\n[ldap.corp]\n'
                    + "".join(f"{key} = {json.dumps(value)}\n" for key, value in section.items()))
    return path


def ad_section(tmp_path: Path, ou: str, **keys: Any) -> dict[str, Any]:
    """An [ldap.corp] section of dialect "ad" for OU=ou, bound as the Administrator; keywords override keys."""
    (tmp_path / "ad-password").write_text(AD_ADMIN_PASSWORD)
    return {"url": URL, "dialect": "ad", "base": f"OU={ou},{DOMAIN_DN}", "bind_dn": AD_ADMIN_DN,
            "password_file": str(tmp_path / "ad-password"), "page_size": 2, "guard_max_share": 1.0, **keys}


def add_ad_user(samba: SambaDC, ou: str, name: str, phone: str, password: str = "Passw0rd-x1!") -> None:
    samba.tool("user", "add", name, password, f"--telephone-number={phone}", f"--given-name={name}",
               "--surname=Test", f"--userou=OU={ou}")


def user_dn(conn: ldap3.Connection, name: str) -> str:
    conn.search(DOMAIN_DN, f"(sAMAccountName={name})", attributes=["1.1"])
    return str(conn.response[0]["dn"])


def group_mapping(tmp_path: Path, group: str) -> str:
    """A mapping that records the work number of the members of `group` (effective membership), only them;
    the Verba user is found by the state's userName (the UPN on AD, the uid on OpenLDAP)."""
    path = tmp_path / "mapping.toml"
    path.write_text(f"""[environment]
eid = "0000"
[user_id]
login_name = ["userName"]
[[extensions]]
from = "attributes.telephoneNumber"
normalize = "e164"
default_country = "US"
[defaults]
record = false
recordingMode = "FULL"
voice = true
im = false
video = false
screenCaptureEnabled = false
[[rules]]
when = {{ group = {json.dumps(group)} }}
""")
    return str(path)
