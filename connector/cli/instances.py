"""`connector instances forget`: acknowledge that a connector instance is gone for good."""

from __future__ import annotations

import click

from connector.cli.options import config_option, echo, not_blank, operator_option
from connector.config import load_config
from connector.runtime import open_configured_store
from connector.store import Audit


@click.group()
def instances() -> None:
    """The connector instances sharing the store (see `connector status`)."""


@instances.command("forget")
@click.argument("name")
@config_option
@click.option("--reason", required=True, callback=not_blank, help="Why it is gone for good, for the audit.")
@operator_option
def forget(name: str, config_path: str, reason: str, operator: str) -> None:
    """Acknowledge that instance NAME is gone for good: `connector status` no longer lists it as DEAD and
    `status --check` no longer fails for it. One still registered but silent for [instance] liveness_seconds is
    unregistered too (its in-flight events go back to the queue, its directories to the others).

    Refused for an instance heard from within liveness_seconds; nothing to do (exit 0) for a name the store does
    not know. Starting the instance again also clears its record.
    """
    config = load_config(config_path, secrets=())
    with open_configured_store(config) as store:
        audit = Audit(operator, "forget_instance", reason, {"instance": name})
        released = store.forget_dead_instance(name, config.instance.liveness_seconds, audit=audit)
        if released is None:
            live, dead = store.live_instances()[1], store.dead_instances()
            known = sorted({i.name for i in live} | {d.instance.name for d in dead})
            case = "; names are case-sensitive" if name.lower() in {k.lower() for k in known} else ""
            echo(f"instance {name}: nothing to forget (not registered, not counted dead{case}): the store "
                 f"knows {', '.join(known) if known else 'no instance'}")
            return
    echo(f"instance {name} forgotten; {released} in-flight event(s) went back to the queue")
