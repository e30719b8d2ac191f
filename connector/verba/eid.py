"""The Verba environment id (eid), checked in one place for the config, the mapping and the client."""

from __future__ import annotations


def eid_problem(eid: object) -> str | None:
    """None for a valid eid (a string of exactly 4 characters, such as "0000"), else what is wrong and the fix.

    The problem reads after the key: f"target.eid {problem}" -> "target.eid is '00000'; an eid has ...".
    """
    if isinstance(eid, str) and len(eid) == 4:
        return None
    return f'is {eid!r}; an eid has exactly 4 characters, such as "0000" (quote it)'
