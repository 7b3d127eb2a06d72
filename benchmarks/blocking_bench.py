"""BlockingConnection benchmark: ours next to pika's, same broker, same run.

Usage::

    python benchmarks/blocking_bench.py             # full counts (a few minutes)
    python benchmarks/blocking_bench.py --quick     # counts divided by 10
    AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/%2F python benchmarks/blocking_bench.py
    python benchmarks/blocking_bench.py --profile c # cProfile of our side of one scenario

Theory of operation: both clients expose pika's blocking API, so every scenario is one function
called with ``lib`` being :mod:`amqp_core` or :mod:`pika`; each run opens its own connection,
channel and exclusive queue (untimed) and closes them afterwards (untimed).  The scenarios:

(a) ``publish``: N x 64 B without confirms.  The clock starts at the first ``basic_publish`` and
    stops when a passive ``queue_declare`` on the same channel, sent after the last publish,
    reports N messages (the broker handles one channel's commands in order, so the count covers
    every earlier publish).
(b) ``confirmed publish, per message``: ``confirm_delivery()``, then N publishes, each of which
    returns only once the broker has confirmed it (pika's mode: one round trip per message).
(w) ``confirmed publish, windowed`` (ours only): the same inside ``with
    channel.confirm_window(max_outstanding=W)``, which returns once every message is confirmed.
    Its ratio is taken against pika's per-message figure of (b): pika's blocking API has no other
    way to publish with confirms and know that each message was confirmed.
(c) ``consume``: N x 64 B are published first (untimed, same connection), then ``basic_qos
    (prefetch_count)``; every message is acked on its own.  Two idiomatic ways, both measured for
    both clients: the ``consume()`` generator (c1) and ``basic_consume`` + ``start_consuming``
    (c2); the clock runs from the call that starts the consumer to the N-th message.  The
    headline row (c) takes each client's faster way.
(d) ``round trip``: a consumer (``consume()`` generator, ``auto_ack``) on a queue the same
    channel publishes to; each message is published when the previous one arrived; latency is
    publish -> message in hand, reported as p50 and p99 (each the least of the runs).

Each figure is the best of ``--repeats`` runs (3 by default: the machine may be busy), the
clients alternating.  Every run is bounded by ``--timeout`` seconds (``SIGALRM``); a run that
times out or fails is reported on stderr and left out.  Figures, never assertions.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pika
from _common import broker, describe_machine, fmt_rate, print_table, ratio

import amqp_core

BODY = b"x" * 64
LIBS: dict[str, ModuleType] = {"ours": amqp_core, "pika": pika}

#: Set by ``--profile``: enabled only while a scenario's clock runs.
PROFILER: cProfile.Profile | None = None

#: CPU seconds this process used while the last scenario's clock ran (``time.process_time``).
_cpu = {"started": 0.0, "used": 0.0}


def start_clock() -> float:
    """The clock starts (and the CPU count, and the profiler when profiling)."""
    if PROFILER is not None:
        PROFILER.enable()
    _cpu["started"] = time.process_time()
    return time.perf_counter()


def stop_clock(started: float) -> float:
    """Seconds since ``started`` (the CPU count and the profiler stop)."""
    elapsed = time.perf_counter() - started
    _cpu["used"] = time.process_time() - _cpu["started"]
    if PROFILER is not None:
        PROFILER.disable()
    return elapsed


class BenchError(Exception):
    """A run that could not finish (timeout, connection failure)."""


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise BenchError("run timed out")


@contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Raise :class:`BenchError` in the main thread if the block lasts over ``seconds``."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def session(lib: ModuleType, url: str) -> Iterator[tuple[Any, Any, str]]:
    """A connection, a channel and an exclusive queue (all untimed); closed at the end."""
    connection = lib.BlockingConnection(lib.URLParameters(url))
    try:
        channel = connection.channel()
        queue = f"bench-{lib.__name__}-{uuid.uuid4().hex[:12]}"
        channel.queue_declare(queue, exclusive=True)
        yield connection, channel, queue
    finally:
        if connection.is_open:
            connection.close()


def wait_for_count(channel: Any, queue: str, count: int) -> None:
    """Passive ``queue_declare`` until the queue holds ``count`` messages."""
    while channel.queue_declare(queue, passive=True).method.message_count < count:
        pass


def fill(channel: Any, queue: str, count: int) -> None:
    """Publish ``count`` x 64 B to ``queue`` and wait until the broker holds them."""
    publish = channel.basic_publish
    for _ in range(count):
        publish("", queue, BODY)
    wait_for_count(channel, queue, count)


# ---------------------------------------------------------------- scenarios (msg/s or latencies)


def run_publish(lib: ModuleType, url: str, count: int) -> float:
    with session(lib, url) as (_connection, channel, queue):
        publish = channel.basic_publish
        started = start_clock()
        for _ in range(count):
            publish("", queue, BODY)
        wait_for_count(channel, queue, count)
        return count / stop_clock(started)


def run_confirm(lib: ModuleType, url: str, count: int) -> float:
    with session(lib, url) as (_connection, channel, queue):
        channel.confirm_delivery()
        publish = channel.basic_publish
        started = start_clock()
        for _ in range(count):
            publish("", queue, BODY)
        return count / stop_clock(started)


def run_window(lib: ModuleType, url: str, count: int, window: int) -> float:
    with session(lib, url) as (_connection, channel, queue):
        channel.confirm_delivery()
        publish = channel.basic_publish
        started = start_clock()
        with channel.confirm_window(max_outstanding=window):
            for _ in range(count):
                publish("", queue, BODY)
        return count / stop_clock(started)


def run_consume_generator(lib: ModuleType, url: str, count: int, prefetch: int) -> float:
    with session(lib, url) as (_connection, channel, queue):
        fill(channel, queue, count)
        channel.basic_qos(prefetch_count=prefetch)
        ack = channel.basic_ack
        received = 0
        started = start_clock()
        for method, _properties, _body in channel.consume(queue):
            ack(method.delivery_tag)
            received += 1
            if received == count:
                break
        elapsed = stop_clock(started)
        channel.cancel()
        return count / elapsed


def run_consume_callback(lib: ModuleType, url: str, count: int, prefetch: int) -> float:
    with session(lib, url) as (_connection, channel, queue):
        fill(channel, queue, count)
        channel.basic_qos(prefetch_count=prefetch)
        ack = channel.basic_ack
        received = 0
        elapsed = 0.0

        def on_message(ch: Any, method: Any, _properties: Any, _body: bytes) -> None:
            nonlocal received, elapsed
            ack(method.delivery_tag)
            received += 1
            if received == count:
                elapsed = stop_clock(started)
                ch.stop_consuming()

        started = start_clock()
        channel.basic_consume(queue, on_message)
        channel.start_consuming()
        return count / elapsed


def run_round_trip(lib: ModuleType, url: str, count: int) -> tuple[float, float]:
    with session(lib, url) as (_connection, channel, queue):
        messages = channel.consume(queue, auto_ack=True)
        publish = channel.basic_publish
        clock = time.perf_counter
        samples: list[float] = []
        start_clock()
        for _ in range(count):
            sent = clock()
            publish("", queue, BODY)
            next(messages)
            samples.append(clock() - sent)
        stop_clock(0.0)
        channel.cancel()
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# ---------------------------------------------------------------- main


class Found:
    """The best figure of each client, and its least CPU time per operation (microseconds)."""

    def __init__(self) -> None:
        self.best: dict[str, Any] = {}
        self.cpu_us: dict[str, float] = {}

    def row(self, label: str, ours: Any = None, theirs: Any = None, *,
            lower_is_better: bool = False, theirs_cpu: float | None = None) -> list[str]:
        """A table row: figures, ratio, then each client's CPU per operation."""
        ours = self.best.get("ours") if ours is None else ours
        theirs = self.best.get("pika") if theirs is None else theirs
        peer_cpu = self.cpu_us.get("pika") if theirs_cpu is None else theirs_cpu
        return [label, fmt_rate(ours), fmt_rate(theirs),
                ratio(ours, theirs, lower_is_better=lower_is_better),
                fmt_rate(self.cpu_us.get("ours")), fmt_rate(peer_cpu)]


def measure(run: Callable[[ModuleType], Any], operations: int, repeats: int,
            better: Callable[[Any, Any], Any], which: list[str], timeout: float) -> Found:
    """Run a scenario ``repeats`` times per client, alternating clients; keep the best.

    :param operations: what the scenario's clock counts (messages, round trips), for the CPU
        time per operation
    """
    found = Found()
    for _ in range(repeats):
        for name in which:
            try:
                with bounded(timeout):
                    value = run(LIBS[name])
            except (BenchError, amqp_core.exceptions.AMQPError, pika.exceptions.AMQPError) as error:
                print(f"# {name}: {error!r}", file=sys.stderr)
                continue
            best = found.best
            best[name] = value if name not in best else better(best[name], value)
            cpu = _cpu["used"] / operations * 1e6
            found.cpu_us[name] = min(cpu, found.cpu_us.get(name, cpu))
    return found


def profile(scenario: str, url: str, counts: dict[str, int], window: int, prefetch: int,
            sort: str) -> None:
    """cProfile our side of one scenario (its timed part) and print the top functions."""
    global PROFILER
    runs: dict[str, Callable[[], Any]] = {
        "a": lambda: run_publish(amqp_core, url, counts["a"]),
        "b": lambda: run_confirm(amqp_core, url, counts["b"]),
        "w": lambda: run_window(amqp_core, url, counts["w"], window),
        "c1": lambda: run_consume_generator(amqp_core, url, counts["c"], prefetch),
        "c2": lambda: run_consume_callback(amqp_core, url, counts["c"], prefetch),
        "c": lambda: run_consume_callback(amqp_core, url, counts["c"], prefetch),
        "d": lambda: run_round_trip(amqp_core, url, counts["d"]),
    }
    profiler = PROFILER = cProfile.Profile()
    try:
        result = runs[scenario]()
    finally:
        PROFILER = None
    print(f"# profile of ours, scenario {scenario}: {result}")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats(sort).print_stats(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", help="broker URL (default: AMQP_URL, else a private node)")
    parser.add_argument("--quick", action="store_true", help="counts divided by 10")
    parser.add_argument("--publish", type=int, help="messages for (a), default 100000")
    parser.add_argument("--confirm", type=int, help="messages for (b), default 5000")
    parser.add_argument("--windowed", type=int, help="messages for (w), default 20000")
    parser.add_argument("--consume", type=int, help="messages for (c), default 100000")
    parser.add_argument("--round-trips", type=int, help="round trips for (d), default 2000")
    parser.add_argument("--window", type=int, default=1000, help="max_outstanding for (w)")
    parser.add_argument("--prefetch", type=int, default=1000, help="prefetch count for (c)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (best kept)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run at most")
    parser.add_argument("--only", choices=["ours", "pika", "all"], default="all")
    parser.add_argument("--scenarios", default="abwcd", help="which of a, b, w, c, d to run")
    parser.add_argument("--profile", choices=["a", "b", "w", "c", "c1", "c2", "d"],
                        help="instead of the table: cProfile our side of one scenario")
    parser.add_argument("--sort", default="tottime", help="pstats sort key for --profile")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    counts = {
        "a": args.publish or 100_000 // scale,
        "b": args.confirm or 5_000 // scale,
        "w": args.windowed or 20_000 // scale,
        "c": args.consume or 100_000 // scale,
        "d": args.round_trips or 2_000 // scale,
    }
    which = ["ours", "pika"] if args.only == "all" else [args.only]
    window, prefetch, repeats, timeout = args.window, args.prefetch, args.repeats, args.timeout

    print(describe_machine())
    rows: list[list[str]] = []
    with broker(args.url) as info:
        url = info.url
        if args.profile:
            profile(args.profile, url, counts, window, prefetch, args.sort)
            return 0
        print(f"# broker {info.host}:{info.port} ({'private' if info.private else 'AMQP_URL'}); "
              f"each figure is the best of {repeats} runs, clients alternating; cpu = the "
              "client process's CPU time per message (round trip), least of the runs")

        def throughput(label: str, run: Callable[[ModuleType], float], operations: int,
                       clients: list[str] = which) -> Found:
            found = measure(run, operations, repeats, max, clients, timeout)
            print(f"# {label}: done", file=sys.stderr, flush=True)
            return found

        per_message = Found()
        if "a" in args.scenarios:
            label = f"(a) publish {counts['a']} x 64 B, no confirms, msg/s"
            found = throughput(label, lambda lib: run_publish(lib, url, counts["a"]), counts["a"])
            rows.append(found.row(label))
        if "b" in args.scenarios:
            label = f"(b) confirmed publish {counts['b']}, per message, msg/s"
            per_message = throughput(label, lambda lib: run_confirm(lib, url, counts["b"]),
                                     counts["b"])
            rows.append(per_message.row(label))
        if "w" in args.scenarios and "ours" in which:
            label = (f"(w) confirmed publish {counts['w']}, ours confirm_window({window}) vs "
                     "pika per message, msg/s")
            found = throughput(label, lambda lib: run_window(lib, url, counts["w"], window),
                               counts["w"], ["ours"])
            rows.append(found.row(label, theirs=per_message.best.get("pika"),
                                  theirs_cpu=per_message.cpu_us.get("pika")))
        if "c" in args.scenarios:
            label = f"(c1) consume+ack {counts['c']}, prefetch {prefetch}, consume(), msg/s"
            by_generator = throughput(
                label, lambda lib: run_consume_generator(lib, url, counts["c"], prefetch),
                counts["c"])
            rows.append(by_generator.row(label))
            label = f"(c2) consume+ack {counts['c']}, prefetch {prefetch}, basic_consume, msg/s"
            by_callback = throughput(
                label, lambda lib: run_consume_callback(lib, url, counts["c"], prefetch),
                counts["c"])
            rows.append(by_callback.row(label))
            faster = Found()
            for name in which:
                options = [found for found in (by_generator, by_callback) if name in found.best]
                if options:
                    pick = max(options, key=lambda found: found.best[name])
                    faster.best[name] = pick.best[name]
                    faster.cpu_us[name] = pick.cpu_us[name]
            rows.append(faster.row(f"(c) consume+ack {counts['c']}, each client's faster way, "
                                   "msg/s"))
        if "d" in args.scenarios:
            found = measure(lambda lib: run_round_trip(lib, url, counts["d"]), counts["d"],
                            repeats, lambda a, b: (min(a[0], b[0]), min(a[1], b[1])), which,
                            timeout)
            for index, name in ((0, "p50"), (1, "p99")):
                mine, peer = (found.best[client][index] * 1e6 if client in found.best else None
                              for client in ("ours", "pika"))
                rows.append(found.row(f"(d) round trip {counts['d']}x, {name} latency, us",
                                      mine, peer, lower_is_better=True))
            print("# (d) round trips: done", file=sys.stderr, flush=True)
    print_table(
        "BlockingConnection, ours vs pika (ratio > 1 means ours is better)",
        ["scenario", "ours", "pika", "ratio", "ours cpu us", "pika cpu us"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
