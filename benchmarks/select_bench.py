"""SelectConnection benchmark: ours next to pika's, same broker, same run.

Usage::

    python benchmarks/select_bench.py             # full counts (a few minutes)
    python benchmarks/select_bench.py --quick     # small counts (under a minute)
    AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/%2F python benchmarks/select_bench.py

Theory of operation: both clients expose pika's callback API, so every scenario is one function
run twice, with ``lib`` being :mod:`amqp_core` or :mod:`pika`; each run gets its own connection,
IOLoop and exclusive queue (deleted when the connection closes).  The scenarios:

(a) ``publish``: N x 64 B without confirms.  The clock starts at the first publish and stops
    when a passive ``queue_declare`` from the same channel, sent after the last publish, reports
    N messages (the broker forwards one channel's commands to the queue in order, so the count
    it reports includes every earlier publish).  Publishing is done in bursts of ``--batch``
    messages, one burst per loop turn (``ioloop.call_later(0, ...)``), so the loop can write.
(b) ``confirmed publish``: N x 64 B in confirm mode with at most ``--window`` unconfirmed; the
    clock stops at the last confirmation.
(c) ``consume``: the queue is filled with N x 64 B first (untimed, by the same client), then
    ``basic_qos(prefetch_count)`` and ``basic_consume``; every message is acked on its own; the
    clock runs from ``basic_consume`` to the N-th delivery.
(d) ``round trip``: a consumer on a queue the same connection publishes to; each message is
    published when the previous one was delivered; latency is publish -> deliver, reported as
    p50 and p99.

Beside each throughput is the client's own CPU time per message (``time.process_time`` over the
timed window; the broker's CPU is not in it): on a busy machine, where the broker and the client
compete for the same cores, it shows the client's cost better than the rate does.

Each figure is the best of ``--repeats`` runs.  Every run is bounded by ``--timeout`` seconds;
a run that times out is reported as such.  Figures, never assertions.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pika
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

import amqp_core

BODY = b"x" * 64


class BenchError(Exception):
    """A run that could not finish (timeout, connection failure)."""


class Run:
    """One scenario run on one client: connection, channel, exclusive queue, bounded in time.

    Subclasses implement :meth:`start` (called with the channel and queue ready) and call
    :meth:`finish` with their result.
    """

    def __init__(self, lib: ModuleType, url: str, timeout: float) -> None:
        self.lib = lib
        self.url = url
        self.timeout = timeout
        self.result: Any = None
        self.started = self.cpu_started = 0.0
        self.error: BaseException | None = None
        self.queue = f"bench-{lib.__name__}-{uuid.uuid4().hex[:12]}"
        self.channel: Any = None
        self.connection: Any = None

    def execute(self) -> Any:
        lib = self.lib
        params = lib.URLParameters(self.url)
        self.connection = lib.SelectConnection(
            params,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
        )
        ioloop = self.connection.ioloop
        timer = ioloop.call_later(self.timeout, self._on_timeout)
        ioloop.start()
        try:
            ioloop.remove_timeout(timer)
        except Exception:
            pass
        if self.error is not None:
            raise BenchError(f"{lib.__name__}: {self.error!r}")
        return self.result

    # ---------------------------------------------------------------- plumbing

    def _on_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_open_error(self, _connection: Any, error: BaseException) -> None:
        self.error = error
        self.connection.ioloop.stop()

    def _on_closed(self, _connection: Any, _reason: BaseException) -> None:
        self.connection.ioloop.stop()

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.queue_declare(self.queue, exclusive=True, callback=lambda _f: self.start())

    def _on_timeout(self) -> None:
        self.error = TimeoutError(f"run did not finish within {self.timeout} s")
        self._close()

    def _close(self) -> None:
        if self.connection.is_open:
            self.connection.close()
        else:
            self.connection.ioloop.stop()

    def clock(self) -> None:
        """Start the clocks: wall time and this process's CPU time."""
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()

    def throughput(self, count: int) -> tuple[float, float]:
        """``(messages per second, client CPU microseconds per message)`` since :meth:`clock`."""
        wall = time.perf_counter() - self.started
        cpu = time.process_time() - self.cpu_started
        return count / wall, cpu / count * 1e6

    def finish(self, result: Any) -> None:
        self.result = result
        self._close()

    def start(self) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- helpers

    def publish_all(self, count: int, batch: int, done: Callable[[], None]) -> None:
        """Publish ``count`` messages, ``batch`` per loop turn, then call ``done``."""
        publish = self.channel.basic_publish
        call_later = self.connection.ioloop.call_later
        queue = self.queue
        remaining = count

        def burst() -> None:
            nonlocal remaining
            for _ in range(min(batch, remaining)):
                publish("", queue, BODY)
            remaining -= min(batch, remaining)
            if remaining:
                call_later(0, burst)
            else:
                done()

        burst()

    def wait_for_count(self, count: int, done: Callable[[], None]) -> None:
        """Poll with a passive declare until the queue holds ``count`` messages."""

        def on_declared(frame: Any) -> None:
            if frame.method.message_count >= count:
                done()
            else:
                poll()

        def poll() -> None:
            self.channel.queue_declare(self.queue, passive=True, callback=on_declared)

        poll()


class PublishRun(Run):
    def __init__(self, lib: ModuleType, url: str, timeout: float, count: int, batch: int) -> None:
        super().__init__(lib, url, timeout)
        self.count = count
        self.batch = batch

    def start(self) -> None:
        self.clock()

        def stored() -> None:
            self.finish(self.throughput(self.count))

        self.publish_all(self.count, self.batch, lambda: self.wait_for_count(self.count, stored))


class ConfirmRun(Run):
    def __init__(self, lib: ModuleType, url: str, timeout: float, count: int, window: int) -> None:
        super().__init__(lib, url, timeout)
        self.count = count
        self.window = window

    def start(self) -> None:
        self.channel.confirm_delivery(self._on_confirm, callback=lambda _f: self._go())

    def _go(self) -> None:
        self.outstanding: collections.deque[int] = collections.deque()
        self.published = 0
        self.confirmed = 0
        self.clock()
        self._fill()

    def _fill(self) -> None:
        publish = self.channel.basic_publish
        outstanding = self.outstanding
        queue = self.queue
        room = min(self.window - len(outstanding), self.count - self.published)
        seq = self.published
        for _ in range(room):
            publish("", queue, BODY)
            seq += 1
            outstanding.append(seq)
        self.published = seq

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tag = method.delivery_tag
        outstanding = self.outstanding
        before = len(outstanding)
        if method.multiple:
            while outstanding and outstanding[0] <= tag:
                outstanding.popleft()
        elif outstanding and outstanding[0] == tag:
            outstanding.popleft()
        else:
            outstanding.remove(tag)
        self.confirmed += before - len(outstanding)
        if self.confirmed >= self.count:
            self.finish(self.throughput(self.count))
        else:
            self._fill()


class ConsumeRun(Run):
    def __init__(
        self, lib: ModuleType, url: str, timeout: float, count: int, prefetch: int, batch: int
    ) -> None:
        super().__init__(lib, url, timeout)
        self.count = count
        self.prefetch = prefetch
        self.batch = batch

    def start(self) -> None:
        self.publish_all(
            self.count, self.batch, lambda: self.wait_for_count(self.count, self._filled)
        )

    def _filled(self) -> None:
        self.channel.basic_qos(prefetch_count=self.prefetch, callback=lambda _f: self._consume())

    def _consume(self) -> None:
        received = 0
        count = self.count
        ack = self.channel.basic_ack

        def on_message(_channel: Any, method: Any, _properties: Any, _body: bytes) -> None:
            nonlocal received
            ack(method.delivery_tag)
            received += 1
            if received == count:
                self.finish(self.throughput(count))

        self.clock()
        self.channel.basic_consume(self.queue, on_message)


class RoundTripRun(Run):
    def __init__(self, lib: ModuleType, url: str, timeout: float, count: int) -> None:
        super().__init__(lib, url, timeout)
        self.count = count

    def start(self) -> None:
        self.samples: list[float] = []
        self.sent_at = 0.0
        self.channel.basic_consume(
            self.queue, self._on_message, auto_ack=True, callback=lambda _f: self._send()
        )

    def _send(self) -> None:
        self.sent_at = time.perf_counter()
        self.channel.basic_publish("", self.queue, BODY)

    def _on_message(self, _channel: Any, _method: Any, _properties: Any, _body: bytes) -> None:
        self.samples.append(time.perf_counter() - self.sent_at)
        if len(self.samples) >= self.count:
            ordered = sorted(self.samples)
            p50 = statistics.median(ordered)
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            self.finish((p50, p99))
        else:
            self._send()


# ---------------------------------------------------------------- main


LIBS: dict[str, Any] = {"ours": amqp_core, "pika": pika}
#: the scenario classes by scenario letter; another connection's benchmark passes its own
RUNS: dict[str, type[Run]] = {
    "a": PublishRun, "b": ConfirmRun, "c": ConsumeRun, "d": RoundTripRun
}


def measure(make: Callable[[Any], Run], repeats: int, better: Callable[[Any, Any], Any],
            which: list[str], libs: dict[str, Any] = LIBS) -> dict[str, Any]:
    """Run the scenario ``repeats`` times per client, alternating clients; keep the best.

    :param libs: client name -> the ``lib`` a run is made with
    """
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name in which:
            try:
                value = make(libs[name]).execute()
            except BenchError as error:
                print(f"# {name}: {error}", file=sys.stderr)
                continue
            results[name] = value if name not in results else better(results[name], value)
    return results


def run_scenarios(args: argparse.Namespace, url: str, runs: dict[str, type[Run]] = RUNS,
                  libs: dict[str, Any] = LIBS) -> list[list[str]]:
    """Run the scenarios ``args.scenarios`` names, in the order a-d; return the table rows.

    :param args: the namespace of :func:`_scenarios.parse_args`
    :param runs: scenario letter -> the :class:`Run` class that runs it
    :param libs: client name -> the ``lib`` a run is made with
    """
    timeout, batch = args.timeout, args.batch
    makers: dict[str, Callable[[Any], Run]] = {
        "a": lambda lib: runs["a"](lib, url, timeout, args.publish_n, batch),
        "b": lambda lib: runs["b"](lib, url, timeout, args.confirm_n, args.window),
        "c": lambda lib: runs["c"](lib, url, timeout, args.consume_n, args.prefetch, batch),
        "d": lambda lib: runs["d"](lib, url, timeout, args.trips_n),
    }
    labels = throughput_labels(args)
    rows: list[list[str]] = []
    for key in "abc":
        if key in args.scenarios:
            found = measure(makers[key], args.repeats, max, args.which, libs)
            rows.append(throughput_row(labels[key], found))
    if "d" in args.scenarios:
        found = measure(makers["d"], args.repeats, better_latency, args.which, libs)
        rows.extend(latency_rows(args.trips_n, found))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]), argv)
    print(describe_machine())
    with broker(args.url) as info:
        print_broker(info, args)
        rows = run_scenarios(args, info.url)
    print_results("SelectConnection", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
