"""An OpenLDAP directory the connector watches, changed during the campaign and stopped between polls.

Uses the private slapd of tests/ldap/slapd_server.py (free ports, its own data directory).
Users are `uid=ldapNNNN` under `ou=people,ou=chaos`; each has a `telephoneNumber` that the
default mapping records, found in Verba by the uid. `Directory.churn` changes numbers; the
campaign calls `pause`/`resume` to take slapd away between polls: the watcher must resume
from its watermark and miss nothing.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from chaos.workload import FORMATS, Model, User

ROOT = Path(__file__).resolve().parent.parent


def slapd_available() -> str:
    """Why no slapd can run here, or "" when it can."""
    import os

    return "" if os.access("/usr/sbin/slapd", os.X_OK) else "no /usr/sbin/slapd (apt-get install slapd)"


class Directory:
    def __init__(self, model: Model, seed: int) -> None:
        import sys

        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from tests.ldap.slapd_server import ADMIN_DN, ADMIN_PASSWORD, SlapdServer

        self.model = model
        self.users = model.ldap_users
        self.rng = random.Random(seed)
        self.admin_dn, self.admin_password = ADMIN_DN, ADMIN_PASSWORD
        self.free = [f"646555{i:04d}" for i in self.rng.sample(range(10000), len(self.users) * 20)]
        self.changes = 0
        self.pauses = 0
        self.server = SlapdServer.start()
        try:
            self.conn = self.server.admin()
            self.base = self.server.add_ou(self.conn, "chaos")
            self._add_users()
        except BaseException:
            self.server.stop()
            raise

    def _add_users(self) -> None:
        for user in self.users:
            user.digits = self.free.pop()
            user.scim_id = self.server.add_user(self.conn, self.base, user.user_name,
                                                telephoneNumber=self.rng.choice(FORMATS)(user.digits))
            self.model.held(user, user.digits)

    def config(self, password_file: Path) -> dict[str, Any]:
        """The [ldap.corp] keys: a poll every second, no cron full sync."""
        password_file.write_text(self.admin_password)
        return {"url": self.server.url, "dialect": "openldap", "base": f"ou=people,{self.base}",
                "bind_dn": self.admin_dn, "password_file": str(password_file), "poll_seconds": 1.0,
                "full_sync_cron": ""}

    def churn(self, count: int) -> list[tuple[User, str]]:
        """Give `count` random users a new number (the old one goes back to the pool later); return
        each changed user with the new number's digits."""
        changed: list[tuple[User, str]] = []
        for _ in range(count):
            user = self.users[self.rng.randrange(len(self.users))]
            old, new = user.digits, self.free.pop(self.rng.randrange(len(self.free)))
            user.digits = new
            assert user.scim_id is not None
            self.server.modify(self.conn, user.scim_id, telephoneNumber=self.rng.choice(FORMATS)(new))
            self.model.held(user, new)
            if old is not None:
                self.free.append(old)
            self.changes += 1
            changed.append((user, new))
        return changed

    def pause(self) -> None:
        self.conn.unbind()
        self.server.pause()
        self.pauses += 1

    def resume(self) -> None:
        self.server.resume()
        self.conn = self.server.admin()

    def close(self) -> None:
        self.conn.unbind()
        self.server.stop()
