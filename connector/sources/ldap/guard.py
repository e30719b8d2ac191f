"""The mass-change guard: a run that would deactivate or delete too many known users is held.

Like Verba's own "Automatic Rollback Threshold on Invalidated Users": a wrong filter, a moved OU
or an outage of the search base can make a whole directory look deleted; one approval is cheaper
than re-creating thousands of recording extensions.

Where OpenLDAP deletes a subtree or moves it out of `base`, nothing is written to the users in it: the
first of them the scope check finds gone, or the changed container, makes the watcher take a census of
every user in scope (watcher.py), so that all of them are judged here at once, against every known user,
as a run that saw them go would be.
"""

from __future__ import annotations

import dataclasses

from connector.config import LdapConfig


@dataclasses.dataclass(frozen=True)
class GuardVerdict:
    drops: int  # active known users this run would deactivate, delete or take out of a group the rules name
    known: int  # the known users
    tripped: bool

    def describe(self, config: LdapConfig) -> str:
        share = self.drops / self.known if self.known else 1.0
        return (f"{self.drops} of {self.known} known users ({share:.0%}) would be deactivated, deleted or leave a "
                f"group the rules name; "
                f"the limit is {config.guard_max_count} users, or {config.guard_max_share:.0%} once "
                f"{config.guard_min_count} or more would go")


def judge(config: LdapConfig, drops: int, known: int) -> GuardVerdict:
    """Trip when drops exceed guard_max_count, or guard_max_share of the known users.

    The share counts only from guard_min_count drops on: in a directory of 8, one leaver is 12 %.
    """
    by_share = drops >= config.guard_min_count and drops > config.guard_max_share * known
    tripped = drops > config.guard_max_count or (known > 0 and by_share)
    return GuardVerdict(drops, known, tripped and drops > 0)
