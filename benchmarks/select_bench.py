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
from _common import broker, describe_machine, fmt_rate, print_table, ratio

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


LIBS = {"ours": amqp_core, "pika": pika}


def measure(make: Callable[[ModuleType], Run], repeats: int, better: Callable[[Any, Any], Any],
            which: list[str]) -> dict[str, Any]:
    """Run the scenario ``repeats`` times per client, alternating clients; keep the best."""
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name in which:
            try:
                value = make(LIBS[name]).execute()
            except BenchError as error:
                print(f"# {name}: {error}", file=sys.stderr)
                continue
            results[name] = value if name not in results else better(results[name], value)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="broker URL (default: AMQP_URL, else a private node)")
    parser.add_argument("--quick", action="store_true", help="counts divided by 10")
    parser.add_argument("--publish", type=int, help="messages for (a), default 100000")
    parser.add_argument("--confirm", type=int, help="messages for (b), default 20000")
    parser.add_argument("--consume", type=int, help="messages for (c), default 100000")
    parser.add_argument("--round-trips", type=int, help="round trips for (d), default 2000")
    parser.add_argument("--window", type=int, default=1000, help="confirm window for (b)")
    parser.add_argument("--prefetch", type=int, default=1000, help="prefetch count for (c)")
    parser.add_argument("--batch", type=int, default=1000, help="publishes per loop turn")
    parser.add_argument("--repeats", type=int, default=1, help="runs per figure (best kept)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run at most")
    parser.add_argument("--only", choices=["ours", "pika", "all"], default="all")
    parser.add_argument("--scenarios", default="abcd", help="which of a, b, c, d to run")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    publish_n = args.publish or 100_000 // scale
    confirm_n = args.confirm or 20_000 // scale
    consume_n = args.consume or 100_000 // scale
    trips_n = args.round_trips or 2_000 // scale
    which = ["ours", "pika"] if args.only == "all" else [args.only]
    url_arg, timeout, batch = args.url, args.timeout, args.batch

    print(describe_machine())
    rows: list[list[str]] = []
    with broker(url_arg) as info:
        print(f"# broker {info.host}:{info.port} ({'private' if info.private else 'AMQP_URL'}); "
              f"best of {args.repeats}; publish bursts of {batch} per loop turn")
        url = info.url

        def throughput(label: str, make: Callable[[ModuleType], Run]) -> None:
            found = measure(make, args.repeats, max, which)
            ours, theirs = found.get("ours"), found.get("pika")
            rate_ours, cpu_ours = ours if ours else (None, None)
            rate_pika, cpu_pika = theirs if theirs else (None, None)
            rows.append([label, fmt_rate(rate_ours), fmt_rate(rate_pika),
                         ratio(rate_ours, rate_pika), fmt_rate(cpu_ours), fmt_rate(cpu_pika)])
            print(f"# {label}: done", file=sys.stderr, flush=True)

        if "a" in args.scenarios:
            throughput(f"(a) publish {publish_n} x 64 B, msg/s",
                       lambda lib: PublishRun(lib, url, timeout, publish_n, batch))
        if "b" in args.scenarios:
            throughput(f"(b) confirmed publish {confirm_n}, window {args.window}, msg/s",
                       lambda lib: ConfirmRun(lib, url, timeout, confirm_n, args.window))
        if "c" in args.scenarios:
            throughput(f"(c) consume+ack {consume_n}, prefetch {args.prefetch}, msg/s",
                       lambda lib: ConsumeRun(lib, url, timeout, consume_n, args.prefetch, batch))
        if "d" in args.scenarios:
            found = measure(lambda lib: RoundTripRun(lib, url, timeout, trips_n), args.repeats,
                            lambda a, b: min(a, b, key=lambda pair: pair[0]), which)
            ours, theirs = found.get("ours"), found.get("pika")
            for index, label in ((0, "p50"), (1, "p99")):
                mine = ours[index] * 1e6 if ours else None
                peer = theirs[index] * 1e6 if theirs else None
                rows.append([f"(d) round trip {trips_n}x, {label} latency, us",
                             fmt_rate(mine), fmt_rate(peer),
                             ratio(mine, peer, lower_is_better=True), "", ""])
            print("# (d) round trips: done", file=sys.stderr, flush=True)
    print_table(
        "SelectConnection, ours vs pika (ratio > 1 means ours is better)",
        ["scenario", "ours", "pika", "ratio", "ours CPU us/msg", "pika CPU us/msg"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
