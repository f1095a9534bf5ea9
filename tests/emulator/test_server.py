"""Emulator lifecycle: it can be stopped and started again in one process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os
    from ecs_canary_cli.local import Emulator

    for round in range(2):
        with Emulator(time_scale=0.01, template=None) as aws:
            assert os.environ["MOTO_PORT"] == str(aws.port)
            queue = aws.client("sqs").create_queue(QueueName="q")["QueueUrl"]
            assert aws.client("sqs").list_queues()["QueueUrls"] == [queue]  # a fresh account each time
        assert "MOTO_PORT" not in os.environ
    print("restarted")
    """
)


def test_emulator_restarts_in_one_process() -> None:
    env = {k: v for k, v in __import__("os").environ.items() if k != "MOTO_PORT"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "restarted" in result.stdout
