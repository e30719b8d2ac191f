"""Who the audit says acted: the person, also when on-call runs the commands as `sudo -u connector connector ...`
(as the README's server install does), and never "connector", the actor of the connector's own decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.store import EventState, Store
from tests.ops.helpers import dead_letters, run

# What `sudo -u connector` leaves in the environment of the command it runs, for alice.
SUDO_AS_CONNECTOR = {"LOGNAME": "connector", "USER": "connector", "SUDO_USER": "alice"}


def test_under_sudo_as_connector_the_audit_names_the_person_who_ran_sudo(config: Path, store: Store) -> None:
    [event_id] = dead_letters(store, "mapping", "u1")
    done = run(config, "events", "discard", str(event_id), "--reason", "as on a server", env=SUDO_AS_CONNECTOR)
    assert done.exit_code == 0, done.output
    [entry] = store.list_audit()
    assert (entry.actor, entry.action) == ("alice", "discard")
    assert " alice " in run(config, "audit").output


def test_without_sudo_the_os_user_acts_and_operator_overrides_both(config: Path, store: Store) -> None:
    first, second = dead_letters(store, "mapping", "u1", "u2")
    assert run(config, "events", "discard", str(first), "--reason", "r",
               env={"LOGNAME": "bob", "USER": "bob", "SUDO_USER": None}).exit_code == 0
    assert run(config, "events", "discard", str(second), "--reason", "r", "--operator", "carol",
               env=SUDO_AS_CONNECTOR).exit_code == 0
    assert [e.actor for e in store.list_audit()] == ["carol", "bob"]


@pytest.mark.parametrize("args, env, says", [
    (["--operator", "connector"], SUDO_AS_CONNECTOR, "'connector' is the name the audit gives the connector's own"),
    ([], {"LOGNAME": "connector", "USER": "connector", "SUDO_USER": None},
     "your OS user is 'connector' (no --operator given, no sudo), the name the audit gives the connector's own"),
    (["--operator", " "], None, "say who is acting, for the audit (it is blank)"),
])
def test_connector_or_a_blank_is_refused_as_the_operator_and_nothing_changes(
        config: Path, store: Store, args: list[str], env: dict[str, str | None] | None, says: str) -> None:
    [event_id] = dead_letters(store, "mapping", "u1")
    refused = run(config, "events", "discard", str(event_id), "--reason", "r", *args, env=env)
    assert refused.exit_code == 2, refused.output
    assert says in refused.output
    assert "--operator alice" in refused.output or "blank" in refused.output
    assert store.get_event(event_id).state is EventState.DEAD
    assert store.list_audit() == []
