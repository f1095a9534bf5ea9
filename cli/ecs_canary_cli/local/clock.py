"""The emulator's clock: how long emulated AWS waits, in real seconds.

Only the emulated services' own waiting goes through it (Step Functions Wait states and Retry
back-off, EventBridge and Lambda retry back-off, CloudWatch alarm periods). Code under test runs
at real speed: a handler that sleeps, sleeps for real.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

LOG = logging.getLogger(__name__)


class EmulatorClock:
    """Scales emulated durations: with ``time_scale=0.01`` a 60 s Wait state lasts 0.6 s."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale

    def scaled(self, seconds: float) -> float:
        """Real seconds that ``seconds`` of emulated time last."""
        return max(0.0, seconds) * self.time_scale

    def unscaled(self, real_seconds: float) -> float:
        """Emulated seconds that ``real_seconds`` of wall-clock time stand for."""
        return real_seconds / self.time_scale

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of emulated time."""
        real = self.scaled(seconds)
        if real > 0:
            time.sleep(real)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` of emulated time for ``event``; True if it was set."""
        return event.wait(self.scaled(seconds))

    def monotonic(self) -> float:
        """Emulated seconds since an arbitrary origin (for deadlines and ages)."""
        return self.unscaled(time.monotonic())


class DelayedExecutor:
    """Runs jobs on worker threads after a delay measured on the emulator clock.

    Emulated services queue work here (retries, deliveries) so a back-off never blocks other work,
    and tests can wait until nothing is queued or running.
    """

    def __init__(self, clock: EmulatorClock, name: str, workers: int = 2) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._busy = 0
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def clock(self) -> EmulatorClock:
        return self._clock

    def submit(self, job: Callable[[], None], delay: float = 0.0) -> None:
        """Run ``job`` once ``delay`` emulated seconds have passed."""
        due = time.monotonic() + self._clock.scaled(delay)
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), job))
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return not self._heap and self._busy == 0

    def wait_for_idle(self, timeout: float) -> bool:
        """Block until no job is queued or running; False on timeout (real seconds)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._heap:
                        wait = self._heap[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._stopped:
                    return
                _, _, job = heapq.heappop(self._heap)
                self._busy += 1
            try:
                job()
            except Exception:
                LOG.exception("emulator job failed")
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()
