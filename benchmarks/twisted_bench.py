"""Twisted benchmark: our TwistedProtocolConnection next to pika's, same reactor, same broker.

Usage::

    python benchmarks/twisted_bench.py             # full counts (a few minutes)
    python benchmarks/twisted_bench.py --quick     # small counts (under a minute)
    AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/%2F python benchmarks/twisted_bench.py

Theory of operation: both clients expose pika's Deferred API (a Twisted ``Protocol``
connected with ``ClientCreator``, ``ready``, ``channel()``, Deferred-returning channel
methods, ``basic_consume`` giving a ``ClosableDeferredQueue``), so every scenario is one
``async def`` run twice, with ``lib`` being our adapter or pika's.  Twisted's reactor cannot
be restarted, so one ``reactor.run()`` drives every run in turn (``ensureDeferred``); each
run gets its own connection, channel and exclusive queue.  The scenarios follow
``select_bench.py``:

(a) ``publish``: N x 64 B without confirms, in bursts of ``--batch`` per reactor turn; the
    clock stops when a passive ``queue_declare`` sent after the last publish reports N
    messages.
(b) ``confirmed publish``: N x 64 B in confirm mode with at most ``--window`` unconfirmed
    (each publish's Deferred fires on its ack); the clock stops at the last confirmation.
(c) ``consume``: the queue is filled with N x 64 B first (untimed), then ``basic_qos`` and
    ``basic_consume``; ``msg = await queue.get()`` then ``basic_ack`` per message; the clock
    runs from ``basic_consume`` to the N-th message.
(d) ``round trip``: an auto-ack consumer on a queue the same connection publishes to; each
    message is published once the previous one was received; p50 and p99 latency.

Beside each throughput is the client's CPU time per message (``time.process_time`` over the
timed window).  Each figure is the best of ``--repeats`` runs, each bounded by ``--timeout``
seconds; the clients alternate (the order flips every repeat), and between runs, untimed, the
run's queue is deleted, garbage is collected and the reactor idles for a moment, so that no run
pays for the previous one.  Figures, never assertions.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import broker, describe_machine
from _scenarios import (
    better_latency,
    latency_rows,
    parse_args,
    print_broker,
    print_results,
    throughput_labels,
    throughput_row,
)
from pika.adapters import twisted_connection as pika_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ClientCreator

import amqp_adapter_twisted
import amqp_core

BODY = b"x" * 64
#: Seconds of quiet between two runs (untimed), so one run's tail does not overlap the next.
SETTLE = 0.2

#: name -> (parameters class module, protocol class)
LIBS: dict[str, tuple[Any, Any]] = {
    "ours": (amqp_core, amqp_adapter_twisted.TwistedProtocolConnection),
    "pika": (pika_twisted.pika, pika_twisted.TwistedProtocolConnection),
}


class Clock:
    """Wall and CPU clocks for one timed window."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def throughput(self, count: int) -> tuple[float, float]:
        """``(messages per second, client CPU microseconds per message)``."""
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        return count / wall, cpu / count * 1e6


def next_turn() -> defer.Deferred[None]:
    """A Deferred that fires on the next reactor turn (lets the reactor write)."""
    return task.deferLater(reactor, 0, lambda: None)


async def open_channel(name: str, host: str, port: int, url: str) -> tuple[Any, Any, str]:
    """Connect ``name``'s protocol, open a channel and an exclusive queue."""
    lib, protocol_class = LIBS[name]
    creator = ClientCreator(reactor, protocol_class, lib.URLParameters(url))
    connection = await creator.connectTCP(host, port)
    await connection.ready
    channel = await connection.channel()
    queue = f"bench-{name}-{uuid.uuid4().hex[:12]}"
    await channel.queue_declare(queue, exclusive=True)
    return connection, channel, queue


async def publish_all(channel: Any, queue: str, count: int, batch: int) -> None:
    """Publish ``count`` messages, ``batch`` per reactor turn."""
    publish = channel.basic_publish
    remaining = count
    while remaining:
        burst = min(batch, remaining)
        for _ in range(burst):
            publish("", queue, BODY)
        remaining -= burst
        await next_turn()


async def wait_for_count(channel: Any, queue: str, count: int) -> None:
    """Poll with a passive declare until the queue holds ``count`` messages."""
    while True:
        frame = await channel.queue_declare(queue, passive=True)
        if frame.method.message_count >= count:
            return


async def scenario_publish(channel: Any, queue: str, args: argparse.Namespace) -> Any:
    clock = Clock()
    await publish_all(channel, queue, args.publish_n, args.batch)
    await wait_for_count(channel, queue, args.publish_n)
    return clock.throughput(args.publish_n)


async def scenario_confirm(channel: Any, queue: str, args: argparse.Namespace) -> Any:
    await channel.confirm_delivery()
    count, window = args.confirm_n, args.window
    done: defer.Deferred[None] = defer.Deferred()
    state = {"published": 0, "confirmed": 0, "outstanding": 0}
    publish = channel.basic_publish

    def on_confirm(_result: Any) -> None:
        state["confirmed"] += 1
        state["outstanding"] -= 1
        if state["confirmed"] == count:
            done.callback(None)
        else:
            fill()

    def on_error(failure: Any) -> None:
        if not done.called:
            done.errback(failure)

    def fill() -> None:
        while state["outstanding"] < window and state["published"] < count:
            state["published"] += 1
            state["outstanding"] += 1
            publish("", queue, BODY).addCallbacks(on_confirm, on_error)

    clock = Clock()
    fill()
    await done
    return clock.throughput(count)


async def scenario_consume(channel: Any, queue: str, args: argparse.Namespace) -> Any:
    count = args.consume_n
    await publish_all(channel, queue, count, args.batch)
    await wait_for_count(channel, queue, count)
    await channel.basic_qos(prefetch_count=args.prefetch)
    ack = channel.basic_ack
    clock = Clock()
    queue_object, _tag = await channel.basic_consume(queue)
    get = queue_object.get
    for _ in range(count):
        message = await get()
        ack(message.method.delivery_tag)
    return clock.throughput(count)


async def scenario_round_trip(channel: Any, queue: str, args: argparse.Namespace) -> Any:
    queue_object, _tag = await channel.basic_consume(queue, auto_ack=True)
    samples: list[float] = []
    for _ in range(args.trips_n):
        sent = time.perf_counter()
        channel.basic_publish("", queue, BODY)
        await queue_object.get()
        samples.append(time.perf_counter() - sent)
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


Scenario = Callable[[Any, str, argparse.Namespace], Awaitable[Any]]


async def run_once(name: str, scenario: Scenario, info: Any, args: argparse.Namespace) -> Any:
    """One run: connect, run the scenario (bounded by ``--timeout``), clean up, close.

    The clean-up is the same for both clients and untimed: the queue is deleted (and the
    deletion awaited) before the connection closes, so that the broker does not drop the
    messages of this run in the background while the next run (the other client's) is timed;
    then the garbage of this run is collected, for the same reason on the client side.
    """
    connection = channel = queue = None
    try:
        connection, channel, queue = await open_channel(name, info.host, info.port, info.url)
        work = defer.ensureDeferred(scenario(channel, queue, args))
        work.addTimeout(args.timeout, reactor)
        return await work
    except Exception as error:
        print(f"# {name}: {error!r}", file=sys.stderr, flush=True)
        return None
    finally:
        if channel is not None and queue is not None and channel.is_open:
            try:
                await channel.queue_delete(queue)
            except Exception as error:  # reported, never fatal: the close deletes it anyway
                print(f"# {name}: queue_delete: {error!r}", file=sys.stderr, flush=True)
        if connection is not None and not connection.is_closed:
            await connection.close()
        gc.collect()
        await task.deferLater(reactor, SETTLE, lambda: None)


async def measure(
    scenario: Scenario, info: Any, args: argparse.Namespace, better: Callable[[Any, Any], Any]
) -> dict[str, Any]:
    """Run the scenario ``--repeats`` times per client, alternating clients; keep the best.

    The order flips every repeat (ours, pika, pika, ours, ...) so that neither client is
    always the one that runs first.
    """
    results: dict[str, Any] = {}
    for repeat in range(args.repeats):
        for name in args.which if repeat % 2 == 0 else args.which[::-1]:
            value = await run_once(name, scenario, info, args)
            if value is not None:
                results[name] = value if name not in results else better(results[name], value)
    return results


async def run_all(info: Any, args: argparse.Namespace) -> list[list[str]]:
    """Run the scenarios ``--scenarios`` names, in the order a-d; return the table rows."""
    scenarios: dict[str, Scenario] = {
        "a": scenario_publish, "b": scenario_confirm, "c": scenario_consume
    }
    labels = throughput_labels(args)
    rows: list[list[str]] = []
    for key in "abc":
        if key in args.scenarios:
            found = await measure(scenarios[key], info, args, max)
            rows.append(throughput_row(labels[key], found))
    if "d" in args.scenarios:
        found = await measure(scenario_round_trip, info, args, better_latency)
        rows.extend(latency_rows(args.trips_n, found))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    args = parse_args(parser, argv, turn="reactor turn")

    print(describe_machine())
    import twisted

    print(f"# Twisted {twisted.__version__}, reactor {type(reactor).__name__}")
    with broker(args.url) as info:
        print_broker(info, args, turn="reactor turn")
        outcome: dict[str, Any] = {}

        def start() -> None:
            work = defer.ensureDeferred(run_all(info, args))

            def finished(result: Any) -> None:
                outcome["result"] = result
                reactor.stop()  # type: ignore[attr-defined]

            work.addBoth(finished)

        reactor.callWhenRunning(start)  # type: ignore[attr-defined]
        reactor.run()  # type: ignore[attr-defined]
        rows = outcome.get("result")
        if not isinstance(rows, list):
            print(f"# benchmark failed: {rows!r}", file=sys.stderr)
            return 1
    print_results("TwistedProtocolConnection (Deferred API)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
