"""Pushes only when something changed, updates of confirmed extensions that ask Verba who holds them first, and
drift: found without writing, repaired exactly through delivery (connector/ops/drift.py, `connector drift`)."""

from __future__ import annotations

import json
import pathlib
import time

import pytest

from connector.config import load_config
from connector.mapping import load_mapping
from connector.ops.drift import KINDS, PENDING, DriftCheck, DriftStopped, Unchecked, verba_directory
from connector.ops.metrics import SKIPPED, StoreCollector
from connector.ops.report import when
from connector.simulator.operations import LIST_CAP, UNFILTERED_LIST_USERS_SHAPES
from connector.store import DriftRun, EventState, Instance
from tests.ops.helpers import cli, unreachable_target
from tests.plugins.simulator import USERS, drain, user

WRITES = ("createExtension", "updateExtension")
ALICE = "+14155550100"
BOB = "+14155550111"


@pytest.fixture
def seed_users():
    """Verba users the connector does not manage come first: a list of every user that Verba caps
    ("capped") leaves out Alice and Bob."""
    return [{"id": 1000 + i, "loginName": f"other{i}@example.com", "eid": "0000"} for i in range(LIST_CAP)] + USERS


@pytest.fixture
def sim(simulator):
    """The most hostile shape: a missing extension is answered ERROR_GENERAL, like an outage."""
    simulator.http.post("/_sim/behaviour", json={"missing_extension": "error_general"}).raise_for_status()
    return simulator


def operations(simulator) -> list[str]:
    return [c["operation"] for c in simulator.calls() if c["operation"] not in ("requestToken", "releaseToken")]


def pushed(deliverer, simulator, *changes, **enqueue) -> list[str]:
    """Deliver `changes` from a clean call log; the SOAP operations sent."""
    simulator.clear_calls()
    deliverer.store.enqueue(list(changes), **enqueue)
    drain(deliverer)
    return operations(simulator)


def test_a_change_that_leaves_the_records_alone_sends_nothing_and_is_counted_skipped(deliverer, sim):
    assert "createExtension" in pushed(deliverer, sim, user(displayName="Alice"))
    before = SKIPPED._value.get()
    assert pushed(deliverer, sim, user(displayName="Alice Liddell", title="Engineer")) == []
    assert SKIPPED._value.get() == before + 1
    assert deliverer.store.count_by_state()[EventState.DONE] == 2
    assert sim.extensions()[ALICE]["voice"] is True


def test_a_confirmed_extension_is_read_then_updated_and_a_new_number_costs_at_most_two_writes(
        deliverer, sim, tmp_path):
    mapping = tmp_path / "legal.toml"
    mapping.write_text(pathlib.Path("mappings/default.toml").read_text() + (
        '[[rules]]\nwhen = { attribute = "displayName", equals = "Counsel" }\nset = { recordingMode = "ON_DEMAND" }\n'))
    deliverer.mapping = load_mapping(str(mapping))
    pushed(deliverer, sim, user())
    # Verba is asked who holds it first: an admin may have relinked it by hand (tests/delivery/test_hand_relinks.py).
    assert pushed(deliverer, sim, user(displayName="Counsel")) == ["getExtension", "updateExtension"]
    assert sim.extensions()[ALICE]["recordingMode"] == "ON_DEMAND"
    ops = pushed(deliverer, sim, user(phones=(BOB,)))  # the new number is created, the old one stopped
    assert sum(op in WRITES for op in ops) <= 2 and ops.count("getExtension") <= 1, ops
    assert sim.extensions()[BOB]["user_id"] == 3 and sim.extensions()[ALICE]["voice"] is False


def test_a_push_recreates_an_extension_deleted_behind_the_connectors_back(deliverer, sim):
    pushed(deliverer, sim, user())
    sim.delete_extension(ALICE)
    ops = pushed(deliverer, sim, user(title="changed"), forced=True)
    assert ops[0] == "getExtension" and "createExtension" in ops
    assert sim.extensions()[ALICE]["user_id"] == 3 and sim.extensions()[ALICE]["voice"] is True
    assert deliverer.store.count_by_state()[EventState.DEAD] == 0


def test_a_replay_pushes_even_when_nothing_changed(deliverer, sim):
    pushed(deliverer, sim, user())
    sim.edit_extension(ALICE, voice=False)  # an admin's edit the connector cannot know of
    assert pushed(deliverer, sim, user(title="x")) == []
    event = deliverer.store.current_event("test", "u-alice")
    with deliverer.store._write() as conn:  # make it a dead letter, as a failed push would
        conn.execute(deliverer.store._sql("UPDATE events SET state = 'dead' WHERE id = %s"), (event.id,))
    deliverer.store.requeue([event.id], 0.0)
    drain(deliverer)
    assert sim.extensions()[ALICE]["voice"] is True


@pytest.fixture
def drift(deliverer, config_path) -> DriftCheck:
    mapping = load_mapping(load_config(config_path).mapping_file)
    return DriftCheck(deliverer.store, deliverer.client, mapping, 2)


@pytest.mark.parametrize("shape", UNFILTERED_LIST_USERS_SHAPES)
def test_each_kind_of_drift_is_found_without_writing_and_repaired_exactly(deliverer, sim, drift, shape, monkeypatch):
    """Whether Verba lists every user at once, only some ("capped", with nothing to say so) or none."""
    monkeypatch.setattr("connector.ops.drift.CLOCK_MARGIN_SECONDS", 0.0)  # one clock here: the pushes ended before
    sim.http.post("/_sim/behaviour", json={"unfiltered_list_users": shape}).raise_for_status()
    carol = "+14155550122"
    pushed(deliverer, sim, user(), user("u-bob", "bob@example.com", phones=(BOB,)),
           user("u-carol", "alice@example.com", phones=(carol,)))  # Alice again, from another source user
    dave = "+14155550133"
    in_step = "+14155550144"
    pushed(deliverer, sim, user("u-erin", "bob@example.com", phones=(BOB, in_step)))
    sim.edit_extension(ALICE, voice=False, recordingMode="ON_DEMAND")  # settings
    sim.delete_extension(BOB)  # missing
    sim.edit_extension(carol, user_id=None)  # unlinked
    sim.edit_extension(dave, user_id=4, voice=True, recordingMode="FULL", im=False, video=False,
                       screenCaptureEnabled=False)  # an extra on Bob, recorded
    sim.clear_calls()
    before = sim.extensions()

    report = drift.check()
    found = {(d.kind, d.extension) for d in report.drifts}
    assert found == {("settings", ALICE), ("missing", BOB), ("unlinked", carol), ("extra", dave)}, report.drifts
    assert report.users == 4 and report.extensions == 5 and report.unchecked == []
    assert not any(op in WRITES for op in operations(sim)) and sim.extensions() == before
    # The list of every user, then (unless it held them) one listUsers per checked user; getExtension only
    # for the wanted extensions no user's list holds (BOB for two users, carol).
    assert len(sim.calls("listUsers")) == 1 + (0 if shape == "all" else 4)
    assert sorted(c["extension"] for c in sim.calls("getExtension")) == sorted([BOB, BOB, carol])
    # A user pushed since the list was read (here: within a margin of an hour) is asked on its own.
    monkeypatch.setattr("connector.ops.drift.CLOCK_MARGIN_SECONDS", 3600.0)
    sim.clear_calls()
    assert {(d.kind, d.extension) for d in drift.check().drifts} == found
    assert len(sim.calls("listUsers")) == 1 + 4
    monkeypatch.setattr("connector.ops.drift.CLOCK_MARGIN_SECONDS", 0.0)

    sim.edit_extension(in_step, user_id=3)  # now linked to Alice: Bob's wanted extension, another user's
    report = drift.check()
    assert ("other_user", in_step) in {(d.kind, d.extension) for d in report.drifts}
    sim.edit_extension(in_step, user_id=4)

    drift.repair(drift.check(), actor="oncall", reason="weekly drift")
    drain(deliverer)
    after = sim.extensions()
    assert (after[ALICE]["voice"], after[ALICE]["recordingMode"]) == (True, "FULL")
    assert after[BOB]["user_id"] == 4 and after[BOB]["voice"] is True
    assert after[carol]["user_id"] == 3
    assert after[dave]["user_id"] == 4 and after[dave]["voice"] is False  # still linked, recording stopped
    assert after[in_step] == before[in_step]
    assert drift.check().drifts == []
    # the newest repair's entry (the pushes audit their own decisions too: the extra stopped)
    audit = next(a for a in deliverer.store.list_audit() if a.action == "drift_repair")
    assert (audit.actor, audit.reason, audit.detail["users"]) == ("oncall", "weekly drift", 4)


def five_users(deliverer, sim) -> None:
    """u-0 .. u-4, each with a number of its own, linked to Alice or Bob in turn."""
    pushed(deliverer, sim, *(user(f"u-{i}", ("alice@example.com", "bob@example.com")[i % 2],
                                  phones=(f"+1415555020{i}",)) for i in range(5)))


def test_a_check_reads_the_store_in_batches_and_finds_what_one_batch_finds(deliverer, sim, drift, monkeypatch):
    five_users(deliverer, sim)
    sim.delete_extension("+14155550203")
    sim.edit_extension("+14155550200", voice=False)
    whole = drift.check()
    monkeypatch.setattr("connector.ops.drift.BATCH", 2)
    progress: list[int] = []
    batched = drift.check(progress=progress.append)
    assert batched.drifts == whole.drifts and [(d.kind, d.user) for d in batched.drifts] == [
        ("missing", "test/u-3"), ("settings", "test/u-0")]
    assert (batched.users, batched.extensions, sum(progress)) == (5, 5, 5)


def test_a_check_of_a_verba_failing_as_a_whole_stops_early_and_sends_none_of_the_calls_still_queued(
        deliverer, sim, config_path, monkeypatch):
    five_users(deliverer, sim)
    monkeypatch.setattr("connector.ops.drift.BATCH", 2)
    monkeypatch.setattr("connector.ops.drift.OUTAGE_STREAK", 2)
    sim.clear_calls()
    sim.fault(operation="listUsers", http_status=500, latency_ms=300)
    mapping = load_mapping(load_config(config_path).mapping_file)
    with pytest.raises(DriftStopped, match=r"^drift check stopped after 2 of 5 users: Verba failed as a whole for "
                                           r"the last 2 users in a row \(the last: Verba answered HTTP 500"):
        DriftCheck(deliverer.store, deliverer.client, mapping, 1).check()
    # The list of every user (failed: each user is asked on its own), the first two users', and the next if its
    # worker took it first.
    assert len(sim.calls("listUsers")) <= 4
    assert deliverer.store.last_drift_run() is None


def test_a_user_whose_push_is_under_way_is_not_checked(deliverer, sim, drift):
    pushed(deliverer, sim, user())
    deliverer.store.enqueue([user(title="new")])
    report = drift.check()
    assert report.drifts == [] and report.unchecked == [Unchecked("test/u-alice", PENDING)]
    assert str(report.unchecked[0]) == "test/u-alice: a change of this user waits to be pushed"


def run_drift(config_path, *args):
    """`connector drift` as a subprocess."""
    return cli("drift", "--config", str(config_path), *args)


def test_a_check_that_could_check_nobody_does_not_call_verba_in_step(deliverer, sim, config_path):
    pushed(deliverer, sim, user())
    deliverer.store.enqueue([user(title="new")])  # a change waits to be pushed: the user is not checked
    done = run_drift(config_path)
    assert done.returncode == 3, done.stderr
    assert "drift: 1 user: 0 compared with Verba (0 extensions), 1 not checked, in " in done.stdout
    assert ": nothing checked: see why below" in done.stdout and "in step" not in done.stdout
    assert f"  {PENDING} (1):\n    test/u-alice\n" in done.stdout
    assert deliverer.store.last_drift_run() is None


def test_the_command_exits_3_on_drift_0_in_step_and_repairs_with_an_audit(deliverer, sim, config_path):
    pushed(deliverer, sim, user())
    done = run_drift(config_path)
    assert done.returncode == 0, done.stderr
    assert "drift: 1 user: 1 compared with Verba (1 extension), in " in done.stdout and "in step" in done.stdout

    sim.edit_extension(ALICE, video=True)
    sim.clear_calls()
    done = run_drift(config_path)
    assert done.returncode == 3, done.stderr
    assert "recording settings differ (1):" in done.stdout and "video: Verba has True, wanted False" in done.stdout
    assert "nothing was written; run again with --repair" in done.stdout
    assert sim.extensions()[ALICE]["video"] is True
    # every user: Verba's users read with one listUsers without criterion (and alice again if her push ended
    # within a second of it, as users pushed since the list are); --user asks that user alone
    listed = [(c["loginName"], c["extension"]) for c in sim.calls("listUsers")]
    assert listed[0] == (None, None) and set(listed[1:]) <= {("alice@example.com", None)}, listed
    sim.clear_calls()
    assert run_drift(config_path, "--user", "alice@example.com").returncode == 3
    assert [c["loginName"] for c in sim.calls("listUsers")] == ["alice@example.com"]

    done = run_drift(config_path, "--json", "--user", "alice@example.com", "--repair", "--reason", "ticket 7",
                     "--operator", "maria")
    assert done.returncode == 3, done.stderr
    data = json.loads(done.stdout)
    assert data["counts"]["settings"] == 1 and data["repaired"] == 1 and len(data["event_ids"]) == 1
    drain(deliverer)
    assert sim.extensions()[ALICE]["video"] is False
    assert run_drift(config_path).returncode == 0
    assert deliverer.store.last_drift_run().counts["settings"] == 0
    bad = run_drift(config_path, "--user", "nobody")
    assert bad.returncode == 1 and "no user 'nobody'" in bad.stderr


def test_a_check_of_some_users_is_not_recorded_as_the_last_check(deliverer, sim, config_path):
    """The last check recorded is what `connector status`, the metrics and `status --check` show: a check of some
    users must not hide what the last check of every user found (its own output and exit status give its result)."""
    pushed(deliverer, sim, user(), user("u-bob", "bob@example.com", phones=(BOB,)))
    sim.delete_extension(BOB)
    assert run_drift(config_path).returncode == 3
    everyone = deliverer.store.last_drift_run()
    assert everyone is not None and everyone.counts["missing"] == 1

    alone = run_drift(config_path, "--user", "alice@example.com")
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.splitlines()[-1] == (
        "not recorded as the last check (only some users were checked): `connector status`, the metrics and "
        "`connector status --check` still show the last check of every user; `connector drift` without --user "
        "records a new one")
    assert json.loads(run_drift(config_path, "--user", "alice@example.com", "--json").stdout)["recorded"] is False
    assert deliverer.store.last_drift_run() == everyone
    [found] = [m for m in StoreCollector(deliverer.store).collect() if m.name == "connector_drift_found"]
    assert {s.labels["kind"]: s.value for s in found.samples}["missing"] == 1
    shown = cli("drift", "--help").stdout
    assert "not recorded as the last check" in " ".join(shown.split())
    assert json.loads(run_drift(config_path, "--json").stdout)["recorded"] is True


def test_status_tells_the_last_checks_age_from_its_duration_and_names_the_instance_running_scheduled_checks(
        config, store):
    finished = time.time() - 7200  # 2.0h ago until 3 minutes later
    store.register_instance(Instance("a", "run-a", "vm1", 101), 15, lambda previous: True)
    store.add_drift_run(DriftRun(finished - 2, finished, 1, 1, dict.fromkeys(KINDS, 0), 0, None, "schedule"))
    unled = status_lines(config)
    assert store.lead("drift", "a")
    led = status_lines(config)
    line = f"drift: last check {when(finished)}, 2.0h ago (schedule, took 2s): 1 extension of 1 user, in step"
    assert [x for x in unled if x.startswith("drift: ")] == [line]
    assert [x for x in led if x.startswith("drift: ")] == [f"{line}; instance a runs the scheduled checks"]


def status_lines(config: pathlib.Path) -> list[str]:
    shown = cli("status", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.splitlines()


def test_the_scheduled_check_records_its_runs_repairs_only_when_told_and_runs_on_the_leader_only(
        deliverer, sim, drift, config_path):
    from prometheus_client import CollectorRegistry, generate_latest

    from connector.config import DriftConfig
    from connector.ops.drift import DriftSchedule
    from connector.ops.metrics import register_store

    pushed(deliverer, sim, user())
    sim.edit_extension(ALICE, im=True)
    assert DriftSchedule(drift, DriftConfig(), leads=lambda task: False).run_once() is None
    assert deliverer.store.last_drift_run() is None

    report = DriftSchedule(drift, DriftConfig()).run_once()
    assert report is not None and report.counts["settings"] == 1 and report.repaired is None
    run = deliverer.store.last_drift_run()
    assert (run.trigger, run.counts["settings"], run.extensions, run.repaired) == ("schedule", 1, 1, None)
    assert deliverer.store.count_by_state()[EventState.PENDING] == 0 and sim.extensions()[ALICE]["im"] is True
    registry = CollectorRegistry()
    register_store(deliverer.store, registry)
    metrics = generate_latest(registry).decode()
    assert 'connector_drift_found{kind="settings"} 1.0' in metrics
    assert "connector_drift_extensions_checked 1.0" in metrics
    shown = cli("status", "--config", str(config_path))
    assert shown.returncode == 0, shown.stderr
    status = shown.stdout
    assert "s ago (schedule, took " in status and "1 extension of 1 user, DRIFT settings 1" in status

    schedule = DriftSchedule(drift, DriftConfig(interval_seconds=0.2, repair=True))
    schedule.start()
    try:
        deadline = time.monotonic() + 20
        while deliverer.store.last_drift_run().repaired is None:
            assert time.monotonic() < deadline, "the scheduled repair never ran"
            time.sleep(0.05)
    finally:
        schedule.stop()
    drain(deliverer)
    assert sim.extensions()[ALICE]["im"] is False
    assert deliverer.store.list_audit()[0].actor == "connector"


def test_an_extension_seen_gone_is_no_longer_confirmed_so_its_next_push_asks_verba_first(deliverer, sim, drift):
    pushed(deliverer, sim, user())
    sim.delete_extension(ALICE)
    assert [d.kind for d in drift.check().drifts] == ["missing"]
    assert pushed(deliverer, sim, user(displayName="Alice B.")) == ["createExtension"]  # not a no-op any more
    assert sim.extensions()[ALICE]["user_id"] == 3


def test_a_check_of_one_source_does_not_call_what_another_source_of_the_user_wants_extra(deliverer, sim, drift):
    """alice from two sources with a number each: `drift --user` of one must not report the other's number as an
    extension nobody wants (the full check never did)."""
    import dataclasses

    pushed(deliverer, sim, user(), dataclasses.replace(user(phones=(BOB,)), source="okta", external_id="00u1"))
    assert drift.check([("test", "u-alice")]).drifts == []
    assert drift.check().drifts == []


def test_a_login_name_listed_twice_is_asked_on_its_own(deliverer, sim, drift):
    users = "".join(f"<users><id>{i}</id><loginName>{login}</loginName></users>"
                    for i, login in ((3, "alice@example.com"), (8, "alice@example.com"), (4, "bob@example.com")))
    body = ('<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><ns2:listUsersResponse '
            'xmlns:ns2="http://v2.provisioning.ws.web.verba.com/"><return><status><statusCode>OK</statusCode>'
            f"</status>{users}</return></ns2:listUsersResponse></S:Body></S:Envelope>")
    sim.fault(operation="listUsers", body=body, times=1)
    assert {login: user.user_id for login, user in verba_directory(drift.client, "test").items()} == {
        "bob@example.com": 4}


def test_a_check_with_verba_unreachable_fails_at_once_without_asking_each_user(deliverer, sim, config_path):
    pushed(deliverer, sim, user())
    config = config_path.read_text()
    down = config_path.with_name("down.toml")
    down.write_text(config.replace(sim.url, unreachable_target()))
    assert down.read_text() != config
    done = run_drift(down)
    assert done.returncode == 1 and "could not reach http://127.0.0.1:" in done.stderr, done.stderr
    assert "each user is asked on its own" not in done.stderr and "Traceback" not in done.stderr


def test_an_extension_a_user_waits_for_in_a_conflict_is_listed_apart_not_as_drift(deliverer, sim, config_path):
    """bob claims alice's number: Verba keeps it hers, on purpose. Calling that drift asked on-call to --repair,
    which changed nothing and left `status --check` failing."""
    pushed(deliverer, sim, user())
    pushed(deliverer, sim, user("u-bob", "bob@example.com"))
    [conflict] = deliverer.store.open_conflicts()
    assert conflict.claimant.external_id == "u-bob"

    result = run_drift(config_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"in an open extension conflict, not drift (1): `connector status` says why and what resolves it\n" \
           f"  {ALICE}  test/u-bob" in result.stdout
    assert "--repair" not in result.stdout
    out = json.loads(run_drift(config_path, "--json").stdout)
    assert (out["drifts"], out["in_conflict"]) == ([], [{"extension": ALICE, "user": "test/u-bob"}])
