"""TornadoConnection benchmark: ours next to pika's, same broker, same run.

Usage::

    python benchmarks/tornado_bench.py             # full counts (a few minutes)
    python benchmarks/tornado_bench.py --quick     # small counts (under a minute)
    AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/%2F python benchmarks/tornado_bench.py

Theory of operation: the scenarios are :mod:`select_bench`'s, unchanged (publish N x 64 B until
the broker holds them, confirmed publish with a window, consume with a prefetch and one ack per
message, round-trip latency p50/p99, and the client's CPU time per message beside each
throughput); only the connection differs.  :class:`TornadoRun` replaces
``Run.execute`` so that each run gets a fresh tornado ``IOLoop`` and either
:class:`amqp_adapter_tornado.TornadoConnection` (ours) or
``pika.adapters.tornado_connection.TornadoConnection`` (pika's) on it; the scenario classes are
mixed in with it.  ``ioloop.call_later``, ``ioloop.stop`` and ``ioloop.remove_timeout`` that the
scenarios use are tornado's own.  Each figure is the best of ``--repeats`` runs, every run bounded
by ``--timeout`` seconds.  Figures, never assertions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import broker, describe_machine, fmt_rate, print_table, ratio
from select_bench import (
    BenchError,
    ConfirmRun,
    ConsumeRun,
    PublishRun,
    RoundTripRun,
    Run,
    measure,
)
from tornado.ioloop import IOLoop

import amqp_core
from amqp_adapter_tornado import TornadoConnection


def _pika_tornado_connection() -> type:
    from pika.adapters.tornado_connection import TornadoConnection as PikaTornadoConnection

    connection_class: type = PikaTornadoConnection
    return connection_class


class TornadoRun(Run):
    """``Run.execute`` on a fresh tornado IOLoop with the library's TornadoConnection."""

    def execute(self) -> Any:
        lib = self.lib
        connection_class = TornadoConnection if lib is amqp_core else _pika_tornado_connection()
        ioloop = IOLoop(make_current=False)
        try:
            self.connection = connection_class(
                lib.URLParameters(self.url),
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
                custom_ioloop=ioloop,
            )
            timer = ioloop.call_later(self.timeout, self._on_timeout)
            ioloop.start()
            ioloop.remove_timeout(timer)
        finally:
            ioloop.close(all_fds=True)
        if self.error is not None:
            raise BenchError(f"{lib.__name__}: {self.error!r}")
        return self.result


class TornadoPublishRun(TornadoRun, PublishRun):
    pass


class TornadoConfirmRun(TornadoRun, ConfirmRun):
    pass


class TornadoConsumeRun(TornadoRun, ConsumeRun):
    pass


class TornadoRoundTripRun(TornadoRun, RoundTripRun):
    pass


def _rate_and_cpu(value: Any) -> tuple[float | None, float | None]:
    """A throughput result as ``(msg/s, client CPU us/msg)`` (the CPU figure may be absent)."""
    if value is None:
        return None, None
    if isinstance(value, tuple):
        return value[0], value[1]
    return value, None


def main(argv: list[str] | None = None) -> int:
    import tornado

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
    timeout, batch = args.timeout, args.batch

    print(f"{describe_machine()}, tornado {tornado.version}")
    rows: list[list[str]] = []
    with broker(args.url) as info:
        print(f"# broker {info.host}:{info.port} ({'private' if info.private else 'AMQP_URL'}); "
              f"best of {args.repeats}; publish bursts of {batch} per loop turn")
        url = info.url

        def throughput(label: str, make: Callable[[ModuleType], Run]) -> None:
            found = measure(make, args.repeats, max, which)
            rate_ours, cpu_ours = _rate_and_cpu(found.get("ours"))
            rate_pika, cpu_pika = _rate_and_cpu(found.get("pika"))
            rows.append([label, fmt_rate(rate_ours), fmt_rate(rate_pika),
                         ratio(rate_ours, rate_pika), fmt_rate(cpu_ours), fmt_rate(cpu_pika)])
            print(f"# {label}: done", file=sys.stderr, flush=True)

        if "a" in args.scenarios:
            throughput(f"(a) publish {publish_n} x 64 B, msg/s",
                       lambda lib: TornadoPublishRun(lib, url, timeout, publish_n, batch))
        if "b" in args.scenarios:
            throughput(f"(b) confirmed publish {confirm_n}, window {args.window}, msg/s",
                       lambda lib: TornadoConfirmRun(lib, url, timeout, confirm_n, args.window))
        if "c" in args.scenarios:
            throughput(f"(c) consume+ack {consume_n}, prefetch {args.prefetch}, msg/s",
                       lambda lib: TornadoConsumeRun(lib, url, timeout, consume_n, args.prefetch,
                                                     batch))
        if "d" in args.scenarios:
            found = measure(lambda lib: TornadoRoundTripRun(lib, url, timeout, trips_n),
                            args.repeats, lambda a, b: min(a, b, key=lambda pair: pair[0]), which)
            ours, theirs = found.get("ours"), found.get("pika")
            for index, label in ((0, "p50"), (1, "p99")):
                mine = ours[index] * 1e6 if ours else None
                peer = theirs[index] * 1e6 if theirs else None
                rows.append([f"(d) round trip {trips_n}x, {label} latency, us",
                             fmt_rate(mine), fmt_rate(peer),
                             ratio(mine, peer, lower_is_better=True), "", ""])
            print("# (d) round trips: done", file=sys.stderr, flush=True)
    print_table(
        "TornadoConnection, ours vs pika (ratio > 1 means ours is better)",
        ["scenario", "ours", "pika", "ratio", "ours CPU us/msg", "pika CPU us/msg"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
