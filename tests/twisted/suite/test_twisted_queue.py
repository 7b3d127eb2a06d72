"""ClosableDeferredQueue: put/get, close(reason) errbacks waiters and rejects later calls."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import CancelledError, DeferredQueue, QueueOverflow, QueueUnderflow

from amqp_adapter_twisted import ClosableDeferredQueue
from amqp_core.exceptions import ConsumerCancelled


def result_of(deferred: Any) -> Any:
    """The result of an already-fired Deferred (its Failure consumed)."""
    box: list[Any] = []
    deferred.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0]


def test_is_a_deferred_queue_and_fifo() -> None:
    queue = ClosableDeferredQueue()
    assert isinstance(queue, DeferredQueue)
    assert queue.put(1) is None
    queue.put(2)
    assert list(queue.pending) == [1, 2]
    assert result_of(queue.get()) == 1
    assert result_of(queue.get()) == 2
    assert not queue.pending


def test_waiting_getters_are_served_in_order() -> None:
    queue = ClosableDeferredQueue()
    first, second = queue.get(), queue.get()
    assert len(queue.waiting) == 2
    assert not first.called
    queue.put("a")
    queue.put("b")
    assert result_of(first) == "a"
    assert result_of(second) == "b"
    assert not queue.waiting


def test_close_errbacks_every_waiter_and_drops_pending() -> None:
    queue = ClosableDeferredQueue()
    waiters = [queue.get() for _ in range(3)]
    reason = ConsumerCancelled("gone")
    queue.close(reason)
    assert queue.closed is reason
    assert not queue.waiting
    for waiter in waiters:
        failure = result_of(waiter)
        assert failure.value is reason


def test_later_puts_and_gets_fail_with_the_reason() -> None:
    queue = ClosableDeferredQueue()
    queue.put("kept")
    reason = RuntimeError("closed")
    queue.close(reason)
    assert not queue.pending
    assert result_of(queue.get()).value is reason
    assert result_of(queue.put("late")).value is reason
    assert not queue.pending


def test_drain_takes_what_is_held() -> None:
    queue = ClosableDeferredQueue()
    for item in range(3):
        queue.put(item)
    assert queue.drain() == [0, 1, 2]
    assert not queue.pending


def test_size_and_backlog_limits() -> None:
    queue = ClosableDeferredQueue(size=1, backlog=1)
    queue.put(1)
    with pytest.raises(QueueOverflow):
        queue.put(2)
    assert result_of(queue.get()) == 1
    queue.get()
    with pytest.raises(QueueUnderflow):
        queue.get()


def test_cancelled_get_leaves_the_queue() -> None:
    queue = ClosableDeferredQueue()
    waiter = queue.get()
    waiter.cancel()
    assert result_of(waiter).check(CancelledError)
    assert not queue.waiting
    queue.put("x")
    assert list(queue.pending) == ["x"]


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="size"):
        ClosableDeferredQueue(size="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backlog"):
        ClosableDeferredQueue(backlog=-1)
    with pytest.raises(TypeError, match="reason"):
        ClosableDeferredQueue().close(None)  # type: ignore[arg-type]


class Soon:
    """A call_soon that keeps the scheduled calls until ``run``."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def __call__(self, callback: Any) -> None:
        self.calls.append(callback)

    def run(self) -> None:
        calls, self.calls = self.calls, []
        for call in calls:
            call()


def test_put_soon_serves_the_first_at_once_and_the_rest_once_per_turn() -> None:
    queue = ClosableDeferredQueue()
    soon = Soon()
    queue.put_soon("kept", soon)  # nobody waits: held, nothing scheduled
    assert soon.calls == [] and result_of(queue.get()) == "kept"
    first, second, third = queue.get(), queue.get(), queue.get()
    queue.put_soon("a", soon)  # the first of the turn: at once, as put() would
    assert result_of(first) == "a" and len(soon.calls) == 1
    queue.put_soon("b", soon)
    queue.put_soon("c", soon)
    assert len(soon.calls) == 1 and not second.called  # one wake-up for the rest of the turn
    late = queue.get()  # queued behind the older waiters, never ahead of them
    queue.put_soon("d", soon)
    soon.run()
    assert [result_of(d) for d in (second, third, late)] == ["b", "c", "d"]
    assert not queue.pending and not queue.waiting
    queue.get().addCallback(lambda item: None)
    queue.put_soon("next turn", soon)  # a new turn opens a new batch
    assert len(soon.calls) == 1 and not queue.waiting


def test_put_soon_consumer_takes_the_batch_without_waiting() -> None:
    queue = ClosableDeferredQueue()
    soon = Soon()
    taken: list[Any] = []
    resumed: list[Any] = []

    def consumer(item: Any) -> None:
        resumed.append(item)
        taken.append(item)
        while True:
            following = queue.get()
            if not following.called:
                following.addCallback(consumer)
                return
            following.addCallback(taken.append)

    queue.get().addCallback(consumer)
    for item in range(5):
        queue.put_soon(item, soon)
    soon.run()
    assert taken == [0, 1, 2, 3, 4] and len(queue.waiting) == 1
    assert resumed == [0, 1]  # once for the first message, once for the rest of the batch


def test_close_and_drain_first_hand_over_what_was_promised() -> None:
    queue = ClosableDeferredQueue()
    soon = Soon()
    first = queue.get()
    queue.put_soon("opens the batch", soon)
    assert result_of(first) == "opens the batch"
    waiter = queue.get()
    queue.put_soon("for the waiter", soon)
    queue.put_soon("left over", soon)
    assert queue.drain() == ["left over"]
    assert result_of(waiter) == "for the waiter"
    soon.run()
    first = queue.get()
    queue.put_soon("opens another batch", soon)
    assert result_of(first) == "opens another batch"
    waiter = queue.get()
    queue.put_soon("promised", soon)
    queue.put_soon("dropped", soon)
    assert not waiter.called
    reason = ConsumerCancelled("gone")
    queue.close(reason)
    assert result_of(waiter) == "promised"
    assert not queue.pending
    soon.run()  # the stale wake-up finds nothing to do
    assert result_of(queue.get()).value is reason
