"""Route 53: changes are PENDING, then INSYNC."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionResult
from moto.route53.exceptions import Route53ClientError
from moto.route53.responses import Route53 as Route53Response

from ._core import (
    _ALNUM,
    CONFIG,
    _install,
    _now,
)

# -- Route 53 -------------------------------------------------------------------------------------

_ROUTE53_CHANGES: dict[str, tuple[float, datetime.datetime]] = {}


def propagate_route53_changes() -> None:
    """AWS: ChangeResourceRecordSets answers with a change of its own id in status PENDING, and
    GetChange reports it INSYNC once the change has reached every Route 53 name server (usually
    within 60 s); an unknown id is NoSuchChange. moto answers INSYNC at once, always with the same
    change id. Here a change is PENDING for ``route53_propagation_seconds`` on the emulator clock.
    """

    class NoSuchChange(Route53ClientError):
        def __init__(self, change_id: str) -> None:
            super().__init__("NoSuchChange", f"Could not find resource with ID: {change_id}")

    def change(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def change_resource_record_sets(self: Any) -> Any:
            original(self)
            change_id = "C" + "".join(CONFIG.options.rng.choice(_ALNUM) for _ in range(20))
            submitted = _now()
            _ROUTE53_CHANGES[change_id] = (CONFIG.clock.monotonic(), submitted)
            return ActionResult(
                {"ChangeInfo": {"Id": f"/change/{change_id}", "Status": "PENDING", "SubmittedAt": submitted}}
            )

        return change_resource_record_sets

    def get(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def get_change(self: Any) -> Any:
            change_id = str(self._get_param("Id")).rsplit("/", 1)[-1]
            known = _ROUTE53_CHANGES.get(change_id)
            if known is None:
                raise NoSuchChange(change_id)
            started, submitted = known
            elapsed = CONFIG.clock.monotonic() - started
            status = "INSYNC" if elapsed >= CONFIG.options.route53_propagation_seconds else "PENDING"
            return ActionResult(
                {"ChangeInfo": {"Id": f"/change/{change_id}", "Status": status, "SubmittedAt": submitted}}
            )

        return get_change

    _install(Route53Response, "change_resource_record_sets", change, "propagation")
    _install(Route53Response, "get_change", get, "propagation")
