"""Heartbeat arithmetic, with the current time passed in.

Theory of operation: with a negotiated interval ``H`` (seconds), the monitor
ticks every ``H / 2``.  On each tick it asks for a heartbeat frame to be sent
when nothing else was sent since the previous tick (any frame proves we are
alive), and counts consecutive ticks during which nothing at all was
received.  After :data:`DEAD_AFTER_IDLE_TICKS` such ticks the peer is declared
dead, which happens between 1.5 H and 2 H after its last byte: "about two
intervals", and never before the peer has missed the heartbeat it owes us
every ``H / 2``.

The monitor never reads a clock.  Until the first tick it reports a deadline
of ``0.0`` so the driver calls :meth:`HeartbeatMonitor.tick` at once with the
real time, which anchors the schedule.
"""

from __future__ import annotations

from typing import Final

#: Consecutive silent half-intervals after which the peer is declared dead.
DEAD_AFTER_IDLE_TICKS: Final = 3


class HeartbeatMonitor:
    """Tracks send/receive activity and decides when to beat and when to give up.

    :param interval: negotiated heartbeat interval in seconds (> 0)
    """

    __slots__ = ("_idle_ticks", "_next_tick", "interval", "received", "sent")

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self._next_tick: float | None = None
        self._idle_ticks = 0
        #: set by the core whenever bytes arrive / frames are queued
        self.received = True
        self.sent = False

    @property
    def deadline(self) -> float:
        """When :meth:`tick` should next be called (0.0 = now, to anchor)."""
        return 0.0 if self._next_tick is None else self._next_tick

    @property
    def silent_for(self) -> float:
        """Lower bound of how long the peer has been silent, in seconds."""
        return self._idle_ticks * self.interval / 2

    def tick(self, now: float) -> tuple[bool, bool]:
        """Advance to ``now``.

        :returns: ``(send_heartbeat, peer_dead)``
        """
        if self._next_tick is None:
            self._next_tick = now + self.interval / 2
            self.received = False
            self.sent = False
            return False, False
        if now < self._next_tick:
            return False, False
        if self.received:
            self._idle_ticks = 0
        else:
            self._idle_ticks += 1
        send = not self.sent
        self.received = False
        self.sent = False
        self._next_tick = now + self.interval / 2
        return send, self._idle_ticks >= DEAD_AFTER_IDLE_TICKS
