"""Store against a moto DynamoDB table with the template's key schema: every conditional write."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from ecs_canary.errors import DeploymentNotFound, UnknownServicePair
from ecs_canary.store import (
    TERMINAL,
    Deployment,
    Release,
    Status,
    Store,
    cluster_name,
)
from flow_fixtures import ACCOUNT, BLUE, CLUSTER, GREEN, PAIR, REGION, TABLE, fake_spec, table_schema

pytest_plugins = ["flow_fixtures"]

RELEASE = Release(GREEN, "ecs-svc/1111", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web-green:2")
OTHER = Release(GREEN, "ecs-svc/2222", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web-green:3")
SNAP = {BLUE: 100, GREEN: 0}


def _item(store: Store, sk: str, pair: str = PAIR) -> dict[str, Any] | None:
    return store._get({"pk": {"S": f"PAIR#{pair}"}, "sk": {"S": sk}})


def _everything(store: Store) -> list[dict[str, Any]]:
    return sorted(store.ddb.scan(TableName=TABLE)["Items"], key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


@pytest.fixture
def pair(table: Store) -> Store:
    table.put_pair(fake_spec(), live_service=BLUE, idle_baseline="ecs-svc/0000")
    return table


def _running(store: Store, deployment_id: str = "d1", release: Release = RELEASE) -> str:
    assert store.claim(PAIR, deployment_id, release, BLUE).outcome == "claimed"
    store.mark_started(PAIR, deployment_id, f"arn:aws:states:{REGION}:{ACCOUNT}:execution:sm:{deployment_id}")
    return deployment_id


# ---- the table itself -----------------------------------------------------------------------------


def test_table_keys_come_from_the_template(table: Store) -> None:
    described = table.ddb.describe_table(TableName=TABLE)["Table"]
    schema = table_schema()
    assert described["KeySchema"] == schema["KeySchema"]
    assert {a["AttributeName"]: a["AttributeType"] for a in described["AttributeDefinitions"]} == {
        "pk": "S",
        "sk": "S",
    }


@pytest.mark.parametrize(
    ("status", "terminal"),
    [(Status.STARTING, False), (Status.RUNNING, False)] + [(Status(s), True) for s in TERMINAL],
)
def test_terminal_statuses(status: Status, terminal: bool) -> None:
    assert status.terminal is terminal


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


# ---- pairs ----------------------------------------------------------------------------------------------


def test_put_and_get_pair(table: Store) -> None:
    spec = fake_spec()
    stored = table.put_pair(spec, live_service=BLUE, idle_baseline="ecs-svc/0000")

    got = table.get_pair(PAIR)

    assert got == stored
    assert got.spec == spec
    assert (got.live_service, got.idle_service, got.idle_baseline) == (BLUE, GREEN, "ecs-svc/0000")
    assert table.list_pairs() == [got]
    assert table.active_deployment_id(PAIR) is None


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


def test_pair_registered_by_cluster_arn_is_found_by_name(table: Store) -> None:
    table.put_pair(
        fake_spec(cluster=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"),
        live_service=BLUE,
        idle_baseline=None,
    )
    got = table.pair_for_service(CLUSTER, GREEN)
    assert got is not None
    assert got.idle_baseline is None


def test_unknown_pair(table: Store) -> None:
    with pytest.raises(UnknownServicePair, match="no service pair named 'nope'"):
        table.get_pair("nope")


def test_reregistering_swaps_nothing_else(pair: Store) -> None:
    pair.put_pair(fake_spec(), live_service=GREEN, idle_baseline="ecs-svc/9999")
    got = pair.get_pair(PAIR)
    assert (got.live_service, got.idle_baseline) == (GREEN, "ecs-svc/9999")


def test_a_service_belongs_to_one_pair(pair: Store) -> None:
    before = _everything(pair)
    with pytest.raises(ValueError, match="already belongs to another registered pair"):
        pair.put_pair(
            fake_spec("shop", services=("shop-blue", GREEN)), live_service="shop-blue", idle_baseline=None
        )
    assert _everything(pair) == before
    with pytest.raises(UnknownServicePair):
        pair.get_pair("shop")


def test_no_reregistration_while_a_deployment_is_active(pair: Store) -> None:
    _running(pair)
    with pytest.raises(ValueError, match="has an active deployment"):
        pair.put_pair(fake_spec(), live_service=GREEN, idle_baseline=None)
    assert pair.get_pair(PAIR).live_service == BLUE


def test_list_pairs_sorted(table: Store) -> None:
    for name in ("zeta", "alpha", "mid"):
        table.put_pair(
            fake_spec(name, services=(f"{name}-a", f"{name}-b")), live_service=f"{name}-a", idle_baseline=None
        )
    assert [p.spec.name for p in table.list_pairs()] == ["alpha", "mid", "zeta"]


# ---- claims ------------------------------------------------------------------------------------------


def test_claim_creates_the_record_and_the_lock(pair: Store) -> None:
    claim = pair.claim(PAIR, "d1", RELEASE, BLUE)

    assert claim.outcome == "claimed"
    record = pair.get_deployment(PAIR, "d1")
    assert record.status is Status.STARTING
    assert (record.service, record.live_service, record.release) == (GREEN, BLUE, RELEASE)
    assert record.execution_arn is None
    assert record.snapshot is None
    assert [h["event"] for h in record.history] == ["claimed"]
    assert pair.active_deployment_id(PAIR) == "d1"


@pytest.mark.parametrize(
    ("second", "outcome"),
    [
        pytest.param(("d1", RELEASE, BLUE), "duplicate", id="same-release"),
        pytest.param(("d2", OTHER, BLUE), "busy", id="other-release"),
    ],
)
def test_claim_while_claimed(pair: Store, second: tuple[str, Release, str], outcome: str) -> None:
    pair.claim(PAIR, "d1", RELEASE, BLUE)
    before = _everything(pair)

    claim = pair.claim(PAIR, *second)

    assert claim.outcome == outcome
    if outcome == "duplicate":
        assert claim.existing is not None
        assert claim.existing.deployment_id == "d1"
        assert claim.existing.status is Status.STARTING
    else:
        assert claim.active_deployment_id == "d1"
    assert _everything(pair) == before


def test_claim_for_a_service_that_became_live(pair: Store) -> None:
    claim = pair.claim(PAIR, "d1", Release(BLUE, "ecs-svc/3", "td"), GREEN)  # the caller's view is stale
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

    claim = racing.claim(PAIR, "d1", RELEASE, BLUE)

    assert claim.outcome == "claimed"
    assert ReleasesLockOnFailure.calls == 2
    assert pair.active_deployment_id(PAIR) == "d1"


def test_concurrent_claims_of_different_releases_take_one_lock(pair: Store) -> None:
    barrier = threading.Barrier(8)

    def claim(i: int) -> str:
        barrier.wait(timeout=10)
        return pair.claim(PAIR, f"d{i}", Release(GREEN, f"ecs-svc/{i}", "td"), BLUE).outcome

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
    assert pair.active_deployment_id(PAIR) == "d1"


# ---- the record's life ------------------------------------------------------------------------------


def test_mark_started_only_moves_starting(pair: Store) -> None:
    pair.claim(PAIR, "d1", RELEASE, BLUE)
    pair.mark_started(PAIR, "d1", "arn:first")
    pair.mark_started(PAIR, "d1", "arn:second")  # a duplicate delivery: no-op
    record = pair.get_deployment(PAIR, "d1")
    assert (record.status, record.execution_arn) == (Status.RUNNING, "arn:first")
    assert [h["event"] for h in record.history] == ["claimed", "started"]


def test_begin_keeps_the_first_snapshot(pair: Store) -> None:
    _running(pair)
    spec = fake_spec()

    first = pair.begin(PAIR, "d1", SNAP, spec)
    pair.record_step(PAIR, "d1", step_index=0, percent=10, weights={BLUE: 90, GREEN: 10}, message="10%")
    second = pair.begin(PAIR, "d1", {BLUE: 90, GREEN: 10}, spec)

    assert first.snapshot == second.snapshot == SNAP
    assert second.weights == {BLUE: 90, GREEN: 10}  # the live weights stay what the ramp wrote
    assert second.spec == first.spec == spec.model_dump(mode="json")
    assert (second.step_index, second.percent) == (0, 10)
    assert second.history[-2] == {**second.history[-2], "event": "shifted", "percent": 10}


def test_begin_moves_a_starting_record_to_running(pair: Store) -> None:
    pair.claim(PAIR, "d1", RELEASE, BLUE)
    assert pair.begin(PAIR, "d1", SNAP, fake_spec()).status is Status.RUNNING


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param(lambda s: None, "no deployment 'd1'", id="missing"),
        pytest.param(
            lambda s: (_running(s), s.finish(PAIR, "d1", Status.FAILED, "x")),
            "is FAILED, not running",
            id="closed",
        ),
    ],
)
@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda s: s.begin(PAIR, "d1", SNAP, fake_spec()), id="begin"),
        pytest.param(
            lambda s: s.record_step(PAIR, "d1", step_index=0, percent=10, weights=SNAP, message="m"),
            id="step",
        ),
    ],
)
def test_writes_to_a_missing_or_closed_record_fail(pair: Store, setup: Any, message: str, write: Any) -> None:
    setup(pair)
    before = _everything(pair)
    with pytest.raises(DeploymentNotFound, match=message):
        write(pair)
    assert _everything(pair) == before


def test_note_on_a_closed_record_is_quiet(pair: Store) -> None:
    _running(pair)
    pair.finish(PAIR, "d1", Status.ABORTED, "stopped")
    before = _everything(pair)
    pair.note(PAIR, "d1", "healthy", "late")
    pair.note(PAIR, "missing", "healthy", "late")
    assert _everything(pair) == before


def test_record_step_accumulates_history(pair: Store) -> None:
    _running(pair)
    pair.begin(PAIR, "d1", SNAP, fake_spec())
    for index, percent in enumerate((10, 100)):
        weights = {BLUE: 100 - percent, GREEN: percent}
        pair.record_step(
            PAIR, "d1", step_index=index, percent=percent, weights=weights, message=f"{percent}%"
        )
    pair.note(PAIR, "d1", "healthy", "final")
    record = pair.get_deployment(PAIR, "d1")
    assert (record.step_index, record.percent, record.weights) == (1, 100, {BLUE: 0, GREEN: 100})
    assert [(h["event"], h.get("percent")) for h in record.history] == [
        ("claimed", None),
        ("started", None),
        ("snapshot", None),
        ("shifted", 10),
        ("shifted", 100),
        ("healthy", None),
    ]
    assert record.to_dict()["history"] == record.history


# ---- finishing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status(s) for s in TERMINAL])
def test_finish_closes_once_and_releases_the_lock(pair: Store, status: Status) -> None:
    _running(pair)

    assert pair.finish(PAIR, "d1", status, "because", weights=SNAP) is True

    record = pair.get_deployment(PAIR, "d1")
    assert (record.status, record.reason, record.weights) == (status, "because", SNAP)
    assert record.ended_at is not None
    assert record.history[-1]["event"] == status.value.lower()
    assert pair.active_deployment_id(PAIR) is None
    before = _everything(pair)
    assert pair.finish(PAIR, "d1", Status.ABORTED, "again") is False
    assert _everything(pair) == before


@pytest.mark.parametrize("status", [Status.STARTING, Status.RUNNING])
def test_finish_needs_a_terminal_status(pair: Store, status: Status) -> None:
    _running(pair)
    with pytest.raises(ValueError, match="not a terminal status"):
        pair.finish(PAIR, "d1", status, "x")


@pytest.mark.parametrize("baseline", ["ecs-svc/4242", None])
def test_finish_with_promotion_swaps_roles(pair: Store, baseline: str | None) -> None:
    _running(pair)

    pair.finish(PAIR, "d1", Status.SUCCEEDED, "ok", promote=(GREEN, baseline))

    got = pair.get_pair(PAIR)
    assert (got.live_service, got.idle_service, got.idle_baseline) == (GREEN, BLUE, baseline)
    assert pair.active_deployment_id(PAIR) is None
    spec_item = _item(pair, "SPEC")
    assert spec_item is not None
    assert spec_item["promoted_at"]


def test_finish_does_not_release_another_deployments_lock(pair: Store) -> None:
    _running(pair)
    rejected = pair.record_rejected(PAIR, "d2", OTHER, BLUE, "busy")
    assert rejected
    # d2 is terminal already: closing it again is a no-op and d1 keeps the lock.
    assert pair.finish(PAIR, "d2", Status.FAILED, "x") is False
    assert pair.active_deployment_id(PAIR) == "d1"


def test_finish_without_a_lock_still_closes(pair: Store) -> None:
    _running(pair)
    pair.ddb.delete_item(TableName=TABLE, Key={"pk": {"S": f"PAIR#{PAIR}"}, "sk": {"S": "LOCK"}})
    assert pair.finish(PAIR, "d1", Status.FAILED, "x") is True
    assert pair.get_deployment(PAIR, "d1").status is Status.FAILED


def test_release_stale_lock(pair: Store) -> None:
    pair.claim(PAIR, "d1", RELEASE, BLUE)  # claimed, execution never started
    pair.release_stale_lock(PAIR, "d1")
    record = pair.get_deployment(PAIR, "d1")
    assert (record.status, record.reason) == (Status.ABORTED, "lock released by an operator")
    assert pair.active_deployment_id(PAIR) is None
    assert pair.claim(PAIR, "d2", OTHER, BLUE).outcome == "claimed"


# ---- reading ---------------------------------------------------------------------------------------


def test_list_deployments_newest_first(pair: Store) -> None:
    for i in range(3):
        _running(pair, f"d{i}", Release(GREEN, f"ecs-svc/{i}", "td"))
        pair.finish(PAIR, f"d{i}", Status.FAILED, "x")
        time.sleep(0.002)
    assert [d.deployment_id for d in pair.list_deployments(PAIR)] == ["d2", "d1", "d0"]
    assert pair.list_deployments("other") == []


def test_deployment_round_trips_through_the_table(pair: Store) -> None:
    _running(pair)
    pair.begin(PAIR, "d1", SNAP, fake_spec())
    pair.record_step(PAIR, "d1", step_index=0, percent=10, weights={BLUE: 90, GREEN: 10}, message="m")

    record = pair.get_deployment(PAIR, "d1")
    item = _item(pair, "DEPLOYMENT#d1")
    assert item is not None

    assert Deployment.from_item(item) == record
    as_dict = record.to_dict()
    assert as_dict["status"] == "RUNNING"
    assert as_dict["release"] == RELEASE.to_dict()
    assert as_dict["snapshot"] == SNAP
    assert as_dict["percent"] == 10
    assert all(isinstance(v, int) for v in as_dict["weights"].values())


def test_get_deployment_missing(pair: Store) -> None:
    assert pair.find_deployment(PAIR, "nope") is None
    with pytest.raises(DeploymentNotFound, match="no deployment 'nope' of pair 'web'"):
        pair.get_deployment(PAIR, "nope")
