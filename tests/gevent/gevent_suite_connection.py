"""``GeventConnection`` with the broker: what is specific to gevent (the shared behaviour is the
conformance kit's).

Run by ``run_gevent_suite.py`` in a process per mode (with and without monkey-patching).  The
main greenlet waits with :func:`conftest.wait_for` (bounded) while the hub runs the connections;
"real threads" are started with the original ``_thread`` functions, so they are OS threads in
both modes, and talk to the hub only through ``add_callback_threadsafe``.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable
from typing import Any

import gevent
import gevent.queue
import pytest
from gevent.monkey import get_original
from gevent_helpers import wait_for

import amqp_core as pika
from amqp_adapter_gevent import GeventConnection, GeventIOLoop
from amqp_core import exceptions
from amqp_core.plugins import get_connection_class

start_new_thread = get_original("_thread", "start_new_thread")
real_get_ident = get_original("_thread", "get_ident")
allocate_lock = get_original("_thread", "allocate_lock")
RealQueue = get_original("queue", "SimpleQueue")


class Opened:
    """Opens a connection and a channel, recording what happens; closes them afterwards."""

    def __init__(self, params: pika.ConnectionParameters, **kwargs: Any) -> None:
        self.channel: Any = None
        self.error: BaseException | None = None
        self.closed: BaseException | None = None
        self.connection = GeventConnection(
            params,
            on_open_callback=lambda c: c.channel(on_open_callback=self._on_channel),
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_close,
            **kwargs,
        )
        wait_for(lambda: self.channel is not None or self.error is not None, what="open")
        if self.error is not None:
            raise self.error

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel

    def _on_open_error(self, _connection: Any, error: BaseException) -> None:
        self.error = error

    def _on_close(self, _connection: Any, error: BaseException) -> None:
        self.closed = error

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a channel method taking ``callback=`` and wait for its reply frame."""
        replies: list[Any] = []
        method(*args, callback=replies.append, **kwargs)
        wait_for(lambda: replies, what=f"reply to {method.__name__}")
        return replies[0]

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()
        wait_for(lambda: self.connection.is_closed, what="close")


@pytest.fixture
def opened(params: Any, gevent_mode: str) -> Any:
    made: list[Opened] = []

    def make(**kwargs: Any) -> Opened:
        made.append(Opened(params(), **kwargs))
        return made[-1]

    yield make
    for item in made:
        item.close()


def test_discoverable_as_a_plugin(gevent_mode: str) -> None:
    assert get_connection_class("gevent") is GeventConnection


def test_pika_style_start_stop(params: Any, gevent_mode: str) -> None:
    seen: list[str] = []

    def on_open(connection: Any) -> None:
        seen.append("open")
        connection.close()

    def on_close(connection: Any, error: BaseException) -> None:
        seen.append(f"closed {error}")
        connection.ioloop.stop()

    connection = GeventConnection(params(), on_open_callback=on_open, on_close_callback=on_close)
    assert isinstance(connection.ioloop, GeventIOLoop)
    assert connection.ioloop.hub is gevent.get_hub()
    deadline = connection.ioloop.call_later(20, connection.ioloop.stop)
    connection.ioloop.start()
    connection.ioloop.remove_timeout(deadline)
    assert seen == ["open", "closed (200, 'Normal shutdown')"]
    connection.ioloop.close()


@pytest.mark.parametrize("kind", ["ioloop", "hub", "hub.loop"])
def test_custom_ioloop(params: Any, opened: Any, kind: str) -> None:
    hub = gevent.get_hub()
    custom: Any = {"ioloop": GeventIOLoop(), "hub": hub, "hub.loop": hub.loop}[kind]
    item = opened(custom_ioloop=custom)
    if kind == "ioloop":
        assert item.connection.ioloop is custom
    assert item.connection.ioloop.hub is hub
    declared = item.call(item.channel.queue_declare, "", exclusive=True)
    assert declared.method.queue


def test_bad_custom_ioloop(params: Any, gevent_mode: str) -> None:
    with pytest.raises(TypeError, match="custom_ioloop"):
        GeventConnection(params(), custom_ioloop=object())
    closed = GeventIOLoop()
    closed.close()
    with pytest.raises(ValueError, match="custom_ioloop is closed"):
        GeventConnection(params(), custom_ioloop=closed)
    with pytest.raises(TypeError, match="callback"):
        GeventConnection(params(), internal_connection_workflow=False).add_callback(None)  # type: ignore[arg-type]


def test_create_connection_tries_each_configuration(params: Any, gevent_mode: str) -> None:
    with gevent.socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    results: list[Any] = []
    workflow = GeventConnection.create_connection(
        [params(port=dead, connection_attempts=1), params(host="localhost")], results.append
    )
    assert workflow is not None
    wait_for(lambda: results, what="create_connection")
    connection = results[0]
    assert isinstance(connection, GeventConnection) and connection.is_open
    connection.close()
    wait_for(lambda: connection.is_closed, what="close")


def test_refused_connection_reports_open_error(params: Any, gevent_mode: str) -> None:
    with gevent.socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    errors: list[BaseException] = []
    GeventConnection(params(port=dead, connection_attempts=1),
                     on_open_error_callback=lambda _c, e: errors.append(e))
    wait_for(lambda: errors, what="open error")
    assert isinstance(errors[0], exceptions.AMQPConnectionError)


def test_threadsafe_acks_from_16_os_threads(opened: Any, unique: Any) -> None:
    """16 OS threads x 1000 messages, each acked from a thread: none lost, none acked twice."""
    threads, per_thread = 16, 1000
    total = threads * per_thread
    item = opened()
    channel, connection = item.channel, item.connection
    queue = unique("tsafe")
    item.call(channel.queue_declare, queue, exclusive=True)
    for i in range(total):
        channel.basic_publish("", queue, str(i).encode())
    wait_for(lambda: item.call(channel.queue_declare, queue, passive=True).method.message_count
             == total, what="all published")

    inboxes = [RealQueue() for _ in range(threads)]
    acked: collections.Counter[int] = collections.Counter()
    bodies: set[bytes] = set()
    finished: list[int] = []
    idents: set[int] = set()
    idents_lock = allocate_lock()

    def ack_in_hub(tag: int) -> None:  # runs in the hub, scheduled from a thread
        acked[tag] += 1
        channel.basic_ack(tag)

    def worker(index: int) -> None:
        with idents_lock:
            idents.add(real_get_ident())
        inbox = inboxes[index]
        while True:
            tag = inbox.get(timeout=60)
            if tag is None:
                break
            connection.add_callback_threadsafe(functools.partial(ack_in_hub, tag))
        connection.add_callback_threadsafe(lambda: finished.append(index))

    for index in range(threads):
        start_new_thread(worker, (index,))
    delivered = 0

    def on_message(_channel: Any, method: Any, _properties: Any, body: bytes) -> None:
        nonlocal delivered
        bodies.add(body)
        inboxes[delivered % threads].put(method.delivery_tag)
        delivered += 1

    item.call(channel.basic_qos, prefetch_count=500)  # progress needs the threads' acks
    channel.basic_consume(queue, on_message)
    wait_for(lambda: delivered == total, timeout=60, what="every delivery")
    for inbox in inboxes:
        inbox.put(None)
    wait_for(lambda: len(finished) == threads, timeout=60, what="every thread")
    item.call(channel.queue_declare, queue, passive=True)  # a round trip after the last ack
    assert channel.is_open  # a double or unknown ack would have closed it (406)
    assert len(idents) == threads and real_get_ident() not in idents
    assert len(acked) == total and set(acked.values()) == {1}
    assert bodies == {str(i).encode() for i in range(total)}
    # nothing left unacknowledged: a fresh channel sees an empty queue once ours is closed
    channel.close()
    wait_for(lambda: channel.is_closed, what="channel closed")
    replies: list[Any] = []
    connection.channel(on_open_callback=lambda ch: ch.queue_declare(
        queue, passive=True, callback=replies.append))
    wait_for(lambda: replies, what="passive declare")
    assert replies[0].method.message_count == 0


def test_100_greenlets_publish_on_one_connection(opened: Any, unique: Any) -> None:
    greenlet_count, per_greenlet = 100, 100
    total = greenlet_count * per_greenlet
    item = opened()
    channel = item.channel
    queue = unique("greenlets")
    item.call(channel.queue_declare, queue, exclusive=True)
    confirmed: list[int] = []
    channel.confirm_delivery(lambda frame: confirmed.append(frame.method.delivery_tag),
                             callback=lambda _f: None)

    def publisher(index: int) -> None:
        for i in range(per_greenlet):
            body = f"{index}:{i}".encode()
            if i % 2:
                channel.basic_publish("", queue, body)
            else:
                item.connection.add_callback(
                    functools.partial(channel.basic_publish, "", queue, body))
            gevent.sleep(0)

    greenlets = [gevent.spawn(publisher, n) for n in range(greenlet_count)]
    gevent.joinall(greenlets, timeout=60, raise_error=True)
    assert all(g.successful() for g in greenlets)
    wait_for(lambda: confirmed and max(confirmed) == total, timeout=60, what="confirms")

    received: list[bytes] = []
    inbox: gevent.queue.Queue[int] = gevent.queue.Queue()

    def on_message(_channel: Any, method: Any, _properties: Any, body: bytes) -> None:
        received.append(body)
        inbox.put(method.delivery_tag)

    def acker() -> None:  # greenlets ack directly, as they would publish
        while True:
            tag = inbox.get()
            if tag is None:
                return
            channel.basic_ack(tag)

    ackers = [gevent.spawn(acker) for _ in range(10)]
    item.call(channel.basic_qos, prefetch_count=200)
    channel.basic_consume(queue, on_message)
    wait_for(lambda: len(received) == total, timeout=60, what="every message")
    for _ in ackers:
        inbox.put(None)
    gevent.joinall(ackers, timeout=10, raise_error=True)
    assert sorted(received) == sorted(
        f"{n}:{i}".encode() for n in range(greenlet_count) for i in range(per_greenlet))
    for n in range(greenlet_count):  # one publisher's messages stay in its order
        mine = [b for b in received if b.startswith(f"{n}:".encode())]
        assert mine == [f"{n}:{i}".encode() for i in range(per_greenlet)]
    assert item.call(channel.queue_declare, queue, passive=True).method.message_count == 0
    assert channel.is_open


def test_add_callback_is_for_the_hubs_thread(opened: Any) -> None:
    item = opened()
    errors: list[BaseException] = []
    done = allocate_lock()
    done.acquire()

    def from_thread() -> None:
        try:
            item.connection.add_callback(lambda: None)
        except RuntimeError as error:
            errors.append(error)
        finally:
            done.release()

    start_new_thread(from_thread, ())
    assert done.acquire(timeout=10)
    assert errors and "add_callback_threadsafe" in str(errors[0])
    ran: list[int] = []
    handle = item.connection.add_callback(lambda: ran.append(1))
    handle2 = item.connection.add_callback(lambda: ran.append(2))
    handle2.cancel()
    wait_for(lambda: ran, what="greenlet-safe callback")
    gevent.sleep(0.01)
    assert ran == [1]
    assert handle is not None


def test_connection_keeps_other_greenlets_running(opened: Any, unique: Any) -> None:
    """The connection never blocks the hub: a ticking greenlet keeps ticking meanwhile."""
    ticks: list[int] = []

    def ticker() -> None:
        for i in range(50):
            ticks.append(i)
            gevent.sleep(0.001)

    runner = gevent.spawn(ticker)
    item = opened()
    queue = unique("ticks")
    item.call(item.channel.queue_declare, queue, exclusive=True)
    for _ in range(2000):
        item.channel.basic_publish("", queue, b"x" * 1024)
    runner.join(timeout=10)
    assert ticks == list(range(50))


def test_consumer_callback_may_block_cooperatively(opened: Any, unique: Any) -> None:
    """A consumer callback that sleeps (a patched ``time.sleep`` would too) is not an error:
    the connection's callbacks wait for it, other greenlets run meanwhile."""
    item = opened()
    channel = item.channel
    queue = unique("blocking")
    item.call(channel.queue_declare, queue, exclusive=True)
    for i in range(30):
        channel.basic_publish("", queue, str(i).encode())
    handled: list[bytes] = []
    ticks: list[int] = []
    active = [0]
    overlaps: list[int] = []

    def on_message(ch: Any, method: Any, _properties: Any, body: bytes) -> None:
        active[0] += 1
        overlaps.append(active[0])
        gevent.sleep(0.002)  # blocks this callback only
        ch.basic_ack(method.delivery_tag)
        handled.append(body)
        active[0] -= 1

    def ticker() -> None:
        while len(handled) < 30:
            ticks.append(1)
            gevent.sleep(0.001)

    runner = gevent.spawn(ticker)
    channel.basic_consume(queue, on_message)
    wait_for(lambda: len(handled) == 30, what="every message")
    runner.join(5)
    assert handled == [str(i).encode() for i in range(30)]
    assert set(overlaps) == {1}  # never two callbacks of the connection at once
    assert len(ticks) > 10
    assert item.call(channel.queue_declare, queue, passive=True).method.message_count == 0
