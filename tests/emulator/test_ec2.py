"""Network interfaces carry a private DNS name, in VPCs with and without DNS hostnames."""

from __future__ import annotations

import pytest
from ecs_canary_cli.local import Emulator


@pytest.mark.parametrize("dns_hostnames", [False, True])
def test_network_interfaces_have_a_private_dns_name(aws: Emulator, dns_hostnames: bool) -> None:
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    if dns_hostnames:
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]

    eni = ec2.create_network_interface(SubnetId=subnet, PrivateIpAddress="10.42.1.7")["NetworkInterface"]

    assert eni["PrivateDnsName"].startswith("ip-10-42-1-7.")
    assert eni["PrivateDnsName"].endswith(".internal")
