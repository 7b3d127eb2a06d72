"""GeventConnection benchmark: ours (amqp-adapter-gevent) next to pika's, same broker, same run.

Usage::

    python benchmarks/gevent_bench.py             # full counts (a few minutes)
    python benchmarks/gevent_bench.py --quick     # small counts (under a minute)
    python benchmarks/gevent_bench.py --monkey    # the same after gevent.monkey.patch_all()
    AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/%2F python benchmarks/gevent_bench.py

Theory of operation: the scenarios are :mod:`select_bench`'s, unchanged (publish N x 64 B until
the broker holds them, confirmed publish with a window, consume + ack each with a prefetch,
publish -> deliver round trips), run on each library's ``GeventConnection`` instead of its
``SelectConnection``: a scenario's ``lib`` is a small namespace whose ``SelectConnection`` is the
gevent connection class.  ``ioloop.start()`` blocks the main greenlet while the hub runs the
connection, for both clients.  With ``--monkey`` the process is monkey-patched before anything
else is imported.  Figures, never assertions.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--monkey" in sys.argv:
    from gevent import monkey

    monkey.patch_all()

import argparse
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gevent
import pika
from _common import broker, describe_machine, fmt_rate, print_table, ratio
from pika.adapters.gevent_connection import GeventConnection as PikaGeventConnection
from select_bench import (
    BenchError,
    ConfirmRun,
    ConsumeRun,
    PublishRun,
    RoundTripRun,
    Run,
)

import amqp_core
from amqp_adapter_gevent import GeventConnection


def _lib(name: str, module: Any, connection_class: type) -> Any:
    """A stand-in for the library module: its URLParameters, its gevent connection class."""
    return types.SimpleNamespace(
        __name__=name, URLParameters=module.URLParameters, SelectConnection=connection_class
    )


LIBS: dict[str, Any] = {
    "ours": _lib("amqp_core", amqp_core, GeventConnection),
    "pika": _lib("pika", pika, PikaGeventConnection),
}


def measure(make: Callable[[Any], Run], repeats: int, better: Callable[[Any, Any], Any],
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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", help="broker URL (default: AMQP_URL, else a private node)")
    parser.add_argument("--monkey", action="store_true",
                        help="run after gevent.monkey.patch_all() (done before any import)")
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
    from gevent import monkey

    mode = "monkey-patched" if monkey.is_module_patched("socket") else "not monkey-patched"

    print(describe_machine() + f"; gevent {gevent.__version__} ({mode})")
    rows: list[list[str]] = []
    with broker(args.url) as info:
        print(f"# broker {info.host}:{info.port} ({'private' if info.private else 'AMQP_URL'}); "
              f"best of {args.repeats}; publish bursts of {batch} per loop turn")
        url = info.url

        def throughput(label: str, make: Callable[[Any], Run]) -> None:
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
        f"GeventConnection ({mode}), ours vs pika (ratio > 1 means ours is better)",
        ["scenario", "ours", "pika", "ratio", "ours CPU us/msg", "pika CPU us/msg"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
