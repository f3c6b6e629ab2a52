"""Pacing virtual time against the wall clock: the one piece live mode and replay share.

A :class:`PacedClock` maps monotonic wall time to virtual time at a speed factor. It is anchored to
a pair (wall, virtual) and re-anchored on every speed change, pause, resume or seek, so it never
drifts: the target virtual time is always ``virtual_anchor + (now - wall_anchor) · speed``, not a
sum of sleeps (engineering-notes.md, "SimPy").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class PacedClock:
    """Virtual seconds as a function of wall time. ``speed = math.inf`` means as fast as possible."""

    def __init__(self, virtual_s: float = 0.0, speed: float = 1.0, paused: bool = False,
                 wall_clock: Callable[[], float] = time.monotonic):
        if not speed > 0:
            raise ValueError("speed must be positive")
        self._wall_clock = wall_clock
        self._speed = speed
        self._paused = paused
        self._wall_anchor = wall_clock()
        self._virtual_anchor = virtual_s

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def paused(self) -> bool:
        return self._paused

    def now(self) -> float:
        """The virtual time the world should have reached by now."""
        if self._paused:
            return self._virtual_anchor
        if math.isinf(self._speed):
            return math.inf
        return self._virtual_anchor + (self._wall_clock() - self._wall_anchor) * self._speed

    def wall_delay_until(self, virtual_s: float) -> float:
        """Wall seconds to wait before ``virtual_s`` is due (0 if due, inf if paused)."""
        if self._paused:
            return math.inf
        if math.isinf(self._speed):
            return 0.0
        return max(0.0, (virtual_s - self.now()) / self._speed)

    def _reanchor(self, virtual_s: float) -> None:
        self._wall_anchor = self._wall_clock()
        self._virtual_anchor = virtual_s

    def set_speed(self, speed: float, virtual_now: float | None = None) -> None:
        """Change speed from now on. At infinite speed pass ``virtual_now``, the time actually reached."""
        if not speed > 0:
            raise ValueError("speed must be positive")
        self._reanchor(self._reached(virtual_now))
        self._speed = speed

    def pause(self, virtual_now: float | None = None) -> None:
        if not self._paused:
            self._reanchor(self._reached(virtual_now))
            self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._reanchor(self._virtual_anchor)
            self._paused = False

    def seek(self, virtual_s: float) -> None:
        self._reanchor(virtual_s)

    def _reached(self, virtual_now: float | None) -> float:
        target = self.now()
        if virtual_now is not None and (math.isinf(target) or virtual_now < target):
            return virtual_now
        return target
