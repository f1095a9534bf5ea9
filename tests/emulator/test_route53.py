"""propagate_route53_changes: a change is PENDING, then INSYNC on the emulator clock."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from ecs_canary_cli.local import Emulator


def test_change_is_pending_then_insync(aws: Emulator) -> None:
    route53 = aws.client("route53")
    zone = route53.create_hosted_zone(Name="emulated.example", CallerReference="r53-test")["HostedZone"]["Id"]
    records = [
        {
            "Name": "app.emulated.example",
            "Type": "CNAME",
            "SetIdentifier": name,
            "Weight": weight,
            "TTL": 60,
            "ResourceRecords": [{"Value": f"{name}.emulated.example"}],
        }
        for name, weight in (("blue", 100), ("green", 0))
    ]
    first = route53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": r} for r in records]},
    )["ChangeInfo"]
    second = route53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {**records[1], "Weight": 10}}]},
    )["ChangeInfo"]
    assert first["Status"] == second["Status"] == "PENDING"
    assert first["Id"] != second["Id"]
    assert route53.get_change(Id=second["Id"])["ChangeInfo"]["Status"] == "PENDING"
    time.sleep(0.4)  # 30 s emulated at time scale 0.01
    assert route53.get_change(Id=second["Id"])["ChangeInfo"]["Status"] == "INSYNC"
    weights = {
        r["SetIdentifier"]: r["Weight"]
        for r in route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
        if "SetIdentifier" in r
    }
    assert weights == {"blue": 100, "green": 10}
    with pytest.raises(ClientError) as info:
        route53.get_change(Id="/change/CNOSUCHCHANGE")
    assert info.value.response["Error"]["Code"] == "NoSuchChange"
