"""Tests for the selectors-based IOLoop and its EventLoop (amqp_core.adapters._select_ioloop)."""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from amqp_core.adapters._select_ioloop import IOLoop, SelectEventLoop
from amqp_core.io import resolver
from amqp_core.io.contract import EventLoop, TimerHandle
from amqp_core.io.fd_streams import FdWatchingLoop

POLLERS = ["select"] + [
    name for name, attr in (("poll", "poll"), ("epoll", "epoll"), ("kqueue", "kqueue"))
    if hasattr(select, attr)
]
GUARD = 10.0  # seconds: no test loop may run longer than this


@pytest.fixture(params=POLLERS)
def ioloop(request: pytest.FixtureRequest) -> Iterator[IOLoop]:
    loop = IOLoop(request.param)
    yield loop
    loop.close()


def run(loop: IOLoop, timeout: float = GUARD) -> float:
    """Run ``loop`` until it is stopped; fail if that takes longer than ``timeout``."""
    fired: list[bool] = []

    def guard() -> None:
        fired.append(True)
        loop.stop()

    handle = loop.call_later(timeout, guard)
    start = time.monotonic()
    loop.start()
    handle.cancel()
    assert not fired, f"the loop was not stopped within {timeout} s"
    return time.monotonic() - start


# ---------------------------------------------------------------- construction


def test_poller_types() -> None:
    for name in POLLERS:
        loop = IOLoop(name)
        assert loop.poller_type == name
        loop.close()
    loop = IOLoop()
    best = next(name for name in ("epoll", "kqueue", "poll", "select") if name in POLLERS)
    assert loop.poller_type == best
    loop.close()


def test_bad_poller_type() -> None:
    with pytest.raises(ValueError, match="poller_type"):
        IOLoop("devpoll-ish")
    with pytest.raises(TypeError, match="poller_type"):
        IOLoop(3)  # type: ignore[arg-type]
    if not hasattr(select, "kqueue"):
        with pytest.raises(ValueError, match="not available"):
            IOLoop("kqueue")


def test_constants_are_pikas() -> None:
    assert (IOLoop.READ, IOLoop.WRITE, IOLoop.ERROR) == (0x01, 0x04, 0x08)


# ---------------------------------------------------------------- callbacks


def test_soon_callbacks_run_in_fifo_order_and_later_ones_wait(ioloop: IOLoop) -> None:
    order: list[str] = []

    def a() -> None:
        order.append("a")
        ioloop.add_callback(lambda: order.append("d"))

    ioloop.add_callback(a)
    ioloop.add_callback_threadsafe(lambda: order.append("b"))
    ioloop.call_soon(lambda: order.append("c"))
    ioloop.poll()
    assert order == ["a", "b", "c"]  # "d" was queued during the turn: next turn
    ioloop.poll()
    assert order == ["a", "b", "c", "d"]


def test_call_soon_handle_cancel(ioloop: IOLoop) -> None:
    ran: list[int] = []
    handle = ioloop.call_soon(lambda: ran.append(1))
    ioloop.call_soon(lambda: ran.append(2))
    handle.cancel()
    handle.cancel()
    ioloop.poll()
    assert ran == [2]


def test_callback_exceptions_are_logged_and_the_loop_goes_on(
    ioloop: IOLoop, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    ioloop.add_callback(boom)
    ioloop.add_callback(lambda: ran.append("after"))
    ioloop.call_later(0, boom)
    ioloop.call_later(0.001, ioloop.stop)
    with caplog.at_level(logging.ERROR):
        run(ioloop)
    assert ran == ["after"]
    assert sum("boom" in (r.exc_text or "") for r in caplog.records) == 2


def test_add_callback_rejects_non_callables(ioloop: IOLoop) -> None:
    with pytest.raises(TypeError, match="callback"):
        ioloop.add_callback_threadsafe(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callback"):
        ioloop.call_soon(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------- timers


def test_timers_fire_in_deadline_order_and_fifo_on_ties(ioloop: IOLoop) -> None:
    order: list[str] = []
    ioloop.call_later(0.03, lambda: order.append("30ms"))
    ioloop.call_later(0.01, lambda: order.append("10ms"))
    ioloop.call_later(0.02, lambda: order.append("20ms"))
    for name in ("t0", "t1", "t2"):
        ioloop.call_later(0, lambda name=name: order.append(name))  # type: ignore[misc]
    ioloop.call_later(0.05, ioloop.stop)
    elapsed = run(ioloop)
    assert order == ["t0", "t1", "t2", "10ms", "20ms", "30ms"]
    assert elapsed >= 0.045


def test_timer_cancel_and_remove_timeout(ioloop: IOLoop) -> None:
    ran: list[str] = []
    keep = ioloop.call_later(0.01, lambda: ran.append("keep"))
    drop = ioloop.call_later(0.005, lambda: ran.append("drop"))
    drop2 = ioloop.call_later(0.005, lambda: ran.append("drop2"))
    ioloop.remove_timeout(drop)
    drop2.cancel()
    drop2.cancel()
    assert isinstance(keep, TimerHandle)
    ioloop.call_later(0.03, ioloop.stop)
    run(ioloop)
    assert ran == ["keep"]
    keep.cancel()  # after it ran: no-op
    ioloop.remove_timeout(keep)
    ioloop.call_later(0, ioloop.stop)
    run(ioloop)
    assert ran == ["keep"]


def test_timer_cancelled_by_an_earlier_timer_of_the_same_turn(ioloop: IOLoop) -> None:
    ran: list[str] = []
    later: list[TimerHandle] = []
    ioloop.call_later(0, lambda: later[0].cancel())
    later.append(ioloop.call_later(0, lambda: ran.append("cancelled one")))
    ioloop.call_later(0.01, ioloop.stop)
    run(ioloop)
    assert ran == []


def test_zero_delay_timer_rescheduling_itself_does_not_starve_io(ioloop: IOLoop) -> None:
    count = [0]

    def again() -> None:
        count[0] += 1
        ioloop.call_later(0, again)

    ioloop.call_later(0, again)
    for _ in range(5):
        ioloop.poll()
    assert count[0] == 5


def test_many_cancelled_timers(ioloop: IOLoop) -> None:
    fired: list[int] = []
    handles = [ioloop.call_later(0.001 * (i % 50), lambda i=i: fired.append(i))  # type: ignore[misc]
               for i in range(3000)]
    for i, handle in enumerate(handles):
        if i % 10:
            handle.cancel()
    ioloop.call_later(0.08, ioloop.stop)
    run(ioloop)
    assert sorted(fired) == list(range(0, 3000, 10))
    deadlines = [handles[i].deadline for i in fired]
    assert deadlines == sorted(deadlines)


def test_call_later_validation(ioloop: IOLoop) -> None:
    with pytest.raises(ValueError, match="delay"):
        ioloop.call_later(-1, lambda: None)
    with pytest.raises(ValueError, match="delay"):
        ioloop.call_later(float("nan"), lambda: None)
    with pytest.raises(TypeError, match="delay"):
        ioloop.call_later("1", lambda: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callback"):
        ioloop.call_later(1, "nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="timeout_handle"):
        ioloop.remove_timeout(object())  # type: ignore[arg-type]


# ---------------------------------------------------------------- threads, stop, start


def test_add_callback_threadsafe_from_50_threads_wakes_an_idle_loop(ioloop: IOLoop) -> None:
    n = 50
    calls: list[tuple[int, int]] = []
    loop_thread = threading.get_ident()
    barrier = threading.Barrier(n + 1, timeout=GUARD)

    def record(i: int) -> None:
        calls.append((i, threading.get_ident()))
        if len(calls) == n:
            ioloop.stop()

    def worker(i: int) -> None:
        barrier.wait()
        ioloop.add_callback_threadsafe(lambda: record(i))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()

    def release() -> None:  # the loop is idle (blocked in select) when the threads go
        threading.Thread(target=barrier.wait).start()

    ioloop.call_later(0.05, release)
    elapsed = run(ioloop)
    for thread in threads:
        thread.join(GUARD)
    assert sorted(i for i, _ in calls) == list(range(n))
    assert {ident for _, ident in calls} == {loop_thread}
    assert elapsed < 2.0  # woken through the socketpair, not by a timeout


def test_stop_from_another_thread(ioloop: IOLoop) -> None:
    def later() -> None:
        time.sleep(0.05)
        ioloop.add_callback_threadsafe(ioloop.stop)

    thread = threading.Thread(target=later)
    thread.start()
    elapsed = run(ioloop)
    thread.join(GUARD)
    assert 0.04 <= elapsed < 2.0


def test_direct_stop_from_another_thread_wakes_the_loop(ioloop: IOLoop) -> None:
    timer = threading.Timer(0.05, ioloop.stop)
    timer.start()
    elapsed = run(ioloop)
    timer.join(GUARD)
    assert elapsed < 2.0


def test_stop_from_a_callback_finishes_the_turn(ioloop: IOLoop) -> None:
    ran: list[str] = []
    ioloop.add_callback(ioloop.stop)
    ioloop.add_callback(lambda: ran.append("same turn"))
    run(ioloop)
    assert ran == ["same turn"]
    # restartable
    ioloop.add_callback(ioloop.stop)
    run(ioloop)


def test_stop_before_start_returns_at_once(ioloop: IOLoop) -> None:
    ioloop.stop()
    assert run(ioloop) < 1.0
    assert not ioloop.is_running


def test_start_is_not_reentrant_and_close_rules(ioloop: IOLoop) -> None:
    errors: list[BaseException] = []

    def nested() -> None:
        try:
            ioloop.start()
        except RuntimeError as exc:
            errors.append(exc)
        try:
            ioloop.close()
        except RuntimeError as exc:
            errors.append(exc)
        ioloop.stop()

    ioloop.add_callback(nested)
    run(ioloop)
    assert len(errors) == 2
    ioloop.close()
    ioloop.close()
    assert ioloop.is_closed
    with pytest.raises(RuntimeError, match="closed"):
        ioloop.start()
    ioloop.add_callback_threadsafe(lambda: None)  # late callers do not crash


# ---------------------------------------------------------------- fd handlers


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_add_update_remove_handler(
    ioloop: IOLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    seen: list[int] = []

    def handler(fd: int, events: int) -> None:
        assert fd == a.fileno()
        seen.append(events)
        if events & IOLoop.READ:
            a.recv(100)

    ioloop.add_handler(a.fileno(), handler, IOLoop.READ | IOLoop.ERROR)
    with pytest.raises(ValueError, match="already"):
        ioloop.add_handler(a.fileno(), handler, IOLoop.READ)
    b.send(b"x")
    ioloop.poll()
    assert seen == [IOLoop.READ]
    ioloop.update_handler(a.fileno(), IOLoop.READ | IOLoop.WRITE)
    ioloop.poll()
    assert seen[-1] == IOLoop.WRITE
    b.send(b"y")
    ioloop.poll()
    assert seen[-1] == IOLoop.READ | IOLoop.WRITE
    ioloop.update_handler(a.fileno(), IOLoop.ERROR)  # watching nothing selectable
    b.send(b"z")
    count = len(seen)
    ioloop.call_later(0, lambda: None)
    ioloop.poll()
    assert len(seen) == count
    ioloop.remove_handler(a.fileno())
    with pytest.raises(ValueError, match="no handler"):
        ioloop.remove_handler(a.fileno())
    with pytest.raises(ValueError, match="no handler"):
        ioloop.update_handler(a.fileno(), IOLoop.READ)


def test_handler_removed_by_another_handler_is_not_called(ioloop: IOLoop) -> None:
    pairs = [socket.socketpair() for _ in range(2)]
    try:
        called: list[int] = []
        fds = [p[0].fileno() for p in pairs]

        def handler(fd: int, events: int) -> None:
            called.append(fd)
            other = fds[1] if fd == fds[0] else fds[0]
            ioloop.remove_handler(other)

        for fd in fds:
            ioloop.add_handler(fd, handler, IOLoop.WRITE)
        ioloop.poll()
        assert len(called) == 1
        ioloop.remove_handler(called[0])
    finally:
        for x, y in pairs:
            x.close()
            y.close()


def test_reader_writer_watching(ioloop: IOLoop, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    events: list[str] = []
    ioloop.add_reader(a.fileno(), lambda: events.append("r") or a.recv(10))
    ioloop.add_writer(a.fileno(), lambda: events.append("w"))
    with pytest.raises(ValueError, match="already watched"):
        ioloop.add_handler(a.fileno(), lambda fd, ev: None, IOLoop.READ)
    b.send(b"x")
    ioloop.poll()
    assert events == ["r", "w"]
    assert ioloop.remove_writer(a.fileno())
    assert not ioloop.remove_writer(a.fileno())
    b.send(b"x")
    ioloop.poll()
    assert events == ["r", "w", "r"]
    assert ioloop.remove_reader(a.fileno())
    assert not ioloop.remove_reader(a.fileno())


def test_handler_validation(ioloop: IOLoop) -> None:
    with pytest.raises(TypeError, match="fd"):
        ioloop.add_handler("3", lambda fd, ev: None, IOLoop.READ)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fd"):
        ioloop.add_handler(-1, lambda fd, ev: None, IOLoop.READ)
    with pytest.raises(TypeError, match="handler"):
        ioloop.add_handler(0, None, IOLoop.READ)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="events"):
        ioloop.add_handler(0, lambda fd, ev: None, 0x100)


# ---------------------------------------------------------------- the EventLoop contract


@pytest.fixture
def event_loop() -> Iterator[SelectEventLoop]:
    loop = SelectEventLoop()
    yield loop
    loop.close()


def run_contract(loop: SelectEventLoop, body: Callable[[], None]) -> None:
    fired: list[bool] = []

    def guard() -> None:
        fired.append(True)
        loop.stop_soon()

    handle = loop.call_later(GUARD, guard)
    loop.call_soon(body)
    loop.run_until_stopped()
    handle.cancel()
    assert not fired, "the loop was not stopped in time"


def test_select_event_loop_satisfies_the_contract(event_loop: SelectEventLoop) -> None:
    assert isinstance(event_loop, EventLoop)
    assert isinstance(event_loop.ioloop, IOLoop)
    with pytest.raises(TypeError, match="ioloop"):
        SelectEventLoop(object())  # type: ignore[arg-type]


def test_contract_scheduling(event_loop: SelectEventLoop) -> None:
    order: list[str] = []
    t0 = event_loop.time()

    def body() -> None:
        event_loop.call_later(-5, lambda: order.append("negative delay = now"))
        event_loop.call_later(0.02, lambda: (order.append("later"), event_loop.stop_soon()))
        cancelled = event_loop.call_soon(lambda: order.append("cancelled"))
        event_loop.call_soon(lambda: order.append("soon"))
        cancelled.cancel()
        threading.Thread(
            target=lambda: event_loop.call_soon_threadsafe(lambda: order.append("thread"))
        ).start()

    run_contract(event_loop, body)
    assert order[0] == "soon"
    assert set(order) == {"soon", "negative delay = now", "thread", "later"}
    assert order[-1] == "later"
    assert event_loop.time() - t0 >= 0.02


def test_contract_getaddrinfo(event_loop: SelectEventLoop) -> None:
    results: list[object] = []
    threads: list[int] = []

    def done(result: object) -> None:
        results.append(result)
        threads.append(threading.get_ident())
        if len(results) == 2:
            event_loop.stop_soon()

    def body() -> None:
        event_loop.getaddrinfo(
            "127.0.0.1", 5671, socket.AF_INET, socket.SOCK_STREAM, 0, 0, done)
        cancelled = event_loop.getaddrinfo(
            "127.0.0.1", 1, socket.AF_INET, socket.SOCK_STREAM, 0, 0, done)
        cancelled.cancel()
        event_loop.getaddrinfo(
            "not an address", 1, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST,
            done)

    run_contract(event_loop, body)
    ok = [r for r in results if isinstance(r, list)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(ok) == 1 and ok[0][0][4] == ("127.0.0.1", 5671)
    assert len(errors) == 1 and isinstance(errors[0], socket.gaierror)
    assert set(threads) == {threading.get_ident()}


def test_ioloop_is_an_fd_watching_loop(ioloop: IOLoop) -> None:
    assert isinstance(ioloop, FdWatchingLoop)


def test_resolver_uses_a_small_shared_pool_of_daemon_threads(event_loop: SelectEventLoop) -> None:
    results: list[object] = []

    def done(result: object) -> None:
        results.append(result)
        if len(results) == 40:
            event_loop.stop_soon()

    def body() -> None:
        for port in range(40):
            event_loop.getaddrinfo("127.0.0.1", port, socket.AF_INET, socket.SOCK_STREAM, 0,
                                   socket.AI_NUMERICHOST, done)

    run_contract(event_loop, body)
    assert all(isinstance(r, list) for r in results)
    workers = [t for t in threading.enumerate() if t.name == "amqp-core-resolver"]
    assert 1 <= len(workers) <= resolver.MAX_WORKERS
    assert all(t.daemon for t in workers)
    with pytest.raises(TypeError, match="on_done"):
        resolver.threaded_getaddrinfo(event_loop.call_soon_threadsafe, "h", 1, 0, 0, 0, 0,
                                      None)  # type: ignore[arg-type]
