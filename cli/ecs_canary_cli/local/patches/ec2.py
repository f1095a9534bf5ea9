"""EC2: network interfaces have private DNS names."""

from __future__ import annotations

from typing import Any, cast

from moto.ec2.models.elastic_network_interfaces import NetworkInterface


def give_network_interfaces_private_dns_names() -> None:
    """AWS: every ENI has a private DNS name (``ip-10-0-1-2.ec2.internal`` in us-east-1,
    ``ip-10-0-1-2.<region>.compute.internal`` elsewhere), which an awsvpc task's attachment lists.
    moto's network interfaces have none, so starting an awsvpc task fails.
    """
    if isinstance(NetworkInterface.__dict__.get("private_dns_name"), property):
        return

    def private_dns_name(self: Any) -> str:
        given = self.__dict__.get("_private_dns_name")
        if given:
            return str(given)
        region = self.ec2_backend.region_name
        host = "ip-" + str(self.private_ip_address or "0.0.0.0").replace(".", "-")
        return f"{host}.ec2.internal" if region == "us-east-1" else f"{host}.{region}.compute.internal"

    def set_private_dns_name(self: Any, value: str) -> None:
        # moto assigns one itself in VPCs with DNS hostnames enabled; keep it.
        self.__dict__["_private_dns_name"] = value

    cast(Any, NetworkInterface).private_dns_name = property(private_dns_name, set_private_dns_name)
