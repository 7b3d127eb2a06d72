"""Stress scenarios against a real broker: a thread hammer and open/close leak cycles.

Theory of operation
-------------------
Two families, each for the callback adapters (``amqp_client``) and for the
blocking adapter (``amqp_blocking_connect`` / ``amqp_blocking_adapter``):

* **Thread hammer** -- :data:`HAMMER_THREADS` threads call
  ``add_callback_threadsafe`` while the connection consumes and publishes.
  Each worker posts one callback per message to publish, and one per delivery
  tag it takes from a shared queue (filled by the consumer, on the loop thread)
  to ack.  Every posted callback has a unique token: the test checks that each
  token ran exactly once, always on the connection's thread (the harness's loop
  thread; the calling thread of ``process_data_events`` for blocking), that
  every delivery tag was acked exactly once and nothing was redelivered, and
  then asks the broker: after the channel closed (which would requeue anything
  unacked) a ``basic_get`` finds the queue empty.

* **Leak cycles** -- :data:`CONNECTION_CYCLES` connection open/close cycles (in
  batches of :data:`CONNECTION_BATCH` concurrent connections for the loop
  adapters) and :data:`CHANNEL_CYCLES` channel open/close cycles on one
  connection.  A :class:`Snapshot` (open file descriptors from
  ``/proc/self/fd``, ``threading.active_count()``, RSS from
  ``/proc/self/statm`` and the number of gc-tracked objects, all after
  ``gc.collect()``) is taken after a warm-up and again at the end; growth must
  stay under the ``*_BOUND`` constants.  The figures are in the assertion
  messages and, when the environment variable ``AMQP_LEAK_REPORT`` names a
  file, appended to it as JSON lines.  The recorders here are plain counters,
  not :class:`~amqp_core.testing.client.KitClient` recorders, so the test itself
  keeps nothing per cycle.

Every test is marked ``amqp_live`` and ``slow``; every wait is bounded.  Import
them with ``from amqp_core.testing.stress_scenarios import *``.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import queue as queue_module
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from .. import spec
from .client import KitClient, unique_name

__all__ = [
    "CHANNEL_CYCLES",
    "CONNECTION_CYCLES",
    "HAMMER_THREADS",
    "LEAK_REPORT_ENV",
    "Snapshot",
    "test_stress_blocking_channel_cycles_do_not_leak",
    "test_stress_blocking_connection_cycles_do_not_leak",
    "test_stress_blocking_threadsafe_hammer",
    "test_stress_channel_cycles_do_not_leak",
    "test_stress_connection_cycles_do_not_leak",
    "test_stress_threadsafe_hammer",
]

pytestmark = [pytest.mark.amqp_live, pytest.mark.slow]

Params = Callable[..., Any]

#: Threads calling ``add_callback_threadsafe`` at once.
HAMMER_THREADS = 32
#: Messages each hammer thread has published (so HAMMER_THREADS * this in all).
HAMMER_PUBLISHES = 100
#: Bound on the whole hammer, in seconds.
HAMMER_TIMEOUT = 60.0
#: Connection open/close cycles per adapter.
CONNECTION_CYCLES = 1000
#: Connections opened at once by the loop adapters (the blocking one opens one at a time).
CONNECTION_BATCH = 10
#: Channel open/close cycles per adapter.
CHANNEL_CYCLES = 10000
#: Channels opened at once on the one connection.
CHANNEL_BATCH = 50
#: Cycles run before the first snapshot (caches, pools, the allocator settle).
WARMUP_FRACTION = 0.1
#: Bounds on growth between the snapshots.
FD_BOUND = 2
THREAD_BOUND = 1
RSS_BOUND_KIB = 8 * 1024
#: gc-tracked objects: a leak of one object per cycle (900+ cycles) exceeds it.
OBJECT_BOUND = 500
#: Environment variable naming a JSON-lines file the leak figures are appended to.
LEAK_REPORT_ENV = "AMQP_LEAK_REPORT"
#: Bound on one batch of connections / channels, in seconds.
BATCH_TIMEOUT = 30.0


# ---------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Snapshot:
    """What a leak would grow: descriptors, threads, resident memory, gc-tracked objects."""

    fds: int
    threads: int
    rss_kib: int
    objects: int

    @classmethod
    def take(cls) -> Snapshot:
        """Measure now, after a full collection."""
        gc.collect()
        gc.collect()
        try:
            fds = len(os.listdir("/proc/self/fd"))
        except OSError:  # not Linux: the fd figure is left out
            fds = -1
        try:
            with open("/proc/self/statm") as statm:
                rss_kib = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
        except (OSError, ValueError):
            rss_kib = -1
        return cls(fds, threading.active_count(), rss_kib, len(gc.get_objects()))


def _report(adapter: str, what: str, cycles: int, seconds: float, before: Snapshot,
            after: Snapshot) -> str:
    """Write the figures to ``$AMQP_LEAK_REPORT`` (when set); return them as one line."""
    line = (
        f"LEAK {adapter} {what}: {cycles} cycles in {seconds:.1f} s; "
        f"fds {before.fds}->{after.fds}, threads {before.threads}->{after.threads}, "
        f"rss {before.rss_kib}->{after.rss_kib} KiB, "
        f"gc objects {before.objects}->{after.objects}"
    )
    path = os.environ.get(LEAK_REPORT_ENV)
    if path:
        record = {"adapter": adapter, "what": what, "cycles": cycles,
                  "seconds": round(seconds, 2), "before": asdict(before), "after": asdict(after)}
        with open(path, "a") as report:
            report.write(json.dumps(record) + "\n")
    print(line)
    return line


def _assert_flat(before: Snapshot, after: Snapshot, line: str) -> None:
    if before.fds >= 0:
        assert after.fds - before.fds <= FD_BOUND, f"file descriptors leak: {line}"
    assert after.threads - before.threads <= THREAD_BOUND, f"threads leak: {line}"
    if before.rss_kib >= 0:
        assert after.rss_kib - before.rss_kib <= RSS_BOUND_KIB, f"memory leaks: {line}"
    assert after.objects - before.objects <= OBJECT_BOUND, f"objects leak: {line}"


# ---------------------------------------------------------------- the hammer


class _Hammer:
    """Shared bookkeeping of one hammer run (tokens posted and run, tags delivered and acked)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.lock = threading.Lock()
        self.posted: list[str] = []
        self.ran: list[tuple[str, int]] = []
        self.deliveries: list[tuple[int, bool, bytes]] = []
        self.acked: list[int] = []
        self.tags: queue_module.SimpleQueue[int] = queue_module.SimpleQueue()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    def post(self, add_callback_threadsafe: Callable[[Callable[[], None]], None], token: str,
             callback: Callable[[], None]) -> None:
        with self.lock:
            self.posted.append(token)

        def run() -> None:
            self.ran.append((token, threading.get_ident()))
            callback()

        add_callback_threadsafe(run)

    def worker(self, index: int, add_callback_threadsafe: Callable[[Callable[[], None]], None],
               publish: Callable[[bytes], None], ack: Callable[[int], None]) -> None:
        """One hammer thread: post its publishes, then post acks until told to stop."""
        try:
            for number in range(HAMMER_PUBLISHES):
                body = f"w{index}.{number}".encode()
                self.post(add_callback_threadsafe, f"publish {body!r}",
                          lambda body=body: publish(body))  # type: ignore[misc]
                self._post_acks(add_callback_threadsafe, ack)
            deadline = time.monotonic() + HAMMER_TIMEOUT
            while not self.stop.is_set() and time.monotonic() < deadline:
                if not self._post_acks(add_callback_threadsafe, ack):
                    self.stop.wait(0.002)
        except BaseException as error:  # reported by the test
            self.errors.append(error)

    def _post_acks(self, add_callback_threadsafe: Callable[[Callable[[], None]], None],
                   ack: Callable[[int], None]) -> bool:
        posted = False
        while True:
            try:
                tag = self.tags.get_nowait()
            except queue_module.Empty:
                return posted
            self.post(add_callback_threadsafe, f"ack {tag}", lambda tag=tag: ack(tag))  # type: ignore[misc]
            posted = True

    def on_message(self, method: Any, body: bytes) -> None:
        self.deliveries.append((method.delivery_tag, bool(method.redelivered), body))
        self.tags.put(method.delivery_tag)

    def start(
        self, add_callback_threadsafe: Callable[[Callable[[], None]], None],
        publish: Callable[[bytes], None], ack: Callable[[int], None],
    ) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self.worker,
                             args=(index, add_callback_threadsafe, publish, ack),
                             name=f"amqp-kit-hammer-{index}", daemon=True)
            for index in range(HAMMER_THREADS)
        ]
        for thread in threads:
            thread.start()
        return threads

    def finish(self, threads: list[threading.Thread]) -> None:
        self.stop.set()
        for thread in threads:
            thread.join(10.0)
        assert not any(thread.is_alive() for thread in threads), "a hammer thread is stuck"
        assert not self.errors, f"hammer threads failed: {self.errors!r}"

    def check(self, loop_thread: int | None) -> None:
        """Every callback once, on ``loop_thread``; every message delivered once and acked once."""
        total = self.total
        counts = collections.Counter(token for token, _thread in self.ran)
        twice = [token for token, count in counts.items() if count > 1]
        assert not twice, f"{len(twice)} callbacks ran more than once, e.g. {twice[:5]}"
        assert set(counts) == set(self.posted) and len(self.posted) == len(counts), (
            f"{len(self.posted)} callbacks posted, {len(counts)} ran")
        threads = {thread for _token, thread in self.ran}
        assert threads == {loop_thread}, (
            f"callbacks ran on threads {threads}, not only the connection's {loop_thread}")
        assert len(self.deliveries) == total, f"{len(self.deliveries)} deliveries, not {total}"
        assert not [d for d in self.deliveries if d[1]], "messages were redelivered"
        expected = {f"w{i}.{n}".encode() for i in range(HAMMER_THREADS)
                    for n in range(HAMMER_PUBLISHES)}
        assert {body for _tag, _redelivered, body in self.deliveries} == expected
        assert sorted(self.acked) == list(range(1, total + 1)), (
            f"{len(self.acked)} acks, {len(set(self.acked))} distinct, for {total} messages")


def test_stress_threadsafe_hammer(amqp_client: KitClient, amqp_params: Params) -> None:
    client = amqp_client
    connection = client.connect(amqp_params())
    channel = client.channel(connection)
    queue = unique_name("kit-hammer")
    client.call(channel.queue_declare, queue, exclusive=True)
    client.call(channel.basic_qos, prefetch_count=100)
    hammer = _Hammer(HAMMER_THREADS * HAMMER_PUBLISHES)
    notify = client.harness.notify

    def on_message(_ch: Any, method: Any, _properties: Any, body: bytes) -> None:
        hammer.on_message(method, body)

    def publish(body: bytes) -> None:
        channel.basic_publish("", queue, body)

    def ack(tag: int) -> None:
        channel.basic_ack(tag)
        hammer.acked.append(tag)
        notify()

    consumer_tag = channel.basic_consume(queue, on_message, callback=client.cb("consuming"))
    client.wait("consuming")
    threads = hammer.start(connection.add_callback_threadsafe, publish, ack)
    try:
        client.wait(lambda: len(hammer.acked) >= hammer.total or hammer.errors, HAMMER_TIMEOUT)
    finally:
        hammer.finish(threads)
    client.run_for(0.2)  # a duplicate callback would run now
    hammer.check(client.harness.loop_thread_id)
    # the broker's view: once the channel is closed nothing unacked could hide; the queue
    # must be empty
    client.call(channel.basic_cancel, consumer_tag)
    closed = client.fresh("hammer.closed")
    channel.add_on_close_callback(client.cb(closed))
    channel.close()
    client.wait(closed)
    other = client.channel(connection)
    other.add_callback(client.cb("get_empty"), [spec.Basic.GetEmpty])
    other.basic_get(queue, client.cb("got"))
    client.wait(lambda: client.count("get_empty") or client.count("got"))
    assert client.count("got") == 0, f"the queue still held {client.last('got')[3]!r}"
    declared = client.call(other.queue_declare, queue, passive=True).method
    assert declared.message_count == 0


def test_stress_blocking_threadsafe_hammer(amqp_blocking_connect: Callable[..., Any]) -> None:
    connection = amqp_blocking_connect()
    channel = connection.channel()
    queue = channel.queue_declare(unique_name("kit-bhammer"), exclusive=True).method.queue
    channel.basic_qos(prefetch_count=100)
    hammer = _Hammer(HAMMER_THREADS * HAMMER_PUBLISHES)

    def on_message(_ch: Any, method: Any, _properties: Any, body: bytes) -> None:
        hammer.on_message(method, body)

    def publish(body: bytes) -> None:
        channel.basic_publish("", queue, body)

    def ack(tag: int) -> None:
        channel.basic_ack(tag)
        hammer.acked.append(tag)

    consumer_tag = channel.basic_consume(queue, on_message)
    threads = hammer.start(connection.add_callback_threadsafe, publish, ack)
    try:
        deadline = time.monotonic() + HAMMER_TIMEOUT
        while len(hammer.acked) < hammer.total and not hammer.errors:
            assert time.monotonic() < deadline, (
                f"{len(hammer.acked)} of {hammer.total} acked within {HAMMER_TIMEOUT:g} s")
            connection.process_data_events(time_limit=0.05)
    finally:
        hammer.finish(threads)
    connection.process_data_events(time_limit=0.2)  # a duplicate callback would run now
    hammer.check(threading.get_ident())
    channel.basic_cancel(consumer_tag)
    channel.close()
    other = connection.channel()
    method, _properties, body = other.basic_get(queue)
    assert method is None, f"the queue still held {body!r}"
    assert other.queue_declare(queue, passive=True).method.message_count == 0


# ---------------------------------------------------------------- leak cycles


def _cycles(
    total: int, batch: int, run_batch: Callable[[int], None],
    settle: Callable[[], None] | None = None,
) -> tuple[Snapshot, Snapshot, float]:
    """Run ``total`` cycles in batches; snapshot after the warm-up and at the end (each
    after ``settle()``, which lets a loop finish closing its streams).

    :returns: the two snapshots and the seconds all the cycles took
    """
    warmup = max(batch, int(total * WARMUP_FRACTION) // batch * batch)
    started = time.monotonic()
    done = 0
    while done < warmup:
        run_batch(batch)
        done += batch
    if settle is not None:
        settle()
    before = Snapshot.take()
    while done < total:
        size = min(batch, total - done)
        run_batch(size)
        done += size
    seconds = time.monotonic() - started
    if settle is not None:
        settle()
    return before, Snapshot.take(), seconds


def _settle(client: KitClient) -> Callable[[], None]:
    """A hook run before each snapshot: let closing streams finish."""

    def settle() -> None:
        client.run_for(0.1)

    return settle


def test_stress_connection_cycles_do_not_leak(amqp_client: KitClient, amqp_params: Params) -> None:
    client = amqp_client
    harness = client.harness
    parameters = amqp_params()
    opened: list[Any] = []
    failed: list[BaseException] = []
    closed = [0]
    live: list[Any] = []

    def on_open(connection: Any) -> None:
        opened.append(connection)
        harness.notify()

    def on_open_error(_connection: Any, error: BaseException) -> None:
        failed.append(error)
        harness.notify()

    def on_close(_connection: Any, _error: BaseException) -> None:
        closed[0] += 1
        harness.notify()

    def run_batch(size: int) -> None:
        opened.clear()
        closed[0] = 0
        for _ in range(size):
            live.append(harness.open_connection(parameters, on_open, on_open_error, on_close))
        client.wait(lambda: len(opened) == size or failed, BATCH_TIMEOUT)
        assert not failed, f"a connection failed to open: {failed[0]!r}"
        for connection in opened:
            connection.close()
        client.wait(lambda: closed[0] == size, BATCH_TIMEOUT)
        opened.clear()
        live.clear()

    try:
        client.run_for(0.05)
        before, after, seconds = _cycles(CONNECTION_CYCLES, CONNECTION_BATCH, run_batch,
                                         _settle(client))
    finally:
        for connection in live:  # a failed batch: close what it left
            if not (connection.is_closed or connection.is_closing):
                connection.close()
        if live:
            client.wait(lambda: all(c.is_closed for c in live), 10.0)
    line = _report(harness.adapter, "connections", CONNECTION_CYCLES, seconds, before, after)
    _assert_flat(before, after, line)


def test_stress_channel_cycles_do_not_leak(amqp_client: KitClient, amqp_params: Params) -> None:
    client = amqp_client
    harness = client.harness
    connection = client.connect(amqp_params())
    opened: list[Any] = []
    closed = [0]

    def on_open(channel: Any) -> None:
        opened.append(channel)
        harness.notify()

    def on_close(_channel: Any, _reason: BaseException) -> None:
        closed[0] += 1
        harness.notify()

    def run_batch(size: int) -> None:
        opened.clear()
        closed[0] = 0
        for _ in range(size):
            connection.channel(on_open_callback=on_open)
        client.wait(lambda: len(opened) == size or not connection.is_open, BATCH_TIMEOUT)
        assert connection.is_open, "the connection closed while channels were cycled"
        for channel in opened:
            channel.add_on_close_callback(on_close)
            channel.close()
        client.wait(lambda: closed[0] == size or not connection.is_open, BATCH_TIMEOUT)
        assert connection.is_open, "the connection closed while channels were cycled"
        opened.clear()

    before, after, seconds = _cycles(CHANNEL_CYCLES, CHANNEL_BATCH, run_batch, _settle(client))
    line = _report(harness.adapter, "channels", CHANNEL_CYCLES, seconds, before, after)
    _assert_flat(before, after, line)


def test_stress_blocking_connection_cycles_do_not_leak(
    amqp_blocking_adapter: str, amqp_params: Params
) -> None:
    # the connection class itself rather than amqp_blocking_connect, whose list of every
    # connection it opened would grow with the cycles
    from ..plugins import get_connection_class

    connection_class = get_connection_class(amqp_blocking_adapter)
    parameters = amqp_params()

    def run_batch(size: int) -> None:
        for _ in range(size):
            connection = connection_class(parameters)
            try:
                assert connection.is_open
            finally:
                connection.close()

    before, after, seconds = _cycles(CONNECTION_CYCLES, CONNECTION_BATCH, run_batch)
    line = _report(amqp_blocking_adapter, "connections", CONNECTION_CYCLES, seconds, before,
                   after)
    _assert_flat(before, after, line)


def test_stress_blocking_channel_cycles_do_not_leak(
    amqp_blocking_adapter: str, amqp_blocking_connect: Callable[..., Any]
) -> None:
    connection = amqp_blocking_connect()

    def run_batch(size: int) -> None:
        for _ in range(size):
            connection.channel().close()

    before, after, seconds = _cycles(CHANNEL_CYCLES, CHANNEL_BATCH, run_batch)
    line = _report(amqp_blocking_adapter, "channels", CHANNEL_CYCLES, seconds, before, after)
    _assert_flat(before, after, line)
