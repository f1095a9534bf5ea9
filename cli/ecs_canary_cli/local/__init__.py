"""The offline emulated AWS: moto in server mode with ecs-canary's stack deployed into it."""

from __future__ import annotations

from .clock import EmulatorClock
from .deploy import deploy_stack
from .patches import EmulatorOptions
from .server import Emulator

__all__ = ["Emulator", "EmulatorClock", "EmulatorOptions", "deploy_stack"]
