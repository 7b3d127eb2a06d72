"""asyncio benchmark: our two asyncio APIs next to pika's AsyncioConnection, aio-pika and aiormq.

Usage::

    python benchmarks/asyncio_bench.py             # default counts (a few minutes)
    python benchmarks/asyncio_bench.py --quick     # counts divided by 10
    AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/%2F python benchmarks/asyncio_bench.py

Theory of operation: one run, one broker (:func:`_common.broker`), seven clients:

* callback API: ``amqp_adapter_asyncio.AsyncioConnection`` on the default asyncio loop and on
  uvloop, and ``pika.adapters.asyncio_connection.AsyncioConnection`` (default loop).  These run
  :mod:`select_bench`'s scenario classes unchanged; :class:`AsyncioRun` only replaces
  ``Run.execute`` so each run gets a fresh asyncio (or uvloop) loop passed as ``custom_ioloop``.
  ``ioloop.call_later`` / ``ioloop.stop`` the scenarios use are asyncio's own.
* async/await API: ``amqp_adapter_asyncio.connect`` (default loop and uvloop), aio-pika and aiormq
  (default loop).  A small driver per library (:class:`OursAio`, :class:`AioPika`,
  :class:`Aiormq`) exposes open / declare / count / publish / consume in that library's idiomatic
  form (``async for`` where the library has it, aiormq's async callback otherwise); the four
  scenarios are written once over the drivers (:func:`aio_publish` ...).

Scenarios are :mod:`select_bench`'s: (a) publish N x 64 B without confirms until a passive declare
reports N; (b) confirmed publish with at most ``--window`` unconfirmed (a sliding window of
awaitables: the oldest is awaited when the window is full; a coroutine-returning publish is made a
task, as its users would); (c) consume N pre-filled (untimed) messages with a prefetch, one ack
each; (d) round trip publish -> deliver, p50 / p99 (the first sample is dropped).  Without
confirms, the async publishers yield to the loop once per ``--batch`` publishes.  Beside each
throughput is the client's CPU time per message (``time.process_time``).  The ratios compare, on
the default asyncio loop, our callback adapter with pika's and our async API with aio-pika and
aiormq.  Each run is bounded by ``--timeout`` seconds.  Figures, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pika
import uvloop
from _common import broker, describe_machine, fmt_rate, print_table, ratio
from select_bench import BenchError, ConfirmRun, ConsumeRun, PublishRun, RoundTripRun, Run

import amqp_core
from amqp_adapter_asyncio import AsyncioConnection, connect

BODY = b"x" * 64
LoopFactory = Callable[[], asyncio.AbstractEventLoop]
LOOPS: dict[str, LoopFactory] = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}

# ================================================================ callback API


class AsyncioRun(Run):
    """``Run.execute`` on a fresh loop from :attr:`loop_factory` with the library's connection."""

    loop_factory: LoopFactory = asyncio.new_event_loop

    def execute(self) -> Any:
        lib = self.lib
        if lib is amqp_core:
            connection_class: Any = AsyncioConnection
        else:
            from pika.adapters.asyncio_connection import AsyncioConnection as PikaAsyncio

            connection_class = PikaAsyncio
        loop = self.loop_factory()
        try:
            self.connection = connection_class(
                lib.URLParameters(self.url),
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
                custom_ioloop=loop,
            )
            timer = loop.call_later(self.timeout, self._on_timeout)
            loop.run_forever()
            timer.cancel()
        finally:
            loop.close()
        if self.error is not None:
            raise BenchError(f"{lib.__name__}: {self.error!r}")
        return self.result


def _callback_run(scenario: type[Run], lib: ModuleType, loop: str, *args: Any) -> Any:
    cls = type(f"Asyncio{scenario.__name__}", (AsyncioRun, scenario), {})
    run = cls(lib, *args)
    run.loop_factory = LOOPS[loop]
    return run.execute()


# ================================================================ async/await drivers


class Driver:
    """One library's async API, reduced to what the scenarios need (one channel)."""

    async def open(self, url: str, confirms: bool) -> None:
        raise NotImplementedError

    async def declare(self, queue: str) -> None:
        raise NotImplementedError

    async def count(self, queue: str) -> int:
        raise NotImplementedError

    def publish(self, queue: str) -> Awaitable[Any]:
        raise NotImplementedError

    async def qos(self, prefetch: int) -> None:
        raise NotImplementedError

    async def consume(
        self, queue: str, handler: Callable[[], Awaitable[bool]], no_ack: bool
    ) -> None:
        """Deliver to ``handler`` (acking each first unless ``no_ack``) until it returns True."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class OursAio(Driver):
    async def open(self, url: str, confirms: bool) -> None:
        self.connection = await connect(url)
        self.channel = await self.connection.channel()
        if confirms:
            await self.channel.confirm_delivery()

    async def declare(self, queue: str) -> None:
        await self.channel.queue_declare(queue, exclusive=True)

    async def count(self, queue: str) -> int:
        frame = await self.channel.queue_declare(queue, passive=True)
        return int(frame.method.message_count)

    def publish(self, queue: str) -> Awaitable[Any]:
        return self.channel.basic_publish("", queue, BODY)

    async def qos(self, prefetch: int) -> None:
        await self.channel.basic_qos(prefetch_count=prefetch)

    async def consume(
        self, queue: str, handler: Callable[[], Awaitable[bool]], no_ack: bool
    ) -> None:
        async with self.channel.consume(queue, auto_ack=no_ack) as consumer:
            async for message in consumer:
                if not no_ack:
                    message.ack()
                if await handler():
                    return

    async def close(self) -> None:
        await self.connection.close()


class AioPika(Driver):
    async def open(self, url: str, confirms: bool) -> None:
        import aio_pika

        self.message_class = aio_pika.Message
        self.connection = await aio_pika.connect(url)
        self.channel = await self.connection.channel(publisher_confirms=confirms)
        self.exchange = self.channel.default_exchange

    async def declare(self, queue: str) -> None:
        self.queue = await self.channel.declare_queue(queue, exclusive=True)

    async def count(self, queue: str) -> int:
        declared = await self.channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)

    def publish(self, queue: str) -> Awaitable[Any]:
        return self.exchange.publish(self.message_class(BODY), routing_key=queue)

    async def qos(self, prefetch: int) -> None:
        await self.channel.set_qos(prefetch_count=prefetch)

    async def consume(
        self, queue: str, handler: Callable[[], Awaitable[bool]], no_ack: bool
    ) -> None:
        async with self.queue.iterator(no_ack=no_ack) as messages:
            async for message in messages:
                if not no_ack:
                    await message.ack()
                if await handler():
                    return

    async def close(self) -> None:
        await self.connection.close()


class Aiormq(Driver):
    async def open(self, url: str, confirms: bool) -> None:
        import aiormq

        self.connection = await aiormq.connect(url)
        self.channel = await self.connection.channel(publisher_confirms=confirms)

    async def declare(self, queue: str) -> None:
        await self.channel.queue_declare(queue, exclusive=True)

    async def count(self, queue: str) -> int:
        declared = await self.channel.queue_declare(queue, passive=True)
        return int(declared.message_count or 0)

    def publish(self, queue: str) -> Awaitable[Any]:
        return self.channel.basic_publish(BODY, routing_key=queue)

    async def qos(self, prefetch: int) -> None:
        await self.channel.basic_qos(prefetch_count=prefetch)

    async def consume(
        self, queue: str, handler: Callable[[], Awaitable[bool]], no_ack: bool
    ) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        channel = self.channel

        async def on_message(message: Any) -> None:
            if not no_ack:
                await channel.basic_ack(message.delivery.delivery_tag)
            if await handler() and not done.done():
                done.set_result(None)

        await channel.basic_consume(queue, on_message, no_ack=no_ack)
        await done

    async def close(self) -> None:
        await self.connection.close()


DRIVERS: dict[str, type[Driver]] = {"ours": OursAio, "aio-pika": AioPika, "aiormq": Aiormq}

# ================================================================ async/await scenarios


class Clock:
    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def throughput(self, count: int) -> tuple[float, float]:
        wall = time.perf_counter() - self.wall
        return count / wall, (time.process_time() - self.cpu) / count * 1e6


async def _publish_window(driver: Driver, queue: str, count: int, window: int,
                          yield_every: int) -> None:
    """Publish ``count`` messages with at most ``window`` awaitables outstanding."""
    outstanding: collections.deque[asyncio.Future[Any]] = collections.deque()
    ensure, publish, sleep = asyncio.ensure_future, driver.publish, asyncio.sleep
    for index in range(1, count + 1):
        if len(outstanding) >= window:
            await outstanding.popleft()
        outstanding.append(ensure(publish(queue)))
        if yield_every and index % yield_every == 0:
            await sleep(0)
    for future in outstanding:
        await future


async def _wait_for_count(driver: Driver, queue: str, count: int) -> None:
    while await driver.count(queue) < count:
        pass


async def aio_publish(driver: Driver, queue: str, count: int, batch: int) -> Any:
    clock = Clock()
    await _publish_window(driver, queue, count, batch, batch)
    await _wait_for_count(driver, queue, count)
    return clock.throughput(count)


async def aio_confirm(driver: Driver, queue: str, count: int, window: int) -> Any:
    clock = Clock()
    await _publish_window(driver, queue, count, window, 0)
    return clock.throughput(count)


async def aio_consume(driver: Driver, queue: str, count: int, prefetch: int, batch: int) -> Any:
    await _publish_window(driver, queue, count, batch, batch)
    await _wait_for_count(driver, queue, count)
    await driver.qos(prefetch)
    received = 0

    async def handler() -> bool:
        nonlocal received
        received += 1
        return received >= count

    clock = Clock()
    await driver.consume(queue, handler, no_ack=False)
    return clock.throughput(count)


async def aio_round_trip(driver: Driver, queue: str, count: int) -> Any:
    samples: list[float] = []
    sent_at = time.perf_counter()

    async def handler() -> bool:
        nonlocal sent_at
        samples.append(time.perf_counter() - sent_at)
        if len(samples) > count:
            return True
        sent_at = time.perf_counter()
        await driver.publish(queue)
        return False

    await driver.publish(queue)
    await driver.consume(queue, handler, no_ack=True)
    ordered = sorted(samples[1:])  # the first waited for the consumer to start
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _aio_run(name: str, loop_name: str, timeout: float, url: str, confirms: bool,
             scenario: Callable[..., Any], *args: Any) -> Any:
    async def main() -> Any:
        driver = DRIVERS[name]()
        await driver.open(url, confirms)
        try:
            queue = f"bench-{name}-{uuid.uuid4().hex[:12]}"
            await driver.declare(queue)
            return await scenario(driver, queue, *args)
        finally:
            await driver.close()

    loop = LOOPS[loop_name]()
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), timeout))
    except Exception as error:
        raise BenchError(f"{name}: {error!r}") from error
    finally:
        loop.close()


# ================================================================ main

#: (label, API, library, loop)
CLIENTS = [
    ("ours callback, asyncio", "cb", amqp_core, "asyncio"),
    ("ours callback, uvloop", "cb", amqp_core, "uvloop"),
    ("pika AsyncioConnection", "cb", pika, "asyncio"),
    ("ours async, asyncio", "aio", "ours", "asyncio"),
    ("ours async, uvloop", "aio", "ours", "uvloop"),
    ("aio-pika", "aio", "aio-pika", "asyncio"),
    ("aiormq", "aio", "aiormq", "asyncio"),
]
#: (ours, peer) labels compared in the ratio table
RATIOS = [
    ("ours callback, asyncio", "pika AsyncioConnection"),
    ("ours async, asyncio", "aio-pika"),
    ("ours async, asyncio", "aiormq"),
]


def main(argv: list[str] | None = None) -> int:
    import aio_pika

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="broker URL (default: AMQP_URL, else a private node)")
    parser.add_argument("--quick", action="store_true", help="counts divided by 10")
    parser.add_argument("--publish", type=int, help="messages for (a), default 20000")
    parser.add_argument("--confirm", type=int, help="messages for (b), default 10000")
    parser.add_argument("--consume", type=int, help="messages for (c), default 20000")
    parser.add_argument("--round-trips", type=int, help="round trips for (d), default 1000")
    parser.add_argument("--window", type=int, default=1000, help="confirm window for (b)")
    parser.add_argument("--prefetch", type=int, default=1000, help="prefetch count for (c)")
    parser.add_argument("--batch", type=int, default=1000, help="publishes per loop turn")
    parser.add_argument("--repeats", type=int, default=1, help="runs per figure (best kept)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per run at most")
    parser.add_argument("--scenarios", default="abcd", help="which of a, b, c, d to run")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    publish_n = args.publish or 20_000 // scale
    confirm_n = args.confirm or 10_000 // scale
    consume_n = args.consume or 20_000 // scale
    trips_n = args.round_trips or 1_000 // scale
    timeout, batch, window, prefetch = args.timeout, args.batch, args.window, args.prefetch

    print(f"{describe_machine()}, aio-pika {aio_pika.__version__}, uvloop {uvloop.__version__}")
    results: dict[tuple[str, str], Any] = {}
    with broker(args.url) as info:
        print(f"# broker {info.host}:{info.port} ({'private' if info.private else 'AMQP_URL'}); "
              f"best of {args.repeats}; publish bursts of {batch} per loop turn")
        url = info.url
        plans: dict[str, tuple[str, Callable[[Any, str], Any], bool]] = {
            "a": (f"(a) publish {publish_n} x 64 B, msg/s",
                  lambda lib, loop: (
                      _callback_run(PublishRun, lib, loop, url, timeout, publish_n, batch)
                      if isinstance(lib, ModuleType) else
                      _aio_run(lib, loop, timeout, url, False, aio_publish, publish_n, batch)),
                  True),
            "b": (f"(b) confirmed publish {confirm_n}, window {window}, msg/s",
                  lambda lib, loop: (
                      _callback_run(ConfirmRun, lib, loop, url, timeout, confirm_n, window)
                      if isinstance(lib, ModuleType) else
                      _aio_run(lib, loop, timeout, url, True, aio_confirm, confirm_n, window)),
                  True),
            "c": (f"(c) consume+ack {consume_n}, prefetch {prefetch}, msg/s",
                  lambda lib, loop: (
                      _callback_run(ConsumeRun, lib, loop, url, timeout, consume_n, prefetch,
                                    batch)
                      if isinstance(lib, ModuleType) else
                      _aio_run(lib, loop, timeout, url, False, aio_consume, consume_n, prefetch,
                               batch)),
                  True),
            "d": (f"(d) round trip {trips_n}x, latency us",
                  lambda lib, loop: (
                      _callback_run(RoundTripRun, lib, loop, url, timeout, trips_n)
                      if isinstance(lib, ModuleType) else
                      _aio_run(lib, loop, timeout, url, False, aio_round_trip, trips_n)),
                  False),
        }
        for key in args.scenarios:
            label, run, is_rate = plans[key]
            for _ in range(args.repeats):
                for client, _api, lib, loop in CLIENTS:
                    try:
                        value = run(lib, loop)
                    except BenchError as error:
                        print(f"# {client}: {error}", file=sys.stderr, flush=True)
                        continue
                    previous = results.get((key, client))
                    if previous is not None:
                        value = max(previous, value) if is_rate else min(previous, value)
                    results[(key, client)] = value
            print(f"# {label}: done", file=sys.stderr, flush=True)

    rows: list[list[str]] = []
    for key in args.scenarios:
        label, _run, is_rate = plans[key]
        for client, *_rest in CLIENTS:
            value = results.get((key, client))
            if is_rate:
                rows.append([f"{label} | {client}", fmt_rate(value[0]) if value else "-",
                             fmt_rate(value[1]) if value else "-"])
            else:
                rows.append([f"{label} | {client}",
                             f"p50 {fmt_rate(value[0] * 1e6)}" if value else "-",
                             f"p99 {fmt_rate(value[1] * 1e6)}" if value else "-"])
    print_table("asyncio clients, same broker, same run",
                ["scenario | client", "msg/s (or p50 us)", "CPU us/msg (or p99 us)"], rows)

    ratio_rows: list[list[str]] = []
    for key in args.scenarios:
        label, _run, is_rate = plans[key]
        for ours_label, peer_label in RATIOS:
            ours, peer = results.get((key, ours_label)), results.get((key, peer_label))
            pair = f"{label.split(',')[0]} | {ours_label} vs {peer_label}"
            if is_rate:
                ratio_rows.append([pair, ratio(ours and ours[0], peer and peer[0]),
                                   ratio(ours and ours[1], peer and peer[1],
                                         lower_is_better=True)])
            else:
                ratio_rows.append([pair,
                                   "p50 " + ratio(ours and ours[0], peer and peer[0],
                                                  lower_is_better=True),
                                   "p99 " + ratio(ours and ours[1], peer and peer[1],
                                                  lower_is_better=True)])
    print_table("ratios (> 1 means ours is better; targets: callback >= 1.5x pika, "
                "async >= 3x aio-pika and >= 2x aiormq, latency >= 1x)",
                ["comparison", "throughput (or p50)", "CPU per msg (or p99)"], ratio_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
