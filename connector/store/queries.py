"""SQL built the same way for every backend, in the backend's placeholder style."""

from __future__ import annotations

from typing import Any

from connector.store.base import EventState

CONFLICT_CAUSE = "extension_conflict"  # not an event's last cause: the events of open conflicts
# What `Store.requeue` may make pending again: dead or held events, and done events of an open conflict.
REQUEUABLE = "(state IN ('dead', 'held') OR (state = 'done' AND id IN (SELECT event_id FROM extension_conflicts)))"


def event_filter(
    placeholder: str,
    user_name_sql: str,
    *,
    state: EventState | None,
    cause: str | None,
    user: str | None,
    source: str | None,
    since: float | None,
) -> tuple[str, list[Any]]:
    """The WHERE clause of `Store.list_events` ("" for no filter) and its parameters.

    `user_name_sql` is the backend's expression for the userName in an event's state.
    """
    p = placeholder
    filters: list[str] = []
    params: list[Any] = []
    if state is not None:
        filters.append(f"state = {p}")
        params.append(EventState(state).value)
    if cause == CONFLICT_CAUSE:
        filters.append("id IN (SELECT event_id FROM extension_conflicts)")
    elif cause is not None:
        filters.append(f"last_cause = {p}")
        params.append(cause)
    if user is not None:
        filters.append(f"(external_id = {p} OR lower({user_name_sql}) = lower({p}))")
        params.extend((user, user))
    if source is not None:
        filters.append(f"source = {p}")
        params.append(source)
    if since is not None:
        filters.append(f"updated_at >= {p}")
        params.append(since)
    return (f"WHERE {' AND '.join(filters)}" if filters else ""), params
