"""Heartbeats with the time passed in: exact schedules, no clock, no sleeping.

The driver's contract: call ``handle_timer(now)`` when ``get_timer()`` says.  The first deadline
is ``0.0`` ("now"), which anchors the schedule at the driver's real time; afterwards ticks come
every ``heartbeat / 2`` seconds.  A heartbeat goes out on a tick only when nothing else was sent
since the previous tick; the peer is declared dead between 1.5 and 2 intervals after its last
byte, never before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amqp_core import spec
from amqp_core.credentials import PlainCredentials
from amqp_core.exceptions import AMQPHeartbeatTimeout, ConnectionWrongStateError
from amqp_core.protocol import NEED_DATA, Connection
from amqp_core.protocol import events as ev
from amqp_core.protocol.frames import HEARTBEAT_FRAME, encode_method_frame
from amqp_core.protocol.heartbeat import DEAD_AFTER_IDLE_TICKS, HeartbeatMonitor

if TYPE_CHECKING:
    from conftest import Pair

ANCHOR = 1000.0


def heartbeat_pair(make_pair: Callable[..., Pair], interval: int) -> Pair:
    pair = make_pair(heartbeat=interval)
    pair.handshake(heartbeat=60)
    assert pair.client.heartbeat == interval
    return pair


def failure(events: list[ev.Event]) -> ev.ConnectionFailed | None:
    found = [e for e in events if isinstance(e, ev.ConnectionFailed)]
    assert len(found) <= 1
    return found[0] if found else None


# --------------------------------------------------------------------------- the monitor alone


def test_monitor_anchors_on_the_first_tick() -> None:
    monitor = HeartbeatMonitor(10)
    assert monitor.deadline == 0.0
    assert monitor.tick(ANCHOR) == (False, False)
    assert monitor.deadline == ANCHOR + 5
    assert monitor.tick(ANCHOR + 4.999) == (False, False)  # early: nothing happens
    assert monitor.deadline == ANCHOR + 5


def test_monitor_counts_silent_ticks() -> None:
    monitor = HeartbeatMonitor(10)
    monitor.tick(ANCHOR)
    results = [monitor.tick(ANCHOR + 5 * n) for n in range(1, DEAD_AFTER_IDLE_TICKS + 1)]
    assert [dead for _, dead in results] == [False] * (DEAD_AFTER_IDLE_TICKS - 1) + [True]
    assert monitor.silent_for == DEAD_AFTER_IDLE_TICKS * 5


def test_monitor_sends_only_when_idle() -> None:
    monitor = HeartbeatMonitor(10)
    monitor.tick(ANCHOR)
    monitor.received = True
    assert monitor.tick(ANCHOR + 5) == (True, False)
    monitor.sent = True
    monitor.received = True
    assert monitor.tick(ANCHOR + 10) == (False, False)


# --------------------------------------------------------------------------- the connection


def test_no_timer_without_heartbeat(open_pair: Pair) -> None:
    assert open_pair.client.heartbeat == 0
    assert open_pair.client.get_timer() is None
    open_pair.client.handle_timer(ANCHOR + 10_000)
    assert open_pair.client.data_to_send() == b""
    assert open_pair.drain() == []


def test_no_timer_before_tune(pair: Pair) -> None:
    pair.client.initiate()
    assert pair.client.get_timer() is None


def test_heartbeat_sent_only_when_idle(make_pair: Callable[..., Pair]) -> None:
    pair = heartbeat_pair(make_pair, 10)
    client = pair.client
    assert client.get_timer() == 0.0
    client.handle_timer(ANCHOR)  # anchor: nothing is sent
    assert client.data_to_send() == b""
    assert client.get_timer() == ANCHOR + 5
    # early calls do nothing
    client.handle_timer(ANCHOR + 4)
    assert client.data_to_send() == b""
    # idle half-interval: a heartbeat
    client.receive_data(HEARTBEAT_FRAME)
    client.handle_timer(ANCHOR + 5)
    assert client.data_to_send() == HEARTBEAT_FRAME
    assert client.get_timer() == ANCHOR + 10
    # our own heartbeat is not traffic: still idle, so the next tick beats again
    client.receive_data(HEARTBEAT_FRAME)
    client.handle_timer(ANCHOR + 10)
    assert client.data_to_send() == HEARTBEAT_FRAME
    # other traffic in the half-interval: no heartbeat
    channel = pair.open_channel()
    client.basic_publish(channel, "", "q", b"x")
    assert client.data_to_send() != b""
    client.receive_data(HEARTBEAT_FRAME)
    client.handle_timer(ANCHOR + 15)
    assert client.data_to_send() == b""
    # traffic queued but not yet taken: no heartbeat in front of it
    client.basic_publish(channel, "", "q", b"y")
    client.receive_data(HEARTBEAT_FRAME)
    client.handle_timer(ANCHOR + 20)
    client.receive_data(HEARTBEAT_FRAME)
    data = client.data_to_send()
    assert HEARTBEAT_FRAME not in data and data.endswith(b"y\xce")


def run_schedule(
    pair: Pair, last_byte_at: float, horizon: float
) -> tuple[float | None, list[float]]:
    """Drive the timer as a driver would; the peer's last byte arrives at ``last_byte_at``.

    :returns: when the peer was declared dead (None if not by ``horizon``), and the tick times
    """
    client = pair.client
    client.handle_timer(ANCHOR)
    ticks: list[float] = []
    pending_byte = True
    for _ in range(10_000):
        deadline = client.get_timer()
        if deadline is None or deadline > horizon:
            return None, ticks
        if pending_byte and last_byte_at <= deadline:
            client.receive_data(HEARTBEAT_FRAME)
            assert pair.drain() == []
            pending_byte = False
        client.handle_timer(deadline)
        ticks.append(deadline)
        client.data_to_send()
        found = failure(pair.drain())
        if found is not None:
            assert isinstance(found.error, AMQPHeartbeatTimeout)
            return deadline, ticks
    raise AssertionError("schedule did not end")


@pytest.mark.parametrize("offset", [0.0, 0.001, 2.5, 4.999, 5.0, 7.5, 12.25])
def test_peer_declared_dead_between_1_5_and_2_intervals(
    make_pair: Callable[..., Pair], offset: float
) -> None:
    interval = 10
    pair = heartbeat_pair(make_pair, interval)
    last = ANCHOR + offset
    dead_at, ticks = run_schedule(pair, last, ANCHOR + 100)
    assert dead_at is not None
    # never before 1.5 intervals of silence (every earlier tick was survived), at most 2
    assert 1.5 * interval <= dead_at - last <= 2 * interval
    assert ticks[-1] == dead_at and len(ticks) == len(set(ticks))
    assert pair.client.is_closed
    assert pair.client.get_timer() is None
    assert pair.client.data_to_send() == b""


def test_silent_peer_is_dead_one_and_a_half_intervals_after_the_anchor(
    make_pair: Callable[..., Pair],
) -> None:
    pair = heartbeat_pair(make_pair, 10)
    client = pair.client
    client.handle_timer(ANCHOR)
    for tick in (ANCHOR + 5, ANCHOR + 10):
        assert client.get_timer() == tick
        client.handle_timer(tick)
        assert pair.drain() == []
        assert client.is_open
    client.handle_timer(ANCHOR + 15)
    (event,) = pair.drain()
    assert isinstance(event, ev.ConnectionFailed)
    assert isinstance(event.error, AMQPHeartbeatTimeout)
    assert "15" in str(event.error)
    assert client.is_closed
    with pytest.raises(ConnectionWrongStateError):
        client.open_channel()


@given(
    interval=st.integers(1, 600),
    # the byte must come before the third silent tick after the anchor, or the peer is dead
    # already (the anchor starts the observation: nothing received before it counts)
    offset_ticks=st.floats(0, 2.999, allow_nan=False),
)
@settings(max_examples=200, deadline=None)
def test_death_window_for_any_interval(interval: int, offset_ticks: float) -> None:
    # a client built by hand: hypothesis does not mix with function-scoped fixtures
    client = Connection(credentials=PlainCredentials("g", "g"), heartbeat=interval)
    client.initiate()
    client.receive_data(
        encode_method_frame(0, spec.Connection.Start(mechanisms="PLAIN"))
        + encode_method_frame(
            0, spec.Connection.Tune(channel_max=0, frame_max=131072, heartbeat=0)
        )
        + encode_method_frame(0, spec.Connection.OpenOk())
    )
    assert isinstance(client.next_event(), ev.ConnectionOpened)
    assert client.next_event() is NEED_DATA
    client.handle_timer(ANCHOR)
    last = ANCHOR + offset_ticks * interval / 2
    delivered = False
    for _ in range(1000):
        deadline = client.get_timer()
        assert deadline is not None
        if not delivered and last <= deadline:
            client.receive_data(HEARTBEAT_FRAME)
            delivered = True
        client.handle_timer(deadline)
        client.data_to_send()
        if client.is_closed:
            assert delivered
            silence = deadline - last
            assert 1.5 * interval - 1e-6 <= silence <= 2 * interval + 1e-6
            return
    raise AssertionError("never declared dead")


def test_received_data_keeps_the_connection_alive(make_pair: Callable[..., Pair]) -> None:
    pair = heartbeat_pair(make_pair, 4)
    client = pair.client
    client.handle_timer(ANCHOR)
    for _ in range(200):
        deadline = client.get_timer()
        assert deadline is not None
        # any bytes count, even half a frame
        client.receive_data(HEARTBEAT_FRAME[:3])
        client.receive_data(HEARTBEAT_FRAME[3:])
        client.handle_timer(deadline)
        client.data_to_send()
        assert pair.drain() == []
    assert client.is_open


def test_heartbeats_sent_while_the_peer_talks(make_pair: Callable[..., Pair]) -> None:
    pair = heartbeat_pair(make_pair, 4)
    client = pair.client
    client.handle_timer(ANCHOR)
    sent = 0
    for _ in range(20):
        client.receive_data(HEARTBEAT_FRAME)
        deadline = client.get_timer()
        assert deadline is not None
        client.handle_timer(deadline)
        data = client.data_to_send()
        assert data in (b"", HEARTBEAT_FRAME)
        sent += data == HEARTBEAT_FRAME
    # one every half interval while idle (every tick)
    assert sent == 20
    assert client.is_open


def test_late_driver_does_not_kill_at_once(make_pair: Callable[..., Pair]) -> None:
    pair = heartbeat_pair(make_pair, 10)
    client = pair.client
    client.handle_timer(ANCHOR)
    # the driver was stalled for a long time: one call is one tick, not many
    client.receive_data(HEARTBEAT_FRAME)
    client.handle_timer(ANCHOR + 1000)
    assert pair.drain() == []
    assert client.is_open
    assert client.get_timer() == ANCHOR + 1005


def test_timer_stops_after_close(make_pair: Callable[..., Pair]) -> None:
    pair = heartbeat_pair(make_pair, 10)
    client = pair.client
    client.handle_timer(ANCHOR)
    client.close()
    client.data_to_send()
    assert client.get_timer() is not None  # still waiting for Close-Ok
    pair.deliver(pair.peer.method(0, spec.Connection.CloseOk()))
    assert client.get_timer() is None
    client.handle_timer(ANCHOR + 100)
    assert client.data_to_send() == b""
