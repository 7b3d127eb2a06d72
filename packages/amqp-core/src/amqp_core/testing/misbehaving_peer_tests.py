"""A misbehaving AMQP peer against every adapter: each protocol fault ends the connection
with its own exception and, where the spec names one, a Connection.Close with its reply code.

Theory of operation: no RabbitMQ is needed.  A :class:`~amqp_core.testing.peer.ScriptedPeer`
(``amqp_peer``) completes the handshake, the client opens a channel, then the peer sends one
of the faults of :mod:`amqp_core.testing.misbehaviour` (built with the core's own codec).
The tests check, for every loop adapter (``amqp_client``) and for the blocking adapter
(``amqp_blocking_adapter``, driven directly against the peer):

* the connection ends with exactly the fault's exception class (a
  :class:`~amqp_core.exceptions.RemoteProtocolError` subclass, or
  :class:`~amqp_core.exceptions.IncompatibleProtocolError` for a peer that never spoke AMQP);
* the peer received one ``Connection.Close`` with the fault's reply code where the spec
  wants one (nothing more at all after a bad frame-end or an unknown frame type, and not
  even Start-Ok for a peer that never spoke AMQP), and both that and the client's report came
  within a second;
* a frame or body size announced far beyond the limits is refused from its header alone: the
  peer sends nothing after the header, and the memory traced while the client handles it
  (``tracemalloc``) stays far below what was announced.

Import them with ``from amqp_core.testing.misbehaving_peer_tests import *``.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from .. import spec
from .client import KitClient
from .misbehaviour import AFTER_OPEN, FRAME_MAX, GREETINGS, UNBOUNDED, Misbehaviour
from .peer import PeerConnection, ScriptedPeer

__all__ = [
    "test_misbehaving_peer_after_open",
    "test_misbehaving_peer_after_open_blocking",
    "test_misbehaving_peer_announces_an_unbounded_size",
    "test_misbehaving_peer_announces_an_unbounded_size_blocking",
    "test_misbehaving_peer_instead_of_connection_start",
    "test_misbehaving_peer_instead_of_connection_start_blocking",
]

Peer = Callable[..., ScriptedPeer]  # the amqp_peer fixture

#: The client must have reported the fault (and sent its Close) within this many seconds.
DEADLINE = 1.0
#: Bound on the memory traced while an unbounded announcement is handled.
MEMORY_BOUND = 4 * 1024 * 1024


def _ids(cases: tuple[Misbehaviour, ...]) -> list[str]:
    return [case.name for case in cases]


def _check_outcome(
    case: Misbehaviour, error: BaseException, accepted: PeerConnection, started: float,
    reported: float,
) -> None:
    """The exception, the Close the peer received (or its absence) and the timing."""
    assert type(error) is case.error, f"{case.what}: expected {case.error.__name__}, " \
        f"got {error!r}"
    elapsed = reported - started
    assert elapsed < DEADLINE, f"{case.what}: reported after {elapsed:.2f} s"
    assert accepted.wait_closed(5.0), "the client did not close the socket"
    assert getattr(error, "reply_code", None) == case.reply_code, repr(error)
    if not case.sends_close:
        before = [r for r in accepted.received() if r.at < started]
        assert accepted.received() == before, \
            f"{case.what}: the client sent {accepted.received()[len(before):]}"
        return
    closes = [r for r in accepted.received()
              if r.kind == "method" and isinstance(r.method, spec.Connection.Close)]
    assert [(r.channel, r.method.reply_code) for r in closes] == [(0, case.reply_code)], closes
    close_after = closes[0].at - started
    assert close_after < DEADLINE, f"{case.what}: the Close came after {close_after:.2f} s"


@contextmanager
def _traced_peak() -> Iterator[Callable[[], int]]:
    """Trace allocations; yields a function giving the peak growth over the start, in bytes."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    try:
        yield lambda: tracemalloc.get_traced_memory()[1] - baseline
    finally:
        if not was_tracing:
            tracemalloc.stop()


# ---------------------------------------------------------------- loop adapters


def _open_loop(client: KitClient, peer: ScriptedPeer) -> tuple[Any, PeerConnection, int]:
    connection = client.connect(peer.parameters())
    accepted = peer.connection(0)
    assert accepted is not None
    channel = client.channel(connection)
    return connection, accepted, channel.channel_number


def _misbehave_loop(client: KitClient, peer: ScriptedPeer, case: Misbehaviour) -> int:
    connection, accepted, channel_number = _open_loop(client, peer)
    data = case.build(channel_number)
    started = time.monotonic()
    accepted.send(data)
    error = client.wait_closed(connection, 5.0)
    reported = time.monotonic()
    _check_outcome(case, error, accepted, started, reported)
    assert not connection.is_open
    return len(data)


@pytest.mark.parametrize("case", AFTER_OPEN, ids=_ids(AFTER_OPEN))
def test_misbehaving_peer_after_open(
    amqp_client: KitClient, amqp_peer: Peer, case: Misbehaviour
) -> None:
    _misbehave_loop(amqp_client, amqp_peer(frame_max=FRAME_MAX), case)


@pytest.mark.parametrize("case", UNBOUNDED, ids=_ids(UNBOUNDED))
def test_misbehaving_peer_announces_an_unbounded_size(
    amqp_client: KitClient, amqp_peer: Peer, case: Misbehaviour
) -> None:
    peer = amqp_peer(frame_max=FRAME_MAX)
    with _traced_peak() as peak:
        sent = _misbehave_loop(amqp_client, peer, case)
        grown = peak()
    assert sent < 200, "the case must send only headers"
    assert grown < MEMORY_BOUND, f"{case.what}: {grown} bytes were allocated meanwhile"


@pytest.mark.parametrize("case", GREETINGS, ids=_ids(GREETINGS))
def test_misbehaving_peer_instead_of_connection_start(
    amqp_client: KitClient, amqp_peer: Peer, case: Misbehaviour
) -> None:
    peer = amqp_peer(greeting=case.build(0))
    started = time.monotonic()
    connection = amqp_client.open(peer.parameters())
    error = amqp_client.wait_open_error(connection, 5.0)
    reported = time.monotonic()
    accepted = peer.connection(0)
    assert accepted is not None
    _check_outcome(case, error, accepted, started, reported)
    amqp_client.run_for(0.05)
    assert amqp_client.count(f"{connection.kit_name}.open") == 0
    assert amqp_client.count(f"{connection.kit_name}.close") == 0


# ---------------------------------------------------------------- the blocking adapter


def _blocking_class(adapter: str) -> Any:
    from ..plugins import get_connection_class

    return get_connection_class(adapter)


def _misbehave_blocking(adapter: str, peer: ScriptedPeer, case: Misbehaviour) -> int:
    connection = _blocking_class(adapter)(peer.parameters())
    try:
        channel = connection.channel()
        accepted = peer.connection(0)
        assert accepted is not None
        data = case.build(channel.channel_number)
        started = time.monotonic()
        accepted.send(data)
        with pytest.raises(case.error) as info:
            connection.process_data_events(time_limit=5.0)
        reported = time.monotonic()
        _check_outcome(case, info.value, accepted, started, reported)
        assert connection.is_closed and channel.is_closed
        return len(data)
    finally:
        if connection.is_open:
            connection.close()


@pytest.mark.parametrize("case", AFTER_OPEN, ids=_ids(AFTER_OPEN))
def test_misbehaving_peer_after_open_blocking(
    amqp_blocking_adapter: str, amqp_peer: Peer, case: Misbehaviour
) -> None:
    _misbehave_blocking(amqp_blocking_adapter, amqp_peer(frame_max=FRAME_MAX), case)


@pytest.mark.parametrize("case", UNBOUNDED, ids=_ids(UNBOUNDED))
def test_misbehaving_peer_announces_an_unbounded_size_blocking(
    amqp_blocking_adapter: str, amqp_peer: Peer, case: Misbehaviour
) -> None:
    peer = amqp_peer(frame_max=FRAME_MAX)
    with _traced_peak() as peak:
        sent = _misbehave_blocking(amqp_blocking_adapter, peer, case)
        grown = peak()
    assert sent < 200, "the case must send only headers"
    assert grown < MEMORY_BOUND, f"{case.what}: {grown} bytes were allocated meanwhile"


@pytest.mark.parametrize("case", GREETINGS, ids=_ids(GREETINGS))
def test_misbehaving_peer_instead_of_connection_start_blocking(
    amqp_blocking_adapter: str, amqp_peer: Peer, case: Misbehaviour
) -> None:
    peer = amqp_peer(greeting=case.build(0))
    connection_class = _blocking_class(amqp_blocking_adapter)
    started = time.monotonic()
    with pytest.raises(case.error) as info:
        connection_class(peer.parameters())
    reported = time.monotonic()
    accepted = peer.connection(0)
    assert accepted is not None
    _check_outcome(case, info.value, accepted, started, reported)
