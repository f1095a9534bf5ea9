"""The functions' configuration, parsed from the environment once per sandbox."""

from __future__ import annotations

import functools
import os

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Settings", "settings"]


class Settings(BaseModel):
    """What the template's environment variables say (names as in ``template.yaml``)."""

    model_config = ConfigDict(frozen=True)

    table_name: str = Field(min_length=1)
    state_machine_arn: str | None = None
    lock_lease_seconds: float = Field(900.0, gt=0)
    """How long a fresh lock is left alone by the sweeper before it asks Step Functions about it."""
    shift_lease_seconds: float = Field(90.0, gt=0)
    """Longest a weight change may stay in flight (above the tick function's timeout)."""

    @classmethod
    def from_environ(cls) -> Settings:
        env = os.environ
        return cls(
            table_name=env.get("TABLE_NAME", ""),
            state_machine_arn=env.get("STATE_MACHINE_ARN") or None,
            lock_lease_seconds=float(env.get("LOCK_LEASE_SECONDS", "900")),
            shift_lease_seconds=float(env.get("SHIFT_LEASE_SECONDS", "90")),
        )


@functools.cache
def _cached(key: tuple[tuple[str, str], ...]) -> Settings:
    del key
    return Settings.from_environ()


def settings() -> Settings:
    """The settings for the current environment (re-read when the relevant variables change)."""
    names = ("TABLE_NAME", "STATE_MACHINE_ARN", "LOCK_LEASE_SECONDS", "SHIFT_LEASE_SECONDS")
    return _cached(tuple((n, os.environ.get(n, "")) for n in names))
