"""Live scenarios under network faults, for every adapter: a dead peer, a lost stream, a
failed connect.

Theory of operation: each scenario puts a :class:`~amqp_core.testing.fault_proxy.FaultProxy`
between the client and the broker of ``amqp_broker`` (or points the client at a port
nobody listens on, or at a :class:`~amqp_core.testing.fault_proxy.BlackHoleListener`),
injects one fault, and checks the EXACT exception class the application sees, that it
comes within a bounded time, and what happens to the open channels and the pending
operations.  The ``test_fault_*`` functions run through an adapter's callback API
(``amqp_client``); the ``test_fault_blocking_*`` ones through the blocking adapter
(``amqp_blocking_connect``).  The classes are pika's (checked against pika 1.3.2 and
RabbitMQ), except where marked (a):

==========================================  ======================================
fault                                       exception
==========================================  ======================================
the peer goes silent (heartbeat 1 s)        ``AMQPHeartbeatTimeout``
only the peer's side goes silent            ``AMQPHeartbeatTimeout``
close() while the peer is silent            ``AMQPHeartbeatTimeout``
the peer reads nothing while we publish     ``AMQPHeartbeatTimeout``
every byte 0.25 s late (heartbeat 1 s)      none: the connection stays open
the stream is closed (FIN) or reset         ``StreamLostError`` (``host``, ``port``)
the stream is cut mid-frame, then reset     ``StreamLostError`` (either direction)
connect to a port with no listener          ``AMQPConnectionError``
a listener that never answers               ``AMQPConnectionError`` (a)
an unknown virtual host                     ``ProbableAccessDeniedError`` (530)
a cut inside Connection.Start               ``IncompatibleProtocolError``
a cut inside Connection.Start-Ok            ``ProbableAuthenticationError``
==========================================  ======================================

(a) pika reports ``ConnectionOpenAborted`` (callback API) or its internal
``AMQPConnectorStackTimeout`` (blocking; not an ``AMQPConnectionError``); this library
reports the documented ``AMQPConnectionError``, the base class of the first.

As in pika, a lost connection closes its channels with the connection's error, and the
callbacks of requests still waiting for a reply are dropped (never called); a blocking call
raises the error.  The broker-forced close (320) is in :mod:`~amqp_core.testing.scenarios`
and :mod:`~amqp_core.testing.blocking_scenarios`.  Import them with::

    from amqp_core.testing.fault_scenarios import *
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .. import exceptions
from .client import KitClient, unique_name
from .fault_proxy import (
    BlackHoleListener,
    Direction,
    FaultProxy,
    HangingConnectListener,
    unused_port,
)

__all__ = [
    "test_fault_black_hole_listener_is_amqp_connection_error",
    "test_fault_blocking_black_hole_listener_is_amqp_connection_error",
    "test_fault_blocking_close_on_silent_peer_is_heartbeat_timeout",
    "test_fault_blocking_connection_refused_is_amqp_connection_error",
    "test_fault_blocking_cut_during_handshake_is_pikas_handshake_error",
    "test_fault_blocking_cut_mid_frame_is_stream_lost",
    "test_fault_blocking_cut_upstream_mid_frame_is_stream_lost",
    "test_fault_blocking_hanging_connect_is_amqp_connection_error",
    "test_fault_blocking_one_way_silence_is_heartbeat_timeout",
    "test_fault_blocking_silent_peer_with_unsent_data_is_heartbeat_timeout",
    "test_fault_blocking_slow_network_is_not_a_dead_peer",
    "test_fault_blocking_stalled_peer_is_heartbeat_timeout",
    "test_fault_blocking_stream_closed_is_stream_lost",
    "test_fault_blocking_stream_reset_is_stream_lost",
    "test_fault_blocking_unknown_vhost_is_probable_access_denied",
    "test_fault_close_on_silent_peer_is_heartbeat_timeout",
    "test_fault_connection_refused_is_amqp_connection_error",
    "test_fault_cut_during_handshake_is_pikas_handshake_error",
    "test_fault_cut_mid_frame_is_stream_lost",
    "test_fault_cut_upstream_mid_frame_is_stream_lost",
    "test_fault_hanging_connect_is_amqp_connection_error",
    "test_fault_one_way_silence_is_heartbeat_timeout",
    "test_fault_silent_peer_with_unsent_data_is_heartbeat_timeout",
    "test_fault_slow_network_is_not_a_dead_peer",
    "test_fault_stalled_peer_is_heartbeat_timeout",
    "test_fault_stream_closed_is_stream_lost",
    "test_fault_stream_reset_is_stream_lost",
    "test_fault_unknown_vhost_is_probable_access_denied",
]

pytestmark = pytest.mark.amqp_live

Params = Callable[..., Any]

#: The negotiated heartbeat of the stall scenarios, in seconds.
HEARTBEAT = 1
#: A dead peer is declared between 1.5 and 2 intervals after its last byte; the margin
#: covers a loaded machine.
HEARTBEAT_BOUND = 2 * HEARTBEAT + 3.0
#: Added one-way latency of the slow-network scenarios, and how long they stay idle.
LATENCY = 0.25
IDLE_SLOW = 2.5
#: Bound on noticing a closed or reset stream, in seconds.
LOSS_BOUND = 5.0
#: The handshake bound of the black-hole scenarios, in seconds.
STACK_TIMEOUT = 1.0
#: The TCP connect bound of the hanging-connect scenarios, in seconds.
SOCKET_TIMEOUT = 1.0
#: A message larger than one frame (frame_max is 128 KiB), and where to cut it.
LARGE_BODY = 1_000_000
CUT_AFTER = 100_000
#: Stream cuts during the opening handshake, and what pika reports for each: inside
#: Connection.Start; after our protocol header (inside Start-Ok).
HANDSHAKE_CUTS: tuple[tuple[Direction, int, type[Exception]], ...] = (
    (Direction.DOWNSTREAM, 50, exceptions.IncompatibleProtocolError),
    (Direction.UPSTREAM, 20, exceptions.ProbableAuthenticationError),
)
#: What a client publishes to a peer that reads nothing: more than the socket buffers hold.
FLOOD_BODY = b"F" * 1_000_000
FLOOD_COUNT = 40


def _proxy(broker: Any) -> FaultProxy:
    return FaultProxy(broker.host, broker.port, max_lifetime=60.0)


@contextlib.contextmanager
def _through_proxy(client: KitClient, params: Params, broker: Any,
                   **overrides: Any) -> Iterator[tuple[FaultProxy, Any, Any]]:
    """A proxy to the broker, a connection through it (callback API) and one open channel."""
    with _proxy(broker) as proxy:
        connection = client.connect(params(host="127.0.0.1", port=proxy.port, **overrides))
        yield proxy, connection, client.channel(connection)


@contextlib.contextmanager
def _blocking_through_proxy(connect: Callable[..., Any], broker: Any,
                            **overrides: Any) -> Iterator[tuple[FaultProxy, Any, Any]]:
    """A proxy to the broker, a blocking connection through it and one open channel."""
    with _proxy(broker) as proxy:
        connection = connect(host="127.0.0.1", port=proxy.port, **overrides)
        yield proxy, connection, connection.channel()


def _where(error: BaseException, port: int) -> None:
    """The error names the host and port the application connected to."""
    assert isinstance(error, exceptions.AMQPConnectionError), repr(error)
    assert (error.host, error.port) == ("127.0.0.1", port), repr(error)
    assert f"127.0.0.1:{port}" in repr(error), repr(error)


def _watch_channel(client: KitClient, channel: Any) -> str:
    name = client.fresh("channel.close")
    channel.add_on_close_callback(client.cb(name))
    return name


def _closed_with(client: KitClient, name: str, channel: Any, error: BaseException) -> None:
    assert client.count(name) == 1, client.calls.get(name)
    closed_channel, reason = client.last(name)
    assert closed_channel is channel and channel.is_closed
    assert reason is error, f"channel closed with {reason!r}, connection with {error!r}"


# ---------------------------------------------------------------- callback API (amqp_client)


def test_fault_stalled_peer_is_heartbeat_timeout(
    amqp_client: KitClient, amqp_params: Params, amqp_broker: Any
) -> None:
    with _proxy(amqp_broker) as proxy:
        connection = amqp_client.connect(
            amqp_params(host="127.0.0.1", port=proxy.port, heartbeat=HEARTBEAT))
        plain = amqp_client.channel(connection)
        confirming = amqp_client.channel(connection)
        watched = [(_watch_channel(amqp_client, ch), ch) for ch in (plain, confirming)]
        queue = unique_name("kit-fault-q")
        amqp_client.call(confirming.queue_declare, queue, exclusive=True)
        amqp_client.call(confirming.confirm_delivery, amqp_client.cb("confirm"))
        started = time.monotonic()
        proxy.stall()
        plain.queue_declare(unique_name("kit-never"), callback=amqp_client.cb("declare_ok"))
        confirming.basic_publish("", queue, b"never confirmed")
        error = amqp_client.wait_closed(connection, HEARTBEAT_BOUND + 5.0)
        elapsed = time.monotonic() - started
        assert type(error) is exceptions.AMQPHeartbeatTimeout, repr(error)
        assert HEARTBEAT * 0.9 <= elapsed <= HEARTBEAT_BOUND, f"detected after {elapsed:.2f} s"
        _where(error, proxy.port)
        for name, channel in watched:
            _closed_with(amqp_client, name, channel, error)
        # pika drops the callbacks of requests that will never be answered
        assert amqp_client.count("declare_ok") == 0 and amqp_client.count("confirm") == 0
        assert connection.is_closed
        with pytest.raises(exceptions.ChannelWrongStateError):
            plain.queue_declare(unique_name("kit-late"))


def test_fault_one_way_silence_is_heartbeat_timeout(
    amqp_client: KitClient, amqp_params: Params, amqp_broker: Any
) -> None:
    with _through_proxy(
        amqp_client, amqp_params, amqp_broker, heartbeat=HEARTBEAT
    ) as (proxy, connection, channel):
        watched = _watch_channel(amqp_client, channel)
        started = time.monotonic()
        proxy.stall(Direction.DOWNSTREAM, discard=False)  # our heartbeats still go out
        error = amqp_client.wait_closed(connection, HEARTBEAT_BOUND + 5.0)
        elapsed = time.monotonic() - started
        assert type(error) is exceptions.AMQPHeartbeatTimeout, repr(error)
        assert HEARTBEAT * 0.9 <= elapsed <= HEARTBEAT_BOUND, f"detected after {elapsed:.2f} s"
        assert proxy.forwarded[Direction.UPSTREAM] > 0
        _closed_with(amqp_client, watched, channel, error)


def test_fault_close_on_silent_peer_is_heartbeat_timeout(
    amqp_client: KitClient, amqp_params: Params, amqp_broker: Any
) -> None:
    with _through_proxy(
        amqp_client, amqp_params, amqp_broker, heartbeat=HEARTBEAT
    ) as (proxy, connection, channel):
        watched = _watch_channel(amqp_client, channel)
        proxy.stall()
        started = time.monotonic()
        connection.close()  # Close-Ok never comes: the heartbeat ends the wait
        error = amqp_client.wait_closed(connection, HEARTBEAT_BOUND + 5.0)
        elapsed = time.monotonic() - started
        assert type(error) is exceptions.AMQPHeartbeatTimeout, repr(error)
        assert elapsed <= HEARTBEAT_BOUND, f"closed after {elapsed:.2f} s"
        assert amqp_client.count(watched) == 1 and channel.is_closed and connection.is_closed


def test_fault_silent_peer_with_unsent_data_is_heartbeat_timeout(
    amqp_client: KitClient, amqp_params: Params, amqp_broker: Any
) -> None:
    with _through_proxy(
        amqp_client, amqp_params, amqp_broker, heartbeat=HEARTBEAT
    ) as (proxy, connection, channel):
        proxy.stall(discard=False)  # nobody reads: the socket buffers fill up
        started = time.monotonic()
        for _ in range(FLOOD_COUNT):
            channel.basic_publish("", unique_name("kit-nowhere"), FLOOD_BODY)
        error = amqp_client.wait_closed(connection, HEARTBEAT_BOUND + 5.0)
        elapsed = time.monotonic() - started
        assert type(error) is exceptions.AMQPHeartbeatTimeout, repr(error)
        assert elapsed <= HEARTBEAT_BOUND, f"detected after {elapsed:.2f} s"


def test_fault_cut_upstream_mid_frame_is_stream_lost(
    amqp_client: KitClient, amqp_params: Params, amqp_broker: Any
) -> None:
    with _through_proxy(
        amqp_client, amqp_params, amqp_broker, heartbeat=0
    ) as (proxy, connection, channel):
        proxy.cut(Direction.UPSTREAM, CUT_AFTER)
        started = time.monotonic()
        channel.basic_publish("", unique_name("kit-nowhere"), b"U" * LARGE_BODY)
        error = amqp_client.wait_closed(connection, LOSS_BOUND + 5.0)
        elapsed = time.monotonic() - started
        assert type(error) is exceptions.StreamLostError, repr(error)
        assert elapsed <= LOSS_BOUND, f"noticed after {elapsed:.2f} s"
        _where(error, proxy.port)
        assert proxy.cuts == [(Direction.UPSTREAM, CUT_AFTER)], proxy.cuts


def test_fault_slow_network_is_not_a_dead_peer(
    amqp_client: KitClient, amqp_params: Params, amqp_broker: Any
) -> None:
    with _through_proxy(
        amqp_client, amqp_params, amqp_broker, heartbeat=HEARTBEAT
    ) as (proxy, connection, channel):
        proxy.pass_through(latency=LATENCY)
        amqp_client.run_for(IDLE_SLOW)  # several intervals, every byte late
        assert connection.is_open, amqp_client.calls
        started = time.monotonic()
        amqp_client.call(channel.queue_declare, unique_name("kit-slow"), exclusive=True)
        assert time.monotonic() - started >= 2 * LATENCY * 0.9  # the latency was real
        assert connection.is_open and amqp_client.count(f"{connection.kit_name}.close") == 0
        amqp_client.close_connection(connection)  # before the proxy goes


def _lose_stream(amqp_client: KitClient, amqp_params: Params, amqp_broker: Any,
                 *, reset: bool) -> None:
    with _through_proxy(amqp_client, amqp_params, amqp_broker) as (proxy, connection, channel):
        watched = _watch_channel(amqp_client, channel)
        started = time.monotonic()
        if reset:
            proxy.reset_all()
        else:
            proxy.close_all()
        error = amqp_client.wait_closed(connection, LOSS_BOUND + 5.0)
        elapsed = time.monotonic() - started
        assert type(error) is exceptions.StreamLostError, repr(error)
        assert elapsed <= LOSS_BOUND, f"noticed after {elapsed:.2f} s"
        _where(error, proxy.port)
        _closed_with(amqp_client, watched, channel, error)
        assert connection.is_closed


def test_fault_stream_closed_is_stream_lost(
    amqp_client: KitClient, amqp_params: Params, amqp_broker: Any
) -> None:
    _lose_stream(amqp_client, amqp_params, amqp_broker, reset=False)


def test_fault_stream_reset_is_stream_lost(
    amqp_client: KitClient, amqp_params: Params, amqp_broker: Any
) -> None:
    _lose_stream(amqp_client, amqp_params, amqp_broker, reset=True)


def test_fault_cut_mid_frame_is_stream_lost(
    amqp_client: KitClient, amqp_params: Params, amqp_broker: Any
) -> None:
    with _through_proxy(
        amqp_client, amqp_params, amqp_broker, heartbeat=0
    ) as (proxy, connection, channel):
        watched = _watch_channel(amqp_client, channel)
        queue = unique_name("kit-fault-q")
        amqp_client.call(channel.queue_declare, queue, exclusive=True)
        amqp_client.call(channel.confirm_delivery, amqp_client.cb("confirm"))
        channel.basic_publish("", queue, b"L" * LARGE_BODY)
        amqp_client.wait("confirm", 10.0)  # the broker holds the message
        proxy.cut(Direction.DOWNSTREAM, CUT_AFTER)
        started = time.monotonic()
        channel.basic_get(queue, amqp_client.cb("got"))
        error = amqp_client.wait_closed(connection, LOSS_BOUND + 5.0)
        elapsed = time.monotonic() - started
        assert type(error) is exceptions.StreamLostError, repr(error)
        assert elapsed <= LOSS_BOUND, f"noticed after {elapsed:.2f} s"
        _where(error, proxy.port)
        assert proxy.cuts == [(Direction.DOWNSTREAM, CUT_AFTER)], proxy.cuts
        assert amqp_client.count("got") == 0
        _closed_with(amqp_client, watched, channel, error)


def test_fault_connection_refused_is_amqp_connection_error(
    amqp_client: KitClient, amqp_params: Params
) -> None:
    port = unused_port()
    started = time.monotonic()
    connection = amqp_client.open(amqp_params(host="127.0.0.1", port=port))
    error = amqp_client.wait_open_error(connection, LOSS_BOUND + 5.0)
    assert time.monotonic() - started <= LOSS_BOUND
    assert type(error) is exceptions.AMQPConnectionError, repr(error)
    _where(error, port)
    assert "refused" in repr(error).lower(), repr(error)
    assert amqp_client.count(f"{connection.kit_name}.open") == 0
    assert amqp_client.count(f"{connection.kit_name}.close") == 0


def test_fault_black_hole_listener_is_amqp_connection_error(
    amqp_client: KitClient, amqp_params: Params
) -> None:
    # pika's SelectConnection reports ConnectionOpenAborted here (its own close of the
    # half-open connection); this library reports the timeout itself, in the documented
    # AMQPConnectionError (ConnectionOpenAborted's base class).
    with BlackHoleListener(max_lifetime=30.0) as hole:
        started = time.monotonic()
        connection = amqp_client.open(amqp_params(
            host="127.0.0.1", port=hole.port, stack_timeout=STACK_TIMEOUT, socket_timeout=1.0))
        error = amqp_client.wait_open_error(connection, STACK_TIMEOUT + 10.0)
        elapsed = time.monotonic() - started
        assert type(error) is exceptions.AMQPConnectionError, repr(error)
        assert STACK_TIMEOUT * 0.9 <= elapsed <= STACK_TIMEOUT + 3.0, f"after {elapsed:.2f} s"
        _where(error, hole.port)
        assert "timeout" in repr(error).lower(), repr(error)
        assert hole.accepted == 1 and hole.received >= 8  # the protocol header went out
        assert amqp_client.count(f"{connection.kit_name}.open") == 0


def test_fault_hanging_connect_is_amqp_connection_error(
    amqp_client: KitClient, amqp_params: Params
) -> None:
    # the TCP connect itself never completes: socket_timeout ends it, well before stack_timeout
    with HangingConnectListener() as hole:
        started = time.monotonic()
        connection = amqp_client.open(amqp_params(
            host="127.0.0.1", port=hole.port, socket_timeout=SOCKET_TIMEOUT, stack_timeout=30.0))
        error = amqp_client.wait_open_error(connection, SOCKET_TIMEOUT + 10.0)
        elapsed = time.monotonic() - started
        assert type(error) is exceptions.AMQPConnectionError, repr(error)
        assert SOCKET_TIMEOUT * 0.9 <= elapsed <= SOCKET_TIMEOUT + 3.0, f"after {elapsed:.2f} s"
        _where(error, hole.port)
        assert "timeout" in repr(error).lower() or "timed out" in repr(error).lower(), repr(error)
        assert amqp_client.count(f"{connection.kit_name}.open") == 0


def test_fault_cut_during_handshake_is_pikas_handshake_error(
    amqp_client: KitClient, amqp_params: Params, amqp_broker: Any
) -> None:
    for direction, nbytes, expected in HANDSHAKE_CUTS:
        with _proxy(amqp_broker) as proxy:
            proxy.cut(direction, nbytes)
            connection = amqp_client.open(amqp_params(host="127.0.0.1", port=proxy.port))
            error = amqp_client.wait_open_error(connection, LOSS_BOUND + 5.0)
            assert type(error) is expected, f"cut {direction} after {nbytes}: {error!r}"
            _where(error, proxy.port)
            assert amqp_client.count(f"{connection.kit_name}.open") == 0


def test_fault_unknown_vhost_is_probable_access_denied(
    amqp_client: KitClient, amqp_params: Params
) -> None:
    connection = amqp_client.open(amqp_params(virtual_host=unique_name("kit-no-vhost")))
    error = amqp_client.wait_open_error(connection, 15.0)
    assert type(error) is exceptions.ProbableAccessDeniedError, repr(error)
    assert "530" in repr(error), repr(error)
    assert amqp_client.count(f"{connection.kit_name}.open") == 0


# ---------------------------------------------------------------- blocking API


def _blocking_raises(kind: type[BaseException], call: Callable[[], Any],
                     bound: float) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(kind) as info:
        call()
    elapsed = time.monotonic() - started
    assert type(info.value) is kind, repr(info.value)
    assert elapsed <= bound, f"raised after {elapsed:.2f} s"
    return info.value, elapsed


def test_fault_blocking_stalled_peer_is_heartbeat_timeout(
    amqp_blocking_connect: Callable[..., Any], amqp_broker: Any
) -> None:
    with _blocking_through_proxy(
        amqp_blocking_connect, amqp_broker, heartbeat=HEARTBEAT
    ) as (proxy, connection, channel):
        channel.confirm_delivery()
        queue = channel.queue_declare(unique_name("kit-fault-bq"), exclusive=True).method.queue
        other = connection.channel()
        proxy.stall()
        # the publish waits for its confirm, which never comes
        error, elapsed = _blocking_raises(
            exceptions.AMQPHeartbeatTimeout,
            lambda: channel.basic_publish("", queue, b"never confirmed"), HEARTBEAT_BOUND)
        assert elapsed >= HEARTBEAT * 0.9, f"raised after {elapsed:.2f} s"
        _where(error, proxy.port)
        assert connection.is_closed and channel.is_closed and other.is_closed
        with pytest.raises(exceptions.ChannelWrongStateError):
            other.queue_declare(unique_name("kit-late"))


def _blocking_lose_stream(connect: Callable[..., Any], broker: Any, *, reset: bool) -> None:
    with _proxy(broker) as proxy:
        connection = connect(host="127.0.0.1", port=proxy.port)
        channel = connection.channel()
        if reset:
            proxy.reset_all()
        else:
            proxy.close_all()
        error, _elapsed = _blocking_raises(
            exceptions.StreamLostError,
            lambda: channel.queue_declare(unique_name("kit-never"), exclusive=True), LOSS_BOUND)
        _where(error, proxy.port)
        assert connection.is_closed and channel.is_closed


def test_fault_blocking_one_way_silence_is_heartbeat_timeout(
    amqp_blocking_connect: Callable[..., Any], amqp_broker: Any
) -> None:
    with _blocking_through_proxy(
        amqp_blocking_connect, amqp_broker, heartbeat=HEARTBEAT
    ) as (proxy, connection, channel):
        proxy.stall(Direction.DOWNSTREAM, discard=False)  # our heartbeats still go out
        error, elapsed = _blocking_raises(
            exceptions.AMQPHeartbeatTimeout, lambda: connection.sleep(HEARTBEAT_BOUND + 5.0),
            HEARTBEAT_BOUND)
        assert elapsed >= HEARTBEAT * 0.9, f"raised after {elapsed:.2f} s"
        _where(error, proxy.port)
        assert connection.is_closed and channel.is_closed


def test_fault_blocking_close_on_silent_peer_is_heartbeat_timeout(
    amqp_blocking_connect: Callable[..., Any], amqp_broker: Any
) -> None:
    with _blocking_through_proxy(
        amqp_blocking_connect, amqp_broker, heartbeat=HEARTBEAT
    ) as (proxy, connection, channel):
        proxy.stall()
        # Close-Ok never comes: the heartbeat ends the wait (pika raises the same)
        _blocking_raises(exceptions.AMQPHeartbeatTimeout, connection.close, HEARTBEAT_BOUND)
        assert connection.is_closed and channel.is_closed


def test_fault_blocking_silent_peer_with_unsent_data_is_heartbeat_timeout(
    amqp_blocking_connect: Callable[..., Any], amqp_broker: Any
) -> None:
    with _blocking_through_proxy(
        amqp_blocking_connect, amqp_broker, heartbeat=HEARTBEAT
    ) as (proxy, connection, channel):
        proxy.stall(discard=False)  # nobody reads: the socket buffers fill up

        def flood() -> None:
            for _ in range(FLOOD_COUNT):
                channel.basic_publish("", unique_name("kit-nowhere"), FLOOD_BODY)
            connection.process_data_events(time_limit=HEARTBEAT_BOUND + 5.0)

        _blocking_raises(exceptions.AMQPHeartbeatTimeout, flood, HEARTBEAT_BOUND)
        assert connection.is_closed and channel.is_closed


def test_fault_blocking_cut_upstream_mid_frame_is_stream_lost(
    amqp_blocking_connect: Callable[..., Any], amqp_broker: Any
) -> None:
    with _blocking_through_proxy(
        amqp_blocking_connect, amqp_broker, heartbeat=0
    ) as (proxy, connection, channel):
        proxy.cut(Direction.UPSTREAM, CUT_AFTER)

        def publish() -> None:
            channel.basic_publish("", unique_name("kit-nowhere"), b"U" * LARGE_BODY)
            connection.process_data_events(time_limit=LOSS_BOUND + 5.0)

        error, _elapsed = _blocking_raises(exceptions.StreamLostError, publish, LOSS_BOUND)
        _where(error, proxy.port)
        assert proxy.cuts == [(Direction.UPSTREAM, CUT_AFTER)], proxy.cuts


def test_fault_blocking_slow_network_is_not_a_dead_peer(
    amqp_blocking_connect: Callable[..., Any], amqp_broker: Any
) -> None:
    with _blocking_through_proxy(
        amqp_blocking_connect, amqp_broker, heartbeat=HEARTBEAT
    ) as (proxy, connection, channel):
        proxy.pass_through(latency=LATENCY)
        connection.sleep(IDLE_SLOW)  # several intervals, every byte late
        started = time.monotonic()
        channel.queue_declare(unique_name("kit-slow"), exclusive=True)
        assert time.monotonic() - started >= 2 * LATENCY * 0.9  # the latency was real
        assert connection.is_open and channel.is_open
        connection.close()  # before the proxy goes


def test_fault_blocking_stream_closed_is_stream_lost(
    amqp_blocking_connect: Callable[..., Any], amqp_broker: Any
) -> None:
    _blocking_lose_stream(amqp_blocking_connect, amqp_broker, reset=False)


def test_fault_blocking_stream_reset_is_stream_lost(
    amqp_blocking_connect: Callable[..., Any], amqp_broker: Any
) -> None:
    _blocking_lose_stream(amqp_blocking_connect, amqp_broker, reset=True)


def test_fault_blocking_cut_mid_frame_is_stream_lost(
    amqp_blocking_connect: Callable[..., Any], amqp_broker: Any
) -> None:
    with _blocking_through_proxy(
        amqp_blocking_connect, amqp_broker, heartbeat=0
    ) as (proxy, connection, channel):
        channel.confirm_delivery()
        queue = channel.queue_declare(unique_name("kit-fault-bq"), exclusive=True).method.queue
        channel.basic_publish("", queue, b"L" * LARGE_BODY)  # returns once confirmed
        proxy.cut(Direction.DOWNSTREAM, CUT_AFTER)
        error, _elapsed = _blocking_raises(
            exceptions.StreamLostError, lambda: channel.basic_get(queue), LOSS_BOUND)
        _where(error, proxy.port)
        assert proxy.cuts == [(Direction.DOWNSTREAM, CUT_AFTER)], proxy.cuts
        assert connection.is_closed and channel.is_closed


def test_fault_blocking_connection_refused_is_amqp_connection_error(
    amqp_blocking_connect: Callable[..., Any],
) -> None:
    port = unused_port()
    error, _elapsed = _blocking_raises(
        exceptions.AMQPConnectionError,
        lambda: amqp_blocking_connect(host="127.0.0.1", port=port), LOSS_BOUND)
    _where(error, port)
    assert "refused" in repr(error).lower(), repr(error)


def test_fault_blocking_black_hole_listener_is_amqp_connection_error(
    amqp_blocking_connect: Callable[..., Any],
) -> None:
    # pika's BlockingConnection raises its internal AMQPConnectorStackTimeout here (not an
    # AMQPConnectionError); this library raises the documented AMQPConnectionError.
    with BlackHoleListener(max_lifetime=30.0) as hole:
        error, elapsed = _blocking_raises(
            exceptions.AMQPConnectionError,
            lambda: amqp_blocking_connect(host="127.0.0.1", port=hole.port,
                                          stack_timeout=STACK_TIMEOUT, socket_timeout=1.0),
            STACK_TIMEOUT + 3.0)
        assert elapsed >= STACK_TIMEOUT * 0.9, f"raised after {elapsed:.2f} s"
        _where(error, hole.port)
        assert "timeout" in repr(error).lower(), repr(error)
        assert hole.accepted == 1 and hole.received >= 8


def test_fault_blocking_hanging_connect_is_amqp_connection_error(
    amqp_blocking_connect: Callable[..., Any],
) -> None:
    with HangingConnectListener() as hole:
        error, elapsed = _blocking_raises(
            exceptions.AMQPConnectionError,
            lambda: amqp_blocking_connect(host="127.0.0.1", port=hole.port,
                                          socket_timeout=SOCKET_TIMEOUT, stack_timeout=30.0),
            SOCKET_TIMEOUT + 3.0)
        assert elapsed >= SOCKET_TIMEOUT * 0.9, f"raised after {elapsed:.2f} s"
        _where(error, hole.port)
        assert "timeout" in repr(error).lower() or "timed out" in repr(error).lower(), repr(error)


def test_fault_blocking_cut_during_handshake_is_pikas_handshake_error(
    amqp_blocking_connect: Callable[..., Any], amqp_broker: Any
) -> None:
    for direction, nbytes, expected in HANDSHAKE_CUTS:
        with _proxy(amqp_broker) as proxy:
            proxy.cut(direction, nbytes)
            error, _elapsed = _blocking_raises(
                expected, lambda: amqp_blocking_connect(host="127.0.0.1", port=proxy.port),
                LOSS_BOUND)
            _where(error, proxy.port)


def test_fault_blocking_unknown_vhost_is_probable_access_denied(
    amqp_blocking_connect: Callable[..., Any],
) -> None:
    error, _elapsed = _blocking_raises(
        exceptions.ProbableAccessDeniedError,
        lambda: amqp_blocking_connect(virtual_host=unique_name("kit-no-vhost")), 15.0)
    assert "530" in repr(error), repr(error)
