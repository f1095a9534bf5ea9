"""``make demo``: the whole product, end to end, in the offline emulator.

The demo builds what a user's own infrastructure-as-code would have built (VPC, ECS services,
load balancers, Route53 records, CloudWatch alarms), simulates client traffic that follows the
live weights, and releases a good and a faulty version to each kind of service pair, so that a
reader sees a canary promote and a canary fail back without an AWS account.
"""

from __future__ import annotations
