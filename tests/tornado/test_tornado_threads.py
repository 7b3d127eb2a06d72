"""TornadoConnection and threads: a loop on a non-main thread, acks from 16 threads, and closing
while messages are being published.

Every thread is joined with a timeout and every wait is bounded.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from tornado.ioloop import IOLoop
from tornado_helpers import TornadoHarness

import amqp_core as pika
from amqp_adapter_tornado import TornadoConnection
from amqp_core.channel import Channel

Params = Callable[..., pika.ConnectionParameters]

THREADS = 16
PER_THREAD = 1000


def _fill(h: TornadoHarness, channel: Channel, queue_name: str, count: int, body: bytes) -> None:
    """Publish ``count`` messages in bursts and wait until the broker holds them all."""
    for start in range(0, count, 1000):
        for _ in range(min(1000, count - start)):
            channel.basic_publish("", queue_name, body)
        h.run_for(0)
    deadline = time.monotonic() + 30
    while True:
        held = h.call(channel.queue_declare, queue_name, passive=True).method.message_count
        if held == count or time.monotonic() > deadline:
            break
        h.run_for(0.02)
    assert held == count


def test_loop_on_a_non_main_thread(params: Params, unique: Any) -> None:
    ready = threading.Event()
    consuming = threading.Event()
    finished = threading.Event()
    state: dict[str, Any] = {"threads": set(), "bodies": [], "errors": []}
    total = 200
    queue_name = unique("thread")

    def loop_thread() -> None:
        ioloop = IOLoop(make_current=False)
        state["ioloop"] = ioloop
        ioloop.add_callback(ready.set)
        try:
            ioloop.start()
        except Exception as error:  # reported to the main thread
            state["errors"].append(error)
        finally:
            ioloop.close()

    def note_thread() -> None:
        state["threads"].add(threading.current_thread().name)

    def on_message(channel: Channel, method: Any, _properties: Any, body: bytes) -> None:
        note_thread()
        state["bodies"].append(body)
        channel.basic_ack(method.delivery_tag)
        if len(state["bodies"]) == total:
            finished.set()

    def on_channel(channel: Channel) -> None:
        note_thread()
        state["channel"] = channel
        def declared(_frame: Any) -> None:
            channel.basic_consume(queue_name, on_message, callback=lambda _f: consuming.set())

        channel.queue_declare(queue_name, exclusive=True, callback=declared)

    def on_open_error(_conn: Any, error: BaseException) -> None:
        state["errors"].append(error)
        state["ioloop"].stop()

    def on_close(_conn: Any, reason: BaseException) -> None:
        note_thread()
        state["closed"] = reason
        state["ioloop"].stop()

    def on_open(conn: TornadoConnection) -> None:
        note_thread()
        conn.channel(on_open_callback=on_channel)

    def create() -> None:  # on the loop's thread
        state["connection"] = TornadoConnection(
            params(),
            on_open_callback=on_open,
            on_open_error_callback=on_open_error,
            on_close_callback=on_close,
            custom_ioloop=state["ioloop"],
        )

    thread = threading.Thread(target=loop_thread, name="tornado-loop", daemon=True)
    thread.start()
    try:
        assert ready.wait(10)
        ioloop: IOLoop = state["ioloop"]
        ioloop.add_callback(create)
        assert consuming.wait(15), state["errors"]
        connection: TornadoConnection = state["connection"]
        assert connection.ioloop is ioloop
        # the main thread publishes through the thread-safe callback
        for index in range(total):
            connection.add_callback_threadsafe(functools.partial(
                state["channel"].basic_publish, "", queue_name, f"m{index}".encode()))
        assert finished.wait(15), len(state["bodies"])
        connection.add_callback_threadsafe(connection.close)
    finally:
        thread.join(15)
    assert not thread.is_alive()
    assert not state["errors"]
    assert state["bodies"] == [f"m{i}".encode() for i in range(total)]
    assert state["threads"] == {"tornado-loop"}
    assert isinstance(state["closed"], pika.exceptions.ConnectionClosedByClient)
    assert state["connection"].is_closed


def test_thread_safe_acks_from_16_threads(
    harness: TornadoHarness, params: Params, unique: Any
) -> None:
    total = THREADS * PER_THREAD
    conn = harness.connect(params())
    channel = harness.channel(conn)
    queue_name = unique("acks")
    harness.call(channel.queue_declare, queue_name, exclusive=True)
    _fill(harness, channel, queue_name, total, b"work")
    channel.add_on_close_callback(harness.cb("channel.close"))

    delivered: list[int] = []
    redelivered: list[int] = []
    acked: list[int] = []
    inboxes: list[queue.SimpleQueue[int]] = [queue.SimpleQueue() for _ in range(THREADS)]
    failures: list[BaseException] = []

    def on_message(_channel: Channel, method: Any, _properties: Any, _body: bytes) -> None:
        tag = method.delivery_tag
        delivered.append(tag)
        if method.redelivered:
            redelivered.append(tag)
        inboxes[tag % THREADS].put(tag)

    def ack_on_loop(tag: int) -> None:
        channel.basic_ack(tag)
        acked.append(tag)

    stop = threading.Event()

    def worker(inbox: queue.SimpleQueue[int]) -> None:
        done = 0
        try:
            while done < PER_THREAD and not stop.is_set():
                try:
                    tag = inbox.get(timeout=0.2)
                except queue.Empty:
                    continue
                conn.add_callback_threadsafe(functools.partial(ack_on_loop, tag))
                done += 1
        except BaseException as error:
            failures.append(error)

    workers = [threading.Thread(target=worker, args=(inbox,), name=f"acker-{index}", daemon=True)
               for index, inbox in enumerate(inboxes)]
    for thread in workers:
        thread.start()
    try:
        harness.call(channel.basic_qos, prefetch_count=1000)
        tag = unique("ctag")
        harness.call(channel.basic_consume, queue_name, on_message, consumer_tag=tag)
        harness.wait(lambda: len(acked) == total or failures or harness.calls.get("channel.close"),
                     timeout=90)
    finally:
        stop.set()
        for thread in workers:
            thread.join(10)
    assert not harness.calls.get("channel.close"), harness.calls["channel.close"]
    assert not failures
    assert not any(thread.is_alive() for thread in workers)
    assert len(delivered) == total and not redelivered
    assert sorted(acked) == list(range(1, total + 1))  # each acked exactly once
    harness.call(channel.basic_cancel, tag)
    # the broker processed every ack before this round trip: nothing is left, nothing unknown
    assert not harness.calls.get("channel.close"), harness.calls["channel.close"]
    channel.close()
    (_channel, reason) = harness.wait("channel.close")
    # closed by us, not by the broker (an unknown or repeated tag is 406 PRECONDITION_FAILED)
    assert isinstance(reason, pika.exceptions.ChannelClosedByClient), reason
    assert not isinstance(reason, pika.exceptions.ChannelClosedByBroker)
    check = harness.channel(conn)
    declared = harness.call(check.queue_declare, queue_name, passive=True)
    assert declared.method.message_count == 0
    assert declared.method.consumer_count == 0


def test_close_while_publishing(
    harness: TornadoHarness, params: Params, unique: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    conn = harness.connect(params(), "pub")
    channel = harness.channel(conn)
    queue_name = unique("closing")
    harness.call(channel.queue_declare, queue_name, exclusive=True)
    published = 0
    stopped_by: list[BaseException] = []

    def burst() -> None:
        nonlocal published
        try:
            for _ in range(200):
                channel.basic_publish("", queue_name, b"x" * 512)
                published += 1
        except pika.exceptions.AMQPError as error:
            stopped_by.append(error)
            return
        harness.ioloop.add_callback(burst)

    burst()
    harness.ioloop.call_later(0.1, conn.close)
    _conn, reason = harness.wait("pub.close")
    harness.wait(lambda: stopped_by)
    harness.wait_streams_closed()
    assert isinstance(reason, pika.exceptions.ConnectionClosedByClient), reason
    assert isinstance(stopped_by[0], pika.exceptions.ChannelWrongStateError)
    assert published > 200
    assert conn.is_closed and not channel.is_open
    assert conn.event_loop.watched_fds == 0  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_close_right_after_a_large_backlog_delivers_it(
    harness: TornadoHarness, params: Params, unique: Any
) -> None:
    conn = harness.connect(params())
    channel = harness.channel(conn)
    queue_name = unique("backlog")
    harness.call(channel.queue_declare, queue_name, auto_delete=False)
    count, body = 200, b"b" * (100 * 1024)  # 20 MB: well over the write buffer's high-water mark
    for _ in range(count):
        channel.basic_publish("", queue_name, body)
    conn.close()  # in the same loop turn: the buffered publishes go out first
    harness.wait(lambda: conn.is_closed, timeout=60)
    harness.wait_streams_closed()

    checker = harness.connect(params())
    check = harness.channel(checker)
    deadline = time.monotonic() + 30
    try:
        while True:
            held = harness.call(check.queue_declare, queue_name, passive=True).method.message_count
            if held == count or time.monotonic() > deadline:
                break
            harness.run_for(0.05)
        assert held == count
    finally:
        harness.call(check.queue_delete, queue_name)


def test_close_from_another_thread_while_threads_publish(params: Params, unique: Any) -> None:
    h = TornadoHarness()
    stop = threading.Event()
    errors: list[BaseException] = []
    try:
        conn = h.connect(params())
        channel = h.channel(conn)
        queue_name = unique("threads")
        h.call(channel.queue_declare, queue_name, exclusive=True)
        refused: list[BaseException] = []

        def publish() -> None:
            try:
                channel.basic_publish("", queue_name, b"p")
            except pika.exceptions.ChannelWrongStateError as error:
                refused.append(error)

        def publisher() -> None:
            try:
                while not stop.is_set():
                    conn.add_callback_threadsafe(publish)
                    time.sleep(0.0005)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=publisher, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        closer = threading.Timer(0.2, lambda: conn.add_callback_threadsafe(conn.close))
        closer.start()
        h.wait(lambda: conn.is_closed)
        h.run_for(0.05)
        stop.set()
        for thread in [*threads, closer]:
            thread.join(10)
        h.run_for(0.05)  # callbacks queued by the publishers before they stopped
        assert refused  # publishes that arrived after the close were refused, not lost silently
        assert not errors
    finally:
        stop.set()
        h.close()
