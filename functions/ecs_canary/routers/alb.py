"""Traffic split through the weighted ``forward`` action of an ALB listener or listener rule."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ecs_canary.errors import RouterConfigError, ShiftNotVerified
from ecs_canary.routers.base import ShiftReceipt, TrafficRouter

if TYPE_CHECKING:
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client

__all__ = ["AlbRouter"]


class AlbRouter(TrafficRouter):
    """Shifts traffic by rewriting ``ForwardConfig.TargetGroups`` weights of one forward action.

    With ``rule_arn`` the rule's actions are used, otherwise the listener's default actions.
    """

    max_weight = 999

    def __init__(
        self,
        client: ElasticLoadBalancingv2Client,
        *,
        listener_arn: str | None,
        rule_arn: str | None,
        target_groups: Mapping[str, str],
    ) -> None:
        names = tuple(target_groups)
        if len(names) != 2:
            raise ValueError(f"target_groups must map exactly two services, got {sorted(names)}")
        super().__init__((names[0], names[1]))
        if target_groups[names[0]] == target_groups[names[1]]:
            raise ValueError(f"both services use target group {target_groups[names[0]]}")
        if not listener_arn and not rule_arn:
            raise RouterConfigError("an ALB router needs a listener ARN or a listener rule ARN")
        self.client = client
        self.listener_arn = listener_arn
        self.rule_arn = rule_arn
        self.target_groups: dict[str, str] = dict(target_groups)

    def describe(self) -> str:
        if self.rule_arn:
            return f"ALB listener rule {self.rule_arn}"
        return f"ALB listener {self.listener_arn}"

    def _actions(self) -> list[dict[str, Any]]:
        """The rule's actions or the listener's default actions, as ELBv2 returns them."""
        try:
            if self.rule_arn:
                rules = self.client.describe_rules(RuleArns=[self.rule_arn])["Rules"]
                if not rules:
                    raise RouterConfigError(f"listener rule {self.rule_arn} does not exist")
                return [dict(action) for action in rules[0].get("Actions", [])]
            assert self.listener_arn is not None
            listeners = self.client.describe_listeners(ListenerArns=[self.listener_arn])["Listeners"]
            if not listeners:
                raise RouterConfigError(f"listener {self.listener_arn} does not exist")
            return [dict(action) for action in listeners[0].get("DefaultActions", [])]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"RuleNotFound", "ListenerNotFound", "ValidationError"}:
                raise RouterConfigError(f"{self.describe()} does not exist: {exc}") from exc
            raise

    def _forward_index(self, actions: list[dict[str, Any]]) -> int:
        forwards = [i for i, action in enumerate(actions) if action.get("Type") == "forward"]
        if not forwards:
            raise RouterConfigError(f"{self.describe()} has no forward action")
        if len(forwards) > 1:
            raise RouterConfigError(f"{self.describe()} has {len(forwards)} forward actions")
        return forwards[0]

    def _weights_of(self, forward: Mapping[str, Any]) -> dict[str, int]:
        """Weights per service; a plain ``TargetGroupArn`` forward sends everything to that group."""
        service_of = {arn: svc for svc, arn in self.target_groups.items()}
        weights = dict.fromkeys(self.services, 0)
        groups = forward.get("ForwardConfig", {}).get("TargetGroups")
        if groups:
            pairs = [(group["TargetGroupArn"], int(group.get("Weight", 1))) for group in groups]
        elif forward.get("TargetGroupArn"):
            pairs = [(forward["TargetGroupArn"], 1)]
        else:
            raise RouterConfigError(f"the forward action of {self.describe()} names no target group")
        for arn, weight in pairs:
            svc = service_of.get(arn)
            if svc is None:
                raise RouterConfigError(
                    f"the forward action of {self.describe()} sends traffic to target group {arn}, "
                    f"which belongs to neither {self.services[0]} nor {self.services[1]}"
                )
            weights[svc] = weight
        return weights

    def read_weights(self) -> dict[str, int]:
        actions = self._actions()
        return self._weights_of(actions[self._forward_index(actions)])

    def set_weights(
        self, weights: Mapping[str, int], *, expected: Mapping[str, int] | None = None
    ) -> ShiftReceipt:
        """Rewrite the forward action in one modify call, keeping every other action and attribute."""
        clean = self.validate_weights(weights)
        actions = copy.deepcopy(self._actions())
        index = self._forward_index(actions)
        # Refuses a forward to a foreign target group, and weights someone else changed.
        self.check_expected(self._weights_of(actions[index]), expected)
        actions[index] = self._with_weights(actions[index], clean)
        for action in actions:
            _keep_oidc_secret(action)
        if self.rule_arn:
            self.client.modify_rule(RuleArn=self.rule_arn, Actions=actions)  # type: ignore[arg-type]
        else:
            assert self.listener_arn is not None
            self.client.modify_listener(ListenerArn=self.listener_arn, DefaultActions=actions)  # type: ignore[arg-type]
        return ShiftReceipt()

    def _with_weights(self, forward: dict[str, Any], weights: Mapping[str, int]) -> dict[str, Any]:
        """The forward action with both target groups listed (weight 0 included) at the new weights."""
        updated = dict(forward)
        # ELBv2 rejects TargetGroupArn next to a ForwardConfig naming other groups; the
        # ForwardConfig alone carries the whole split.
        updated.pop("TargetGroupArn", None)
        config = dict(updated.get("ForwardConfig") or {})
        config["TargetGroups"] = [
            {"TargetGroupArn": self.target_groups[svc], "Weight": weights[svc]} for svc in self.services
        ]
        updated["ForwardConfig"] = config
        return updated

    def verify(self, weights: Mapping[str, int], receipt: ShiftReceipt) -> None:
        """ELBv2 applies modifications synchronously, so one read-back settles it."""
        del receipt
        actual = self.read_weights()
        expected = {svc: weights.get(svc) for svc in self.services}
        if actual != expected:
            raise ShiftNotVerified(f"{self.describe()} has weights {actual} after writing {expected}")

    def propagation_seconds(self) -> int:
        """ALB nodes pick up a listener change as it is acknowledged; no client-side cache."""
        return 0


def _keep_oidc_secret(action: dict[str, Any]) -> None:
    """Describe calls omit the OIDC client secret; resubmitting requires asking ELBv2 to keep it."""
    config = action.get("AuthenticateOidcConfig")
    if isinstance(config, dict) and "ClientSecret" not in config:
        action["AuthenticateOidcConfig"] = {**config, "UseExistingClientSecret": True}
