"""The short chaos campaign (chaos/, `python -m chaos --short`): the real connector on SQLite under
20 SIGKILLs and a short Verba outage loses nothing and ends with Verba as the writes say.

`make chaos` runs the full campaign (200 kills, a long outage, SQLite then PostgreSQL).
"""

from __future__ import annotations

import random

import pytest

from chaos.__main__ import run_one
from chaos.campaign import SHORT
from chaos.report import render


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_short_campaign_loses_nothing(tmp_path):
    seed = random.randrange(1_000_000)
    assert SHORT.kills >= 20
    report = run_one(SHORT, "sqlite", seed, tmp_path)
    table = render([report])
    print(table)
    assert report.kills >= 20, table
    assert report.lost == 0, table
    assert report.undelivered == 0, table
    assert report.wrong_final_states == 0, table
    assert report.writes_without_user_id == 0, table
    assert report.dead_letters == 0 and report.outage_dead_letters == 0, table
    assert report.status_5xx == 0, table
    assert report.unexpected_answers == 0 and report.tracebacks == 0 and report.harness_errors == 0, table
    assert not report.failed, table
