"""Contract tests of an adapter's loop: soon-callbacks, timers, the thread-safe callback.

Theory of operation: every test takes ``amqp_harness`` (a fresh loop of the
adapter under test, see :mod:`amqp_core.testing.plugin`) and checks one rule
of :class:`amqp_core.io.contract.EventLoop` through ``amqp_harness.loop``
only, so they hold for any adapter.  Import them into a test module::

    from amqp_core.testing.loop_tests import *

The loop runs on the test's thread; every run is bounded by the harness
(a hard deadline), and assertions are made after the loop stopped.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from .harness import LoopHarness

__all__ = [
    "test_call_later_cancel_after_firing_and_twice_is_a_no_op",
    "test_call_later_cancelled_never_runs",
    "test_call_later_is_not_early",
    "test_call_soon_cancelled_never_runs",
    "test_call_soon_is_fifo_and_never_synchronous",
    "test_call_soon_scheduled_from_a_callback_runs_after_those_already_queued",
    "test_callbacks_run_on_the_loop_thread",
    "test_getaddrinfo_cancelled_reports_nothing",
    "test_getaddrinfo_reports_on_the_loop",
    "test_raising_callback_does_not_stop_the_loop",
    "test_threadsafe_callback_from_50_threads_runs_each_once_on_the_loop_thread",
    "test_threadsafe_callback_wakes_an_idle_loop",
    "test_time_is_monotonic_seconds",
    "test_timers_fire_in_deadline_order",
]

#: Threads and callbacks per thread of the thread-safety test.
THREADS = 50
PER_THREAD = 20
#: Longest acceptable wake-up latency of an idle loop, in seconds.
WAKE_LATENCY = 0.5


def test_time_is_monotonic_seconds(amqp_harness: LoopHarness) -> None:
    loop = amqp_harness.loop
    first = loop.time()
    assert isinstance(first, float), f"time() returned {first!r}, not a float"
    stamps: list[float] = []
    wall: list[float] = []
    def fire() -> None:
        stamps.append(loop.time())
        wall.append(time.monotonic())

    start = time.monotonic()
    loop.call_later(0.2, fire)
    amqp_harness.run_until(lambda: stamps, 5.0, what="a 0.2 s timer")
    loop_elapsed, wall_elapsed = stamps[0] - first, wall[0] - start
    # the loop's clock counts seconds, like real time (a generous margin for busy machines)
    assert abs(loop_elapsed - wall_elapsed) < max(0.1, wall_elapsed / 4), (
        f"the loop's clock advanced {loop_elapsed:.3f} s while {wall_elapsed:.3f} s passed")


def test_call_soon_is_fifo_and_never_synchronous(amqp_harness: LoopHarness) -> None:
    loop = amqp_harness.loop
    order: list[int] = []
    handles = [loop.call_soon(lambda i=i: order.append(i)) for i in range(200)]  # type: ignore[misc]
    assert order == [], "call_soon ran a callback before returning"
    assert all(callable(getattr(h, "cancel", None)) for h in handles), "handles lack cancel()"
    amqp_harness.run_until(lambda: len(order) == 200, 5.0, what="200 soon-callbacks")
    assert order == list(range(200)), "soon-callbacks did not run in FIFO order"


def test_call_soon_scheduled_from_a_callback_runs_after_those_already_queued(
    amqp_harness: LoopHarness,
) -> None:
    loop = amqp_harness.loop
    order: list[str] = []

    def first() -> None:
        order.append("first")
        loop.call_soon(lambda: order.append("nested"))

    loop.call_soon(first)
    loop.call_soon(lambda: order.append("second"))
    amqp_harness.run_until(lambda: len(order) == 3, 5.0, what="3 soon-callbacks")
    assert order == ["first", "second", "nested"]


def test_call_soon_cancelled_never_runs(amqp_harness: LoopHarness) -> None:
    loop = amqp_harness.loop
    ran: list[str] = []
    loop.call_soon(lambda: ran.append("a"))
    loop.call_soon(lambda: ran.append("cancelled")).cancel()
    loop.call_soon(lambda: ran.append("b"))
    amqp_harness.run_until(lambda: len(ran) >= 2, 5.0, what="2 soon-callbacks")
    amqp_harness.run_for(0.05)
    assert ran == ["a", "b"]


def test_timers_fire_in_deadline_order(amqp_harness: LoopHarness) -> None:
    loop = amqp_harness.loop
    order: list[str] = []
    loop.call_later(0.09, lambda: order.append("90ms"))
    loop.call_later(0.03, lambda: order.append("30ms"))
    loop.call_later(0.06, lambda: order.append("60ms"))
    loop.call_later(0.0, lambda: order.append("0ms"))
    assert order == [], "call_later ran a callback before returning"
    amqp_harness.run_until(lambda: len(order) == 4, 5.0, what="4 timers")
    assert order == ["0ms", "30ms", "60ms", "90ms"]


def test_call_later_is_not_early(amqp_harness: LoopHarness) -> None:
    loop = amqp_harness.loop
    fired: list[float] = []
    start = time.monotonic()
    loop.call_later(0.15, lambda: fired.append(time.monotonic()))
    amqp_harness.run_until(lambda: fired, 5.0, what="a 0.15 s timer")
    elapsed = fired[0] - start
    assert elapsed >= 0.14, f"a 0.15 s timer fired after {elapsed:.3f} s"
    assert elapsed < 2.0, f"a 0.15 s timer fired after {elapsed:.3f} s"


def test_call_later_cancelled_never_runs(amqp_harness: LoopHarness) -> None:
    loop = amqp_harness.loop
    ran: list[str] = []
    loop.call_later(0.02, lambda: ran.append("cancelled")).cancel()
    handle = loop.call_later(0.05, lambda: ran.append("cancelled later"))
    loop.call_soon(handle.cancel)
    loop.call_later(0.1, lambda: ran.append("kept"))
    amqp_harness.run_until(lambda: ran, 5.0, what="the kept timer")
    amqp_harness.run_for(0.05)
    assert ran == ["kept"]


def test_call_later_cancel_after_firing_and_twice_is_a_no_op(amqp_harness: LoopHarness) -> None:
    loop = amqp_harness.loop
    ran: list[str] = []
    handle = loop.call_later(0.01, lambda: ran.append("fired"))
    amqp_harness.run_until(lambda: ran, 5.0, what="a timer")
    handle.cancel()
    handle.cancel()
    soon = loop.call_soon(lambda: ran.append("soon"))
    amqp_harness.run_until(lambda: len(ran) == 2, 5.0, what="a soon-callback")
    soon.cancel()
    other = loop.call_later(0.01, lambda: ran.append("other"))
    other.cancel()
    other.cancel()
    amqp_harness.run_for(0.05)
    assert ran == ["fired", "soon"]


def test_raising_callback_does_not_stop_the_loop(amqp_harness: LoopHarness) -> None:
    loop = amqp_harness.loop
    ran: list[str] = []

    def boom() -> None:
        raise RuntimeError("deliberately raised by the amqp_core kit")

    import logging

    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # the loop logs it; keep the output clean
    try:
        loop.call_soon(boom)
        loop.call_soon(lambda: ran.append("after soon"))
        loop.call_later(0.01, boom)
        loop.call_later(0.02, lambda: ran.append("after timer"))
        amqp_harness.run_until(lambda: len(ran) == 2, 5.0, what="callbacks after a raise")
    finally:
        logger.setLevel(level)
    assert ran == ["after soon", "after timer"]


def test_callbacks_run_on_the_loop_thread(amqp_harness: LoopHarness) -> None:
    loop = amqp_harness.loop
    threads: list[int] = []
    loop.call_soon(lambda: threads.append(threading.get_ident()))
    loop.call_later(0.01, lambda: threads.append(threading.get_ident()))
    amqp_harness.run_until(lambda: len(threads) == 2, 5.0, what="2 callbacks")
    assert threads == [amqp_harness.loop_thread_id] * 2


def test_threadsafe_callback_from_50_threads_runs_each_once_on_the_loop_thread(
    amqp_harness: LoopHarness,
) -> None:
    loop = amqp_harness.loop
    total = THREADS * PER_THREAD
    ran: list[tuple[int, int, int]] = []  # (thread index, sequence, running thread id)
    barrier = threading.Barrier(THREADS, timeout=10.0)
    errors: list[BaseException] = []

    def record(index: int, sequence: int) -> None:
        ran.append((index, sequence, threading.get_ident()))
        if len(ran) == total:
            amqp_harness.stop()

    def submit(index: int) -> None:
        try:
            barrier.wait()
            for sequence in range(PER_THREAD):
                loop.call_soon_threadsafe(lambda i=index, s=sequence: record(i, s))  # type: ignore[misc]
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    workers = [threading.Thread(target=submit, args=(i,), daemon=True) for i in range(THREADS)]
    # start the threads from the loop, once it runs: they find it running (and idle)
    def start_workers() -> None:
        for worker in workers:
            worker.start()

    loop.call_soon(start_workers)
    amqp_harness.run(10.0)
    for worker in workers:
        worker.join(10.0)
    assert not errors, errors
    assert len(ran) == total, f"{len(ran)} of {total} thread-safe callbacks ran"
    assert len(set((i, s) for i, s, _ in ran)) == total, "some callbacks ran more than once"
    wrong = {t for _, _, t in ran if t != amqp_harness.loop_thread_id}
    assert not wrong, "thread-safe callbacks ran outside the loop's thread"
    for index in range(THREADS):
        mine = [s for i, s, _ in ran if i == index]
        assert mine == sorted(mine), f"thread {index}'s callbacks ran out of order: {mine}"


def test_threadsafe_callback_wakes_an_idle_loop(amqp_harness: LoopHarness) -> None:
    loop = amqp_harness.loop
    woken: list[tuple[float, int]] = []
    sent: list[float] = []

    def from_thread() -> None:
        time.sleep(0.2)  # the loop is idle (no timer, no I/O) by now
        sent.append(time.monotonic())
        loop.call_soon_threadsafe(on_loop)

    def on_loop() -> None:
        woken.append((time.monotonic(), threading.get_ident()))
        amqp_harness.stop()

    worker = threading.Thread(target=from_thread, daemon=True)
    loop.call_soon(worker.start)
    amqp_harness.run(5.0)
    worker.join(5.0)
    assert woken, "the thread-safe callback never ran"
    latency = woken[0][0] - sent[0]
    assert latency < WAKE_LATENCY, (
        f"an idle loop took {latency:.3f} s to run a thread-safe callback")
    assert woken[0][1] == amqp_harness.loop_thread_id


def test_getaddrinfo_reports_on_the_loop(amqp_harness: LoopHarness) -> None:
    loop = amqp_harness.loop
    results: list[tuple[Any, int]] = []
    loop.getaddrinfo("127.0.0.1", 5672, socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP,
                     0, lambda result: results.append((result, threading.get_ident())))
    assert results == [], "getaddrinfo reported inside the call"
    amqp_harness.run_until(lambda: results, 10.0, what="getaddrinfo's callback")
    amqp_harness.run_for(0.02)
    assert len(results) == 1, "getaddrinfo reported more than once"
    result, thread = results[0]
    assert thread == amqp_harness.loop_thread_id
    assert isinstance(result, list) and result, result
    family, socktype, _proto, _name, sockaddr = result[0]
    assert family == socket.AF_INET and socktype == socket.SOCK_STREAM
    assert sockaddr[:2] == ("127.0.0.1", 5672)


def test_getaddrinfo_cancelled_reports_nothing(amqp_harness: LoopHarness) -> None:
    loop = amqp_harness.loop
    results: list[Any] = []
    handle = loop.getaddrinfo("127.0.0.1", 5672, socket.AF_INET, socket.SOCK_STREAM, 0, 0,
                              results.append)
    handle.cancel()
    amqp_harness.run_for(0.2)
    assert results == []
