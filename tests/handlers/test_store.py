"""Store against a moto DynamoDB table with the template's schema: every conditional write and refusal."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from ecs_canary.errors import (
    DeploymentClosed,
    DeploymentNotFound,
    NotOwner,
    RollbackRequested,
    ShiftInFlight,
    UnknownServicePair,
    WriteRefused,
)
from ecs_canary.store import (
    ACTIVE,
    HISTORY_LIMIT,
    OPEN,
    TERMINAL,
    Command,
    Deployment,
    Handover,
    Release,
    RollbackIntent,
    Status,
    Store,
    cluster_name,
    now_iso,
)
from ecs_canary.store import conditions as cond
from flow_fixtures import (
    ACCOUNT,
    BLUE,
    CLUSTER,
    GREEN,
    PAIR,
    PAIR_ALARM,
    REGION,
    TABLE,
    fake_spec,
    table_schema,
)

pytest_plugins = ["flow_fixtures"]

SM = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:canary"
RELEASE = Release(GREEN, "ecs-svc/1111", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web-green:2")
OTHER = Release(GREEN, "ecs-svc/2222", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web-green:3")
SNAP = {BLUE: 100, GREEN: 0}
STEP1 = {BLUE: 90, GREEN: 10}
LEASE = 900.0


def owner(deployment_id: str) -> str:
    return SM.replace(":stateMachine:", ":execution:") + f":{deployment_id}"


STRANGER = owner("manual-rerun-1")


def _item(store: Store, sk: str, pair: str = PAIR) -> dict[str, Any] | None:
    return store._get({"pk": {"S": f"PAIR#{pair}"}, "sk": {"S": sk}})


def _everything(store: Store) -> list[dict[str, Any]]:
    return sorted(store.ddb.scan(TableName=TABLE)["Items"], key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def _index_entries(store: Store) -> set[tuple[str, str]]:
    """(pk, pair) of every service and alarm index item."""
    return {
        (i["pk"]["S"], i["pair"]["S"])
        for i in _everything(store)
        if i["pk"]["S"].startswith(("SERVICE#", "ALARM#"))
    }


def _claim(store: Store, deployment_id: str = "d1", release: Release = RELEASE, lease: float = LEASE) -> Any:
    return store.claim(
        PAIR, deployment_id, release, BLUE, execution_arn=owner(deployment_id), lease_seconds=lease
    )


@pytest.fixture
def pair(table: Store) -> Store:
    table.put_pair(fake_spec(), live_service=BLUE, idle_baseline="ecs-svc/0000")
    return table


def _running(store: Store, deployment_id: str = "d1", release: Release = RELEASE) -> str:
    assert _claim(store, deployment_id, release).outcome == "claimed"
    store.mark_started(PAIR, deployment_id, owner(deployment_id))
    return deployment_id


def _begun(store: Store, deployment_id: str = "d1") -> str:
    _running(store, deployment_id)
    store.begin(PAIR, deployment_id, owner=owner(deployment_id), snapshot=SNAP, spec=fake_spec())
    return deployment_id


def _intent(status: Status = Status.FAILED, reason: str = "alarm x", successor: Release | None = None) -> Any:
    return RollbackIntent(status, reason, "test", now_iso(), successor)


def _rolling_back(store: Store, deployment_id: str = "d1") -> str:
    _begun(store, deployment_id)
    store.request_rollback(PAIR, deployment_id, _intent())
    return deployment_id


def _closed(store: Store, deployment_id: str = "d1") -> str:
    _begun(store, deployment_id)
    assert store.finish(PAIR, deployment_id, Status.FAILED, "done")
    return deployment_id


def _paused(store: Store, deployment_id: str = "d1") -> str:
    _begun(store, deployment_id)
    store.pause(PAIR, deployment_id, by="jane", reason="look")
    return deployment_id


# ---- the table itself -----------------------------------------------------------------------------


def test_table_keys_and_locks_index_come_from_the_template(table: Store) -> None:
    described = table.ddb.describe_table(TableName=TABLE)["Table"]
    schema = table_schema()
    assert described["KeySchema"] == schema["KeySchema"]
    assert {a["AttributeName"]: a["AttributeType"] for a in described["AttributeDefinitions"]} == {
        "pk": "S",
        "sk": "S",
        "lock_index": "S",
    }
    (index,) = described["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "Locks"
    assert index["KeySchema"] == [
        {"AttributeName": "lock_index", "KeyType": "HASH"},
        {"AttributeName": "pk", "KeyType": "RANGE"},
    ]


@pytest.mark.parametrize(
    ("status", "terminal"),
    [(Status(s), False) for s in OPEN] + [(Status(s), True) for s in TERMINAL],
)
def test_terminal_statuses(status: Status, terminal: bool) -> None:
    assert status.terminal is terminal


def test_status_groups() -> None:
    assert set(OPEN) == {"STARTING", "RUNNING", "PAUSED", "ROLLING_BACK"}
    assert set(ACTIVE) == {"RUNNING", "PAUSED"}
    assert set(TERMINAL) == {
        "SUCCEEDED",
        "FAILED",
        "ABORTED",
        "TIMED_OUT",
        "REJECTED",
        "SUPERSEDED",
        "ROLLBACK_FAILED",
    }


@pytest.mark.parametrize(
    ("cluster", "name"),
    [
        ("prod", "prod"),
        (f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod", "prod"),
        (f"arn:aws-cn:ecs:cn-north-1:{ACCOUNT}:cluster/my_cluster-2", "my_cluster-2"),
    ],
)
def test_cluster_name(cluster: str, name: str) -> None:
    assert cluster_name(cluster) == name


# ---- named conditions: the Python twin says which part failed -------------------------------------


@pytest.mark.parametrize(
    ("item", "failing"),
    [
        pytest.param(None, "exists", id="missing"),
        pytest.param({"pk": "p", "execution_arn": "other", "status": "RUNNING"}, "owner", id="owner"),
        pytest.param({"pk": "p", "execution_arn": "me", "status": "FAILED"}, "status", id="status"),
        pytest.param(
            {"pk": "p", "execution_arn": "me", "status": "RUNNING", "rollback": {"status": "FAILED"}},
            "no_rollback_intent",
            id="intent",
        ),
        pytest.param(
            {
                "pk": "p",
                "execution_arn": "me",
                "status": "RUNNING",
                "shift": {"until": "2999-01-01T00:00:00Z"},
            },
            "lease_free",
            id="lease",
        ),
        pytest.param(
            {
                "pk": "p",
                "execution_arn": "me",
                "status": "RUNNING",
                "shift": {"until": "2000-01-01T00:00:00Z"},
            },
            None,
            id="expired-lease-holds",
        ),
    ],
)
def test_conditions_name_the_first_part_that_fails(item: dict[str, Any] | None, failing: str | None) -> None:
    conditions = (
        cond.deployment_exists()
        & cond.owned_by("me")
        & cond.status_in(Status.RUNNING)
        & cond.no_rollback_intent()
        & cond.lease_free("2026-01-01T00:00:00Z")
    )
    found = conditions.failing(item)
    assert (found.name if found else None) == failing
    # Every part has its own placeholders, so parts of the same kind can be combined.
    assert len(conditions.values) == 3


# ---- pairs ----------------------------------------------------------------------------------------------


def test_put_and_get_pair(table: Store) -> None:
    spec = fake_spec()
    stored = table.put_pair(spec, live_service=BLUE, idle_baseline="ecs-svc/0000")

    got = table.get_pair(PAIR)

    assert got == stored
    assert got.spec == spec
    assert (got.live_service, got.idle_service, got.idle_baseline) == (BLUE, GREEN, "ecs-svc/0000")
    assert got.cluster_arn is None
    assert table.list_pairs() == [got]
    assert table.active_deployment_id(PAIR) is None


def test_pair_keeps_its_cluster_arn(table: Store) -> None:
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"
    table.put_pair(fake_spec(), live_service=BLUE, idle_baseline=None, cluster_arn=arn)
    assert table.get_pair(PAIR).cluster_arn == arn


@pytest.mark.parametrize(
    ("cluster", "service", "found"),
    [
        (CLUSTER, BLUE, True),
        (CLUSTER, GREEN, True),
        (f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}", GREEN, True),
        ("staging", GREEN, False),
        (CLUSTER, "web-purple", False),
    ],
)
def test_pair_for_service(pair: Store, cluster: str, service: str, found: bool) -> None:
    got = pair.pair_for_service(cluster, service)
    assert (got.spec.name if got else None) == (PAIR if found else None)


def test_unknown_pair(table: Store) -> None:
    with pytest.raises(UnknownServicePair, match="no service pair named 'nope'"):
        table.get_pair("nope")


def test_index_entries_of_a_pair(table: Store) -> None:
    table.put_pair(
        fake_spec(alarms=(PAIR_ALARM,), service_alarms={GREEN: ("web-green-5xx",)}),
        live_service=BLUE,
        idle_baseline=None,
    )
    assert _index_entries(table) == {
        (f"SERVICE#{CLUSTER}#{BLUE}", PAIR),
        (f"SERVICE#{CLUSTER}#{GREEN}", PAIR),
        (f"ALARM#{PAIR_ALARM}", PAIR),
        ("ALARM#web-green-5xx", PAIR),
    }
    assert table.pairs_for_alarm(PAIR_ALARM) == [PAIR]
    assert table.pairs_for_alarm("web-green-5xx") == [PAIR]
    assert table.pairs_for_alarm("nobody") == []


def test_reregistering_replaces_the_index_entries_exactly(table: Store) -> None:
    table.put_pair(
        fake_spec(alarms=("a-shared", "a-dropped"), service_alarms={GREEN: ("a-green",)}),
        live_service=BLUE,
        idle_baseline=None,
    )
    table.put_pair(
        fake_spec("shop", services=("shop-blue", "shop-green"), alarms=("a-shared",)),
        live_service="shop-blue",
        idle_baseline=None,
    )

    # The pair now names other services (green renamed) and other alarms.
    table.put_pair(
        fake_spec(services=(BLUE, "web-teal"), alarms=("a-shared", "a-new")),
        live_service=BLUE,
        idle_baseline="ecs-svc/9",
    )

    assert _index_entries(table) == {
        (f"SERVICE#{CLUSTER}#{BLUE}", PAIR),
        (f"SERVICE#{CLUSTER}#web-teal", PAIR),
        ("ALARM#a-shared", PAIR),
        ("ALARM#a-new", PAIR),
        (f"SERVICE#{CLUSTER}#shop-blue", "shop"),
        (f"SERVICE#{CLUSTER}#shop-green", "shop"),
        ("ALARM#a-shared", "shop"),
    }
    assert table.pair_for_service(CLUSTER, GREEN) is None
    assert table.pairs_for_alarm("a-shared") == ["shop", PAIR]
    assert table.pairs_for_alarm("a-dropped") == []
    assert table.pairs_for_alarm("a-green") == []
    got = table.get_pair(PAIR)
    assert (got.live_service, got.idle_baseline) == (BLUE, "ecs-svc/9")


def test_a_service_belongs_to_one_pair(pair: Store) -> None:
    before = _everything(pair)
    with pytest.raises(ValueError, match="already belongs to another registered pair"):
        pair.put_pair(
            fake_spec("shop", services=("shop-blue", GREEN)), live_service="shop-blue", idle_baseline=None
        )
    assert _everything(pair) == before
    with pytest.raises(UnknownServicePair):
        pair.get_pair("shop")


@pytest.mark.parametrize("state", [_running, _rolling_back, _paused])
def test_no_reregistration_or_deletion_while_a_deployment_holds_the_lock(
    pair: Store, state: Callable[[Store], str]
) -> None:
    state(pair)
    before = _everything(pair)

    with pytest.raises(ValueError, match="has an active deployment"):
        pair.put_pair(fake_spec(services=(BLUE, "web-teal")), live_service=GREEN, idle_baseline=None)
    with pytest.raises(ValueError, match="has an active deployment; wait for it to end before deregistering"):
        pair.delete_pair(PAIR)

    assert _everything(pair) == before


def test_delete_pair_removes_exactly_its_items(pair: Store) -> None:
    pair.put_pair(
        fake_spec("shop", services=("shop-blue", "shop-green")), live_service="shop-blue", idle_baseline=None
    )
    _closed(pair)  # a closed deployment does not hold the pair

    deleted = pair.delete_pair(PAIR)

    assert deleted.spec.name == PAIR
    assert pair.find_pair(PAIR) is None
    assert pair.pair_for_service(CLUSTER, GREEN) is None
    assert pair.pairs_for_alarm(PAIR_ALARM) == ["shop"]
    assert {p.spec.name for p in pair.list_pairs()} == {"shop"}
    assert pair.find_deployment(PAIR, "d1") is not None  # history stays


def test_list_pairs_sorted(table: Store) -> None:
    for name in ("zeta", "alpha", "mid"):
        table.put_pair(
            fake_spec(name, services=(f"{name}-a", f"{name}-b")), live_service=f"{name}-a", idle_baseline=None
        )
    assert [p.spec.name for p in table.list_pairs()] == ["alpha", "mid", "zeta"]


# ---- claims ------------------------------------------------------------------------------------------


def test_claim_creates_the_owned_record_and_the_leased_lock(pair: Store) -> None:
    before = datetime.now(UTC).replace(microsecond=0)  # the table stores milliseconds
    claim = _claim(pair, lease=600)

    assert claim.outcome == "claimed"
    record = pair.get_deployment(PAIR, "d1")
    assert record.status is Status.STARTING
    assert (record.service, record.live_service, record.release) == (GREEN, BLUE, RELEASE)
    assert record.execution_arn == owner("d1")
    assert record.snapshot is None
    assert record.rollback is None
    assert [h["event"] for h in record.history] == ["claimed"]
    lock = pair.get_lock(PAIR)
    assert lock is not None
    assert lock.deployment_id == "d1"
    assert lock.lease_until is not None
    lease_end = datetime.fromisoformat(lock.lease_until.replace("Z", "+00:00"))
    assert lease_end >= before + timedelta(seconds=600)
    assert lock.leased(before + timedelta(seconds=599))
    assert not lock.leased(lease_end)
    assert pair.list_locks() == [lock]
    raw = _item(pair, "LOCK")
    assert raw is not None
    assert raw["lock_index"] == "LOCK"


@pytest.mark.parametrize(
    ("second", "outcome"),
    [
        pytest.param(("d1", RELEASE), "duplicate", id="same-release"),
        pytest.param(("d2", OTHER), "busy", id="other-release"),
    ],
)
def test_claim_while_claimed(pair: Store, second: tuple[str, Release], outcome: str) -> None:
    _claim(pair)
    before = _everything(pair)

    claim = _claim(pair, *second)

    assert claim.outcome == outcome
    if outcome == "duplicate":
        assert claim.existing is not None
        assert claim.existing.deployment_id == "d1"
        assert claim.existing.status is Status.STARTING
        assert claim.existing.execution_arn == owner("d1")
    else:
        assert claim.existing is None
        assert claim.active_deployment_id == "d1"
    assert _everything(pair) == before


def test_claim_of_a_closed_release_is_a_duplicate(pair: Store) -> None:
    _closed(pair)
    claim = _claim(pair)
    assert claim.outcome == "duplicate"
    assert claim.existing is not None
    assert claim.existing.status is Status.FAILED
    assert pair.get_lock(PAIR) is None


def test_claim_for_a_service_that_became_live(pair: Store) -> None:
    claim = pair.claim(
        PAIR, "d1", Release(BLUE, "ecs-svc/3", "td"), GREEN, execution_arn=owner("d1"), lease_seconds=LEASE
    )  # the caller's view of the pair is stale: blue is live
    assert claim.outcome == "live"
    assert pair.find_deployment(PAIR, "d1") is None
    assert pair.active_deployment_id(PAIR) is None


def test_claim_retries_when_the_lock_is_released_meanwhile(pair: Store) -> None:
    """The write fails on the lock, which is released before the reads that explain it."""
    _running(pair, "d0", OTHER)
    real = pair.ddb

    class ReleasesLockOnFailure:
        calls = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def transact_write_items(self, **kwargs: Any) -> Any:
            type(self).calls += 1
            try:
                return real.transact_write_items(**kwargs)
            except ClientError:
                if type(self).calls == 1:
                    Store(TABLE, client=real).finish(PAIR, "d0", Status.FAILED, "rolled back")
                raise

    racing = Store(TABLE, client=ReleasesLockOnFailure())

    claim = _claim(racing)

    assert claim.outcome == "claimed"
    assert ReleasesLockOnFailure.calls == 2
    assert pair.active_deployment_id(PAIR) == "d1"


def test_concurrent_claims_of_different_releases_take_one_lock(pair: Store) -> None:
    barrier = threading.Barrier(8)

    def claim(i: int) -> str:
        barrier.wait(timeout=10)
        return str(_claim(pair, f"d{i}", Release(GREEN, f"ecs-svc/{i}", "td")).outcome)

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(claim, range(8)))

    assert sorted(outcomes) == ["busy"] * 7 + ["claimed"]
    winner = pair.active_deployment_id(PAIR)
    assert winner == f"d{outcomes.index('claimed')}"
    assert [d.deployment_id for d in pair.list_deployments(PAIR)] == [winner]


def test_record_rejected_is_idempotent(pair: Store) -> None:
    _running(pair)
    assert pair.record_rejected(PAIR, "d2", OTHER, BLUE, "d1 is active") is True
    first = _item(pair, "DEPLOYMENT#d2")

    assert pair.record_rejected(PAIR, "d2", OTHER, BLUE, "something else") is False

    assert _item(pair, "DEPLOYMENT#d2") == first
    rejected = pair.get_deployment(PAIR, "d2")
    assert (rejected.status, rejected.reason) == (Status.REJECTED, "d1 is active")
    assert rejected.ended_at is not None
    assert rejected.execution_arn is None
    assert pair.active_deployment_id(PAIR) == "d1"


# ---- the owner's writes: fenced by the execution ARN ------------------------------------------------


def test_mark_started_only_by_the_owner_and_only_from_starting(pair: Store) -> None:
    _claim(pair)
    pair.mark_started(PAIR, "d1", STRANGER)  # not the owner: no-op
    assert pair.get_deployment(PAIR, "d1").status is Status.STARTING

    pair.mark_started(PAIR, "d1", owner("d1"))
    pair.mark_started(PAIR, "d1", owner("d1"))  # a duplicate delivery: no-op

    record = pair.get_deployment(PAIR, "d1")
    assert (record.status, record.execution_arn) == (Status.RUNNING, owner("d1"))
    assert [h["event"] for h in record.history] == ["claimed", "started"]


def _lease_args(deployment_id: str = "d1", who: str | None = None) -> dict[str, Any]:
    return {
        "owner": who or owner(deployment_id),
        "weights": STEP1,
        "step_index": 0,
        "percent": 10,
        "lease_seconds": 60,
    }


def _record_args(who: str) -> dict[str, Any]:
    return {
        "owner": who,
        "step_index": 0,
        "percent": 10,
        "weights": STEP1,
        "bake_seconds": 60,
        "change_id": None,
        "message": "10%",
    }


OWNER_WRITES: list[Any] = [
    pytest.param(lambda s, who: s.begin(PAIR, "d1", owner=who, snapshot=SNAP, spec=fake_spec()), id="begin"),
    pytest.param(lambda s, who: s.arm_listener(PAIR, "d1", owner=who, token="t"), id="arm_listener"),
    pytest.param(lambda s, who: s.note(PAIR, "d1", owner=who, event="e", message="m"), id="note"),
    pytest.param(lambda s, who: s.save_progress(PAIR, "d1", owner=who, inconclusive=1), id="save_progress"),
    pytest.param(lambda s, who: s.begin_shift(PAIR, "d1", **_lease_args(who=who)), id="begin_shift"),
    pytest.param(lambda s, who: s.record_shift(PAIR, "d1", **_record_args(who)), id="record_shift"),
    pytest.param(lambda s, who: s.request_rollback(PAIR, "d1", _intent(), owner=who), id="request_rollback"),
    pytest.param(lambda s, who: s.finish(PAIR, "d1", Status.SUCCEEDED, "ok", owner=who), id="finish"),
]


@pytest.mark.parametrize("write", OWNER_WRITES)
def test_every_owner_write_refuses_another_execution(pair: Store, write: Any) -> None:
    _begun(pair)
    before = _everything(pair)

    with pytest.raises(NotOwner, match=f"owned by execution {owner('d1')}"):
        write(pair, STRANGER)

    assert _everything(pair) == before


@pytest.mark.parametrize("write", OWNER_WRITES[:5])
def test_owner_writes_stop_at_a_rollback_intent(pair: Store, write: Any) -> None:
    _rolling_back(pair)
    before = _everything(pair)

    with pytest.raises(RollbackRequested, match="is rolling back: alarm x"):
        write(pair, owner("d1"))

    assert _everything(pair) == before


@pytest.mark.parametrize("write", OWNER_WRITES[:-1])  # finish of a closed record: see test_finish_closes_once
def test_owner_writes_to_a_closed_record_are_refused(pair: Store, write: Any) -> None:
    _closed(pair)
    before = _everything(pair)

    with pytest.raises(DeploymentClosed, match="is FAILED: done"):
        write(pair, owner("d1"))

    assert _everything(pair) == before


@pytest.mark.parametrize("write", OWNER_WRITES)
def test_owner_writes_to_a_missing_record_are_refused(pair: Store, write: Any) -> None:
    before = _everything(pair)
    with pytest.raises(DeploymentNotFound, match="d1"):
        write(pair, owner("d1"))
    assert _everything(pair) == before


def test_begin_keeps_the_first_snapshot(pair: Store) -> None:
    _running(pair)
    spec = fake_spec()

    first = pair.begin(PAIR, "d1", owner=owner("d1"), snapshot=SNAP, spec=spec)
    pair.begin_shift(PAIR, "d1", **_lease_args())
    pair.record_shift(PAIR, "d1", **_record_args(owner("d1")))
    second = pair.begin(PAIR, "d1", owner=owner("d1"), snapshot=STEP1, spec=spec)

    assert first.snapshot == second.snapshot == SNAP
    assert first.weights == SNAP
    assert second.weights == STEP1  # the live weights stay what the ramp wrote
    assert second.spec == first.spec == spec.model_dump(mode="json")
    assert (second.step_index, second.percent) == (0, 10)


def test_begin_moves_a_starting_record_to_running(pair: Store) -> None:
    _claim(pair)
    assert pair.begin(PAIR, "d1", owner=owner("d1"), snapshot=SNAP, spec=fake_spec()).status is Status.RUNNING


def test_begin_of_a_record_paused_before_it_began_keeps_it_paused(pair: Store) -> None:
    _running(pair)
    pair.pause(PAIR, "d1", by="jane", reason="hold the next release")

    record = pair.begin(PAIR, "d1", owner=owner("d1"), snapshot=SNAP, spec=fake_spec())

    assert record.status is Status.PAUSED
    assert record.snapshot == record.weights == SNAP
    assert record.paused is not None


def test_begin_of_a_rolling_back_record_is_refused(pair: Store) -> None:
    _running(pair)
    pair.request_rollback(PAIR, "d1", _intent())
    with pytest.raises(RollbackRequested):
        pair.begin(PAIR, "d1", owner=owner("d1"), snapshot=SNAP, spec=fake_spec())
    assert pair.get_deployment(PAIR, "d1").snapshot is None


# ---- the shift lease ---------------------------------------------------------------------------------


def test_shift_takes_a_lease_then_records_and_drops_it(pair: Store) -> None:
    _begun(pair)
    before = datetime.now(UTC).replace(microsecond=0)

    leased = pair.begin_shift(PAIR, "d1", **_lease_args())

    assert leased.shift is not None
    assert (leased.shift.weights, leased.shift.step_index, leased.shift.percent) == (STEP1, 0, 10)
    assert not leased.shift.expired(before + timedelta(seconds=59))  # leased for 60 s
    assert leased.weights == SNAP  # nothing recorded as written yet

    recorded = pair.record_shift(PAIR, "d1", **{**_record_args(owner("d1")), "change_id": "C123"})

    assert recorded.shift is None
    assert (recorded.step_index, recorded.percent, recorded.weights) == (0, 10, STEP1)
    assert recorded.pending_change == "C123"
    assert recorded.shifted_at is not None
    assert recorded.bake_until is not None
    assert recorded.bake_until > recorded.shifted_at
    assert recorded.history[-1] == {**recorded.history[-1], "event": "shifted", "percent": 10}


def test_a_live_lease_refuses_a_second_shift(pair: Store) -> None:
    _begun(pair)
    pair.begin_shift(PAIR, "d1", **_lease_args())
    before = _everything(pair)

    with pytest.raises(ShiftInFlight, match="still in flight"):
        pair.begin_shift(PAIR, "d1", **{**_lease_args(), "weights": {BLUE: 50, GREEN: 50}})

    assert _everything(pair) == before


def test_an_expired_lease_does_not_block_the_next_shift(pair: Store) -> None:
    _begun(pair)
    pair.begin_shift(PAIR, "d1", **{**_lease_args(), "lease_seconds": -1})

    again = pair.begin_shift(PAIR, "d1", **{**_lease_args(), "weights": {BLUE: 50, GREEN: 50}})

    assert again.shift is not None
    assert again.shift.weights == {BLUE: 50, GREEN: 50}


def test_no_shift_while_paused(pair: Store) -> None:
    _paused(pair)
    with pytest.raises(WriteRefused) as refused:
        pair.begin_shift(PAIR, "d1", **_lease_args())
    assert refused.value.condition == "status"
    assert pair.get_deployment(PAIR, "d1").shift is None


def test_the_lease_owner_may_record_its_shift_during_a_rollback(pair: Store) -> None:
    """A closed record must tell the truth about the weights, even those written too late."""
    _begun(pair)
    pair.begin_shift(PAIR, "d1", **_lease_args())
    pair.request_rollback(PAIR, "d1", _intent())

    recorded = pair.record_shift(PAIR, "d1", **_record_args(owner("d1")))

    assert recorded.status is Status.ROLLING_BACK
    assert recorded.weights == STEP1
    assert recorded.shift is None


def test_drop_shift_releases_a_lease_quietly(pair: Store) -> None:
    _begun(pair)
    pair.begin_shift(PAIR, "d1", **_lease_args())
    pair.drop_shift(PAIR, "d1", owner=STRANGER)  # not the owner: nothing happens
    assert pair.get_deployment(PAIR, "d1").shift is not None
    pair.drop_shift(PAIR, "d1", owner=owner("d1"))
    assert pair.get_deployment(PAIR, "d1").shift is None


# ---- progress ----------------------------------------------------------------------------------------


def test_save_progress_sets_and_clears_flags(pair: Store) -> None:
    _begun(pair)
    pair.arm_listener(PAIR, "d1", owner=owner("d1"), token="tok")
    pair.set_command(PAIR, "d1", Command("promote", True, False, "jane", "go", now_iso()))

    saved = pair.save_progress(
        PAIR, "d1", owner=owner("d1"), inconclusive=2, sync_checks=3, pending_change="C1"
    )
    assert (saved.inconclusive, saved.sync_checks, saved.pending_change) == (2, 3, "C1")
    assert saved.command is not None
    assert saved.listener_token == "tok"

    kept = pair.save_progress(PAIR, "d1", owner=owner("d1"))  # pending_change=False keeps it
    assert kept.pending_change == "C1"

    cleared = pair.save_progress(PAIR, "d1", owner=owner("d1"), pending_change=None, clear_command=True)
    assert cleared.pending_change is None
    assert cleared.command is None
    assert cleared.inconclusive == 2


def test_note_needs_an_active_record(pair: Store) -> None:
    _claim(pair)  # STARTING: the owner's steps have not begun
    with pytest.raises(WriteRefused) as refused:
        pair.note(PAIR, "d1", owner=owner("d1"), event="e", message="m")
    assert refused.value.condition == "status"


def test_watch_done_is_set_by_the_owner_and_cleared_by_a_new_watch(pair: Store) -> None:
    _begun(pair)
    pair.arm_listener(PAIR, "d1", owner=owner("d1"), token="tok-1")

    done = pair.save_progress(PAIR, "d1", owner=owner("d1"), watch_done="tok-1")
    kept = pair.save_progress(PAIR, "d1", owner=owner("d1"), inconclusive=0)  # False keeps it
    rearmed = pair.arm_listener(PAIR, "d1", owner=owner("d1"), token="tok-2")

    assert done.watch_done == kept.watch_done == "tok-1"
    assert rearmed.listener_token == "tok-2"
    assert rearmed.watch_done is None
    pair.save_progress(PAIR, "d1", owner=owner("d1"), watch_done="tok-2")
    assert pair.save_progress(PAIR, "d1", owner=owner("d1"), watch_done=None).watch_done is None


def test_judged_command_marks_a_promote_order_as_judged(pair: Store) -> None:
    _begun(pair)
    pair.set_command(PAIR, "d1", Command("promote", True, False, "jane", "go", now_iso()))

    judged = pair.save_progress(PAIR, "d1", owner=owner("d1"), judged_command=True)

    assert judged.command is not None
    assert (judged.command.full, judged.command.skip_analysis, judged.command.by) == (True, True, "jane")
    cleared = pair.save_progress(PAIR, "d1", owner=owner("d1"), clear_command=True, judged_command=True)
    assert cleared.command is None


def test_history_is_capped_oldest_first(pair: Store) -> None:
    _begun(pair)
    for i in range(HISTORY_LIMIT + 5):
        pair.note(PAIR, "d1", owner=owner("d1"), event="tick", message=f"n{i}")

    record = pair.get_deployment(PAIR, "d1")

    assert len(record.history) == HISTORY_LIMIT
    assert record.history[-1]["message"] == f"n{HISTORY_LIMIT + 4}"
    # claimed, started, snapshot and the first 5 notes were dropped, oldest first.
    assert [h["message"] for h in record.history[:2]] == ["n5", "n6"]
    assert all(h["event"] == "tick" for h in record.history)

    pair.finish(PAIR, "d1", Status.FAILED, "done")
    closed = pair.get_deployment(PAIR, "d1")
    assert len(closed.history) == HISTORY_LIMIT
    assert closed.history[-1]["event"] == "failed"
    assert closed.history[0]["message"] == "n6"


def test_record_refused_notes_the_execution_without_changing_anything_else(pair: Store) -> None:
    _begun(pair)
    before = pair.get_deployment(PAIR, "d1")

    pair.record_refused(PAIR, "d1", STRANGER, "not the deployment's execution")

    after = pair.get_deployment(PAIR, "d1")
    assert after.history[-1]["event"] == "refused"
    assert after.history[-1]["message"] == "execution manual-rerun-1 refused: not the deployment's execution"
    assert (after.status, after.execution_arn, after.weights) == (before.status, before.execution_arn, SNAP)


# ---- rollback intents ----------------------------------------------------------------------------------


def test_first_rollback_intent_wins(pair: Store) -> None:
    _begun(pair)
    pair.arm_listener(PAIR, "d1", owner=owner("d1"), token="tok")

    first = pair.request_rollback(PAIR, "d1", _intent(Status.FAILED, "alarm web-green-5xx"))
    second = pair.request_rollback(PAIR, "d1", _intent(Status.ABORTED, "aborted by jane"))

    assert first.status is second.status is Status.ROLLING_BACK
    assert second.rollback is not None
    assert (second.rollback.status, second.rollback.reason) == (Status.FAILED, "alarm web-green-5xx")
    assert second.listener_token == "tok"  # the watch still needs to be ended
    assert [h["event"] for h in second.history].count("rolling_back") == 1


def test_a_later_intent_adds_a_successor_once(pair: Store) -> None:
    _begun(pair)
    pair.request_rollback(PAIR, "d1", _intent(Status.FAILED, "alarm"))

    with_successor = pair.request_rollback(PAIR, "d1", _intent(Status.SUPERSEDED, "new release", OTHER))
    later = Release(GREEN, "ecs-svc/3333", "td:4")
    again = pair.request_rollback(PAIR, "d1", _intent(Status.SUPERSEDED, "newer release", later))

    assert with_successor.rollback is not None
    assert (with_successor.rollback.status, with_successor.rollback.reason) == (Status.FAILED, "alarm")
    assert with_successor.rollback.successor == OTHER
    assert again.rollback is not None
    assert again.rollback.successor == OTHER  # the first successor stays
    assert [h["event"] for h in again.history].count("superseded") == 1


@pytest.mark.parametrize("state", [_claim, _running, _paused])
def test_rollback_intent_is_recorded_from_every_open_status(
    pair: Store, state: Callable[[Store], Any]
) -> None:
    state(pair)
    intent = _intent(Status.ABORTED, "aborted by jane", OTHER)

    record = pair.request_rollback(PAIR, "d1", intent)

    assert record.status is Status.ROLLING_BACK
    assert record.rollback == intent
    assert record.history[-1]["event"] == "rolling_back"
    assert pair.active_deployment_id(PAIR) == "d1"  # the lock stays until the rollback closes


def test_rollback_intent_on_a_closed_record_is_refused(pair: Store) -> None:
    _closed(pair)
    before = _everything(pair)
    with pytest.raises(DeploymentClosed):
        pair.request_rollback(PAIR, "d1", _intent())
    assert _everything(pair) == before


def test_record_restored_only_while_rolling_back(pair: Store) -> None:
    _begun(pair)
    pair.record_restored(PAIR, "d1", {BLUE: 1, GREEN: 0}, "restored")  # RUNNING: no-op
    assert pair.get_deployment(PAIR, "d1").weights == SNAP

    pair.request_rollback(PAIR, "d1", _intent())
    pair.record_restored(PAIR, "d1", SNAP, "traffic restored")

    record = pair.get_deployment(PAIR, "d1")
    assert record.weights == SNAP
    assert record.status is Status.ROLLING_BACK
    assert record.history[-1]["event"] == "restored"


# ---- operators: pause, resume, promote orders ------------------------------------------------------


def test_pause_and_resume(pair: Store) -> None:
    _begun(pair)

    paused = pair.pause(PAIR, "d1", by="jane", reason="look at the logs")

    assert paused.status is Status.PAUSED
    assert paused.paused is not None
    assert (paused.paused["by"], paused.paused["reason"]) == ("jane", "look at the logs")

    resumed = pair.resume(PAIR, "d1", by="joe", reason="fine")

    assert resumed.status is Status.RUNNING
    assert resumed.paused is None
    assert [h["event"] for h in resumed.history][-2:] == ["paused", "resumed"]


@pytest.mark.parametrize(
    ("state", "action", "refusal", "match"),
    [
        pytest.param(_paused, "pause", WriteRefused, "is PAUSED; the write needed status", id="pause-paused"),
        pytest.param(
            _begun, "resume", WriteRefused, "is RUNNING; the write needed status", id="resume-running"
        ),
        pytest.param(_claim, "pause", WriteRefused, "is STARTING", id="pause-starting"),
        pytest.param(_claim, "promote", WriteRefused, "is STARTING", id="promote-starting"),
        pytest.param(_rolling_back, "pause", RollbackRequested, "rolling back", id="pause-rolling-back"),
        pytest.param(_rolling_back, "resume", RollbackRequested, "rolling back", id="resume-rolling-back"),
        pytest.param(_rolling_back, "promote", RollbackRequested, "rolling back", id="promote-rolling-back"),
        pytest.param(_closed, "pause", DeploymentClosed, "is FAILED", id="pause-closed"),
        pytest.param(_closed, "promote", DeploymentClosed, "is FAILED", id="promote-closed"),
    ],
)
def test_operator_writes_refused_naming_why(
    pair: Store, state: Callable[[Store], Any], action: str, refusal: type[Exception], match: str
) -> None:
    state(pair)
    before = _everything(pair)
    writes: dict[str, Callable[[], Any]] = {
        "pause": lambda: pair.pause(PAIR, "d1", by="jane", reason="r"),
        "resume": lambda: pair.resume(PAIR, "d1", by="jane", reason="r"),
        "promote": lambda: pair.set_command(
            PAIR, "d1", Command("promote", False, False, "jane", "r", now_iso())
        ),
    }
    with pytest.raises(refusal, match=match):
        writes[action]()
    assert _everything(pair) == before


def test_set_command_stores_the_promote_order(pair: Store) -> None:
    _paused(pair)
    order = Command("promote", True, True, "jane", "ship it", now_iso())

    record = pair.set_command(PAIR, "d1", order)

    assert record.command == order
    assert record.history[-1]["event"] == "promote_requested"
    assert record.history[-1]["message"] == "promote --full --skip-analysis requested by jane: ship it"


# ---- stopped tasks -------------------------------------------------------------------------------------


def test_count_stopped_task_counts_each_task_once(pair: Store) -> None:
    _begun(pair)
    task = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/aaaa"

    first = pair.count_stopped_task(PAIR, "d1", task, "stopped: EssentialContainerExited")
    again = pair.count_stopped_task(PAIR, "d1", task, "stopped: EssentialContainerExited")
    other = pair.count_stopped_task(PAIR, "d1", task.replace("aaaa", "bbbb"), "stopped")

    assert first is not None
    assert first.stopped_tasks == frozenset({task})
    assert again is None
    assert other is not None
    assert other.stopped_tasks == frozenset({task, task.replace("aaaa", "bbbb")})
    record = pair.get_deployment(PAIR, "d1")
    assert [h["event"] for h in record.history].count("task_stopped") == 2
    assert record.to_dict()["stopped_tasks"] == 2


def test_count_stopped_task_of_a_closed_record_is_ignored(pair: Store) -> None:
    _closed(pair)
    before = _everything(pair)
    assert pair.count_stopped_task(PAIR, "d1", "arn:task", "stopped") is None
    assert _everything(pair) == before


# ---- finishing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status(s) for s in TERMINAL])
def test_finish_closes_once_and_releases_the_lock(pair: Store, status: Status) -> None:
    _begun(pair)
    pair.arm_listener(PAIR, "d1", owner=owner("d1"), token="tok")
    pair.begin_shift(PAIR, "d1", **_lease_args())

    assert pair.finish(PAIR, "d1", status, "because", weights=SNAP) is True

    record = pair.get_deployment(PAIR, "d1")
    assert (record.status, record.reason, record.weights) == (status, "because", SNAP)
    assert record.ended_at is not None
    assert record.history[-1]["event"] == status.value.lower()
    assert (record.shift, record.listener_token, record.command) == (None, None, None)
    assert pair.active_deployment_id(PAIR) is None
    assert pair.list_locks() == []
    before = _everything(pair)
    assert pair.finish(PAIR, "d1", Status.ABORTED, "again") is False
    assert _everything(pair) == before


@pytest.mark.parametrize("status", [Status(s) for s in OPEN])
def test_finish_needs_a_terminal_status(pair: Store, status: Status) -> None:
    _running(pair)
    with pytest.raises(ValueError, match="not a terminal status"):
        pair.finish(PAIR, "d1", status, "x")


def test_finish_from_the_wrong_status_is_refused_naming_it(pair: Store) -> None:
    _begun(pair)
    before = _everything(pair)
    with pytest.raises(WriteRefused, match="is RUNNING; the write needed status") as refused:
        pair.finish(PAIR, "d1", Status.FAILED, "x", from_statuses=(Status.ROLLING_BACK,))
    assert refused.value.condition == "status"
    assert _everything(pair) == before


@pytest.mark.parametrize("baseline", ["ecs-svc/4242", None])
def test_finish_with_promotion_swaps_roles(pair: Store, baseline: str | None) -> None:
    _begun(pair)

    pair.finish(
        PAIR,
        "d1",
        Status.SUCCEEDED,
        "ok",
        promote=(GREEN, baseline),
        owner=owner("d1"),
        from_statuses=(Status.RUNNING, Status.PAUSED),
    )

    got = pair.get_pair(PAIR)
    assert (got.live_service, got.idle_service, got.idle_baseline) == (GREEN, BLUE, baseline)
    assert pair.active_deployment_id(PAIR) is None
    spec_item = _item(pair, "SPEC")
    assert spec_item is not None
    assert spec_item["promoted_at"]


def _handover(deployment_id: str = "d2", release: Release = OTHER, lease: float = LEASE) -> Handover:
    return Handover(deployment_id, release, BLUE, owner(deployment_id), lease)


def test_finish_hands_the_lock_to_a_successor(pair: Store) -> None:
    _rolling_back(pair)
    before = datetime.now(UTC).replace(microsecond=0)

    closed = pair.finish(
        PAIR,
        "d1",
        Status.SUPERSEDED,
        "new release",
        successor=_handover(),
        from_statuses=(Status.ROLLING_BACK,),
    )

    assert closed is True
    assert pair.get_deployment(PAIR, "d1").status is Status.SUPERSEDED
    successor = pair.get_deployment(PAIR, "d2")
    assert successor.status is Status.STARTING
    assert successor.release == OTHER
    assert (successor.service, successor.live_service) == (GREEN, BLUE)
    assert successor.execution_arn == owner("d2")
    assert [h["event"] for h in successor.history] == ["claimed"]
    lock = pair.get_lock(PAIR)
    assert lock is not None
    assert lock.deployment_id == "d2"
    assert lock.leased(before + timedelta(seconds=LEASE - 1))  # a fresh lease for the successor
    assert [lk.deployment_id for lk in pair.list_locks()] == ["d2"]


def test_finish_without_handover_when_the_successor_is_already_recorded(pair: Store) -> None:
    _rolling_back(pair)
    pair.record_rejected(PAIR, "d2", OTHER, BLUE, "seen before")

    closed = pair.finish(
        PAIR,
        "d1",
        Status.SUPERSEDED,
        "new release",
        successor=_handover(),
        from_statuses=(Status.ROLLING_BACK,),
    )

    assert closed is True
    assert pair.get_deployment(PAIR, "d1").status is Status.SUPERSEDED
    assert pair.get_deployment(PAIR, "d2").status is Status.REJECTED  # untouched
    assert pair.get_lock(PAIR) is None


def test_finish_does_not_release_another_deployments_lock(pair: Store) -> None:
    _running(pair)
    assert pair.record_rejected(PAIR, "d2", OTHER, BLUE, "busy")
    # d2 is terminal already: closing it again is a no-op and d1 keeps the lock.
    assert pair.finish(PAIR, "d2", Status.FAILED, "x") is False
    assert pair.active_deployment_id(PAIR) == "d1"


def test_finish_without_a_lock_still_closes(pair: Store) -> None:
    _running(pair)
    pair.ddb.delete_item(TableName=TABLE, Key={"pk": {"S": f"PAIR#{PAIR}"}, "sk": {"S": "LOCK"}})
    assert pair.finish(PAIR, "d1", Status.FAILED, "x") is True
    assert pair.get_deployment(PAIR, "d1").status is Status.FAILED


def test_finish_of_a_missing_record(pair: Store) -> None:
    with pytest.raises(DeploymentNotFound, match="no deployment 'd9'"):
        pair.finish(PAIR, "d9", Status.FAILED, "x")


# ---- the sweeper's lock operations --------------------------------------------------------------------


def test_extend_and_release_a_lock_only_for_its_holder(pair: Store) -> None:
    _claim(pair, lease=1)
    first = pair.get_lock(PAIR)
    assert first is not None

    assert pair.extend_lease(PAIR, "d2", 600) is False
    assert pair.extend_lease(PAIR, "d1", 600) is True
    extended = pair.get_lock(PAIR)
    assert extended is not None
    assert extended.lease_until is not None
    assert first.lease_until is not None
    assert extended.lease_until > first.lease_until

    assert pair.release_lock(PAIR, "d2") is False
    assert pair.get_lock(PAIR) is not None
    assert pair.release_lock(PAIR, "d1") is True
    assert pair.get_lock(PAIR) is None
    assert pair.extend_lease(PAIR, "d1", 600) is False


def test_list_locks_lists_held_locks_of_every_pair(pair: Store) -> None:
    pair.put_pair(
        fake_spec("shop", services=("shop-blue", "shop-green")), live_service="shop-blue", idle_baseline=None
    )
    pair.claim(
        "shop",
        "s1",
        Release("shop-green", "ecs-svc/5", "td"),
        "shop-blue",
        execution_arn=owner("s1"),
        lease_seconds=LEASE,
    )
    _claim(pair)

    assert [(lk.pair, lk.deployment_id) for lk in pair.list_locks()] == [("shop", "s1"), (PAIR, "d1")]


def test_release_stale_lock(pair: Store) -> None:
    _claim(pair)  # claimed, execution never started
    pair.release_stale_lock(PAIR, "d1")
    record = pair.get_deployment(PAIR, "d1")
    assert (record.status, record.reason) == (Status.ABORTED, "lock released by an operator")
    assert pair.active_deployment_id(PAIR) is None
    assert _claim(pair, "d2", OTHER).outcome == "claimed"


# ---- reading ---------------------------------------------------------------------------------------


def test_list_deployments_newest_first(pair: Store) -> None:
    for i in range(3):
        _running(pair, f"d{i}", Release(GREEN, f"ecs-svc/{i}", "td"))
        pair.finish(PAIR, f"d{i}", Status.FAILED, "x")
        time.sleep(0.002)
    assert [d.deployment_id for d in pair.list_deployments(PAIR)] == ["d2", "d1", "d0"]
    assert pair.list_deployments("other") == []


def test_deployment_round_trips_through_the_table(pair: Store) -> None:
    _begun(pair)
    pair.arm_listener(PAIR, "d1", owner=owner("d1"), token="tok")
    pair.begin_shift(PAIR, "d1", **_lease_args())
    pair.count_stopped_task(PAIR, "d1", "arn:task/1", "stopped")
    pair.pause(PAIR, "d1", by="jane", reason="r")
    pair.set_command(PAIR, "d1", Command("promote", False, True, "jane", "r", now_iso()))
    pair.request_rollback(PAIR, "d1", _intent(successor=OTHER))

    record = pair.get_deployment(PAIR, "d1")
    item = _item(pair, "DEPLOYMENT#d1")
    assert item is not None

    assert Deployment.from_item(item) == record
    assert record.shift is not None
    assert record.command is not None
    assert record.rollback is not None
    assert record.rollback.successor == OTHER
    as_dict = record.to_dict()
    assert as_dict["status"] == "ROLLING_BACK"
    assert as_dict["release"] == RELEASE.to_dict()
    assert as_dict["snapshot"] == SNAP
    assert as_dict["rollback"]["successor"] == OTHER.to_dict()
    assert as_dict["stopped_tasks"] == 1
    assert all(isinstance(v, int) for v in as_dict["weights"].values())


def test_get_deployment_missing(pair: Store) -> None:
    assert pair.find_deployment(PAIR, "nope") is None
    with pytest.raises(DeploymentNotFound, match="no deployment 'nope' of pair 'web'"):
        pair.get_deployment(PAIR, "nope")
