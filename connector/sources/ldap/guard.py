"""The mass-change guard: a run that would deactivate or delete too many known users is held.

Like Verba's own "Automatic Rollback Threshold on Invalidated Users": a wrong filter, a moved OU
or an outage of the search base can make a whole directory look deleted; one approval is cheaper
than re-creating thousands of recording extensions.

Where OpenLDAP moves a subtree out of `base`, nothing is written to the users in it, so no run sees
them all go: the scope check finds them `scope_check_per_poll` at a time, each run's few below the
per-run limit. So the users a scope check found gone are also judged against the users it checked
(`judge_scope_check`): the same limits, with the batch in place of the directory.
"""

from __future__ import annotations

import dataclasses

from connector.config import LdapConfig


@dataclasses.dataclass(frozen=True)
class GuardVerdict:
    drops: int  # active known users this run would deactivate, delete or take out of a group the rules name
    known: int  # the known users (those the scope check checked, for a verdict of `judge_scope_check`)
    tripped: bool
    scope_check: bool = False  # a verdict on the users one scope check found gone, of those it checked

    def describe(self, config: LdapConfig) -> str:
        share = self.drops / self.known if self.known else 1.0
        if self.scope_check:
            return (f"the scope check found {self.drops} of the {self.known} known users it checked ({share:.0%}) no "
                    f"longer in scope; the limit is {config.guard_max_count} users, or {config.guard_max_share:.0%} "
                    f"of those checked once {config.guard_min_count} or more are gone: a subtree moved out of the "
                    "base, or hidden from the bind account, is found a batch at a time")
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


def judge_scope_check(config: LdapConfig, gone: int, checked: int) -> GuardVerdict:
    """Trip when the users one scope check found gone exceed guard_max_count, or guard_max_share of the `checked`
    known users it looked at, counted from guard_min_count on (`judge`, with the batch in place of the directory).

    A batch is a sample of the directory: 10 % of it gone says 10 % of the directory is. The floor is the
    guard's own, guard_min_count (10 by default): a batch that covers a small directory is then judged as a run
    of the whole directory is, and a batch of 100 holds from 11 gone (the share) on, where leavers, which
    arrive one by one and spread over the known ids, are one or two.
    """
    return dataclasses.replace(judge(config, gone, checked), scope_check=True)
