"""isolate_dynamodb_requests: a refused transaction never undoes a write made beside it."""

from __future__ import annotations

import threading
import uuid

import pytest
from botocore.exceptions import ClientError
from ecs_canary_cli.local import Emulator

ROUNDS = 150


@pytest.fixture(scope="module")
def table(aws: Emulator) -> str:
    name = "emulator-isolation"
    aws.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # Enough items that a transaction's copy of the table takes a while.
    dynamodb = aws.client("dynamodb")
    for index in range(300):
        dynamodb.put_item(TableName=name, Item={"id": {"S": f"filler-{index}"}, "pad": {"S": "x" * 200}})
    return name


def test_writes_beside_refused_transactions_all_stay(aws: Emulator, table: str) -> None:
    """One thread keeps writing new items while another keeps sending transactions whose condition
    fails: in AWS every one of the writes stays (moto alone put the refused transaction's copy of the
    table back, undoing the writes made meanwhile)."""
    written: list[str] = []
    errors: list[BaseException] = []

    def write() -> None:
        dynamodb = aws.client("dynamodb")
        try:
            for _ in range(ROUNDS):
                key = uuid.uuid4().hex
                dynamodb.put_item(TableName=table, Item={"id": {"S": key}})
                written.append(key)
        except BaseException as exc:  # reported below
            errors.append(exc)

    def refuse() -> None:
        dynamodb = aws.client("dynamodb")
        try:
            for _ in range(ROUNDS):
                with pytest.raises(ClientError) as refused:
                    dynamodb.transact_write_items(
                        TransactItems=[
                            {
                                "Put": {
                                    "TableName": table,
                                    "Item": {"id": {"S": "filler-0"}},
                                    "ConditionExpression": "attribute_not_exists(id)",
                                }
                            }
                        ]
                    )
                assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=refuse)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors, errors
    dynamodb = aws.client("dynamodb")
    lost = [
        key
        for key in written
        if "Item" not in dynamodb.get_item(TableName=table, Key={"id": {"S": key}}, ConsistentRead=True)
    ]
    assert len(written) == ROUNDS
    assert lost == [], f"{len(lost)} of {ROUNDS} writes undone by a refused transaction"
