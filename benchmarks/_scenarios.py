"""The command line and the result table of the four-scenario adapter benchmarks.

Theory of operation: ``select_bench.py``, ``tornado_bench.py``, ``gevent_bench.py`` and
``twisted_bench.py`` run the same four scenarios ((a) publish, (b) confirmed publish,
(c) consume + ack, (d) round trip) with the same options and print the same table, ours next
to pika's.  What they share is here: the options (:func:`parse_args`, which also resolves the
message counts onto the namespace), the header line naming the broker, one table row per
throughput scenario (:func:`throughput_row`), the two latency rows of (d)
(:func:`latency_rows`) and the table itself (:func:`print_results`).  How a scenario is run
and timed stays in each benchmark.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from _common import BrokerInfo, fmt_rate, print_table, ratio

#: the columns of every table these benchmarks print
HEADER = ["scenario", "ours", "pika", "ratio", "ours CPU us/msg", "pika CPU us/msg"]


def parse_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, *, turn: str = "loop turn"
) -> argparse.Namespace:
    """Add the shared options to ``parser``, parse ``argv`` and resolve the counts.

    The namespace gets ``publish_n``, ``confirm_n``, ``consume_n`` and ``trips_n`` (the
    defaults, divided by 10 with ``--quick``, unless given) and ``which`` (the clients to run).

    :param parser: the benchmark's parser (it may carry options of its own)
    :param argv: the arguments; None for ``sys.argv``
    :param turn: what one publish burst is per, in ``--batch``'s help ("loop turn")
    """
    parser.add_argument("--url", help="broker URL (default: AMQP_URL, else a private node)")
    parser.add_argument("--quick", action="store_true", help="counts divided by 10")
    parser.add_argument("--publish", type=int, help="messages for (a), default 100000")
    parser.add_argument("--confirm", type=int, help="messages for (b), default 20000")
    parser.add_argument("--consume", type=int, help="messages for (c), default 100000")
    parser.add_argument("--round-trips", type=int, help="round trips for (d), default 2000")
    parser.add_argument("--window", type=int, default=1000, help="confirm window for (b)")
    parser.add_argument("--prefetch", type=int, default=1000, help="prefetch count for (c)")
    parser.add_argument("--batch", type=int, default=1000, help=f"publishes per {turn}")
    parser.add_argument("--repeats", type=int, default=1, help="runs per figure (best kept)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run at most")
    parser.add_argument("--only", choices=["ours", "pika", "all"], default="all")
    parser.add_argument("--scenarios", default="abcd", help="which of a, b, c, d to run")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    args.publish_n = args.publish or 100_000 // scale
    args.confirm_n = args.confirm or 20_000 // scale
    args.consume_n = args.consume or 100_000 // scale
    args.trips_n = args.round_trips or 2_000 // scale
    args.which = ["ours", "pika"] if args.only == "all" else [args.only]
    return args


def print_broker(info: BrokerInfo, args: argparse.Namespace, *, turn: str = "loop turn") -> None:
    """Print the line naming the broker, the repeats and the publish bursts."""
    print(f"# broker {info.host}:{info.port} ({'private' if info.private else 'AMQP_URL'}); "
          f"best of {args.repeats}; publish bursts of {args.batch} per {turn}")


def throughput_labels(args: argparse.Namespace) -> dict[str, str]:
    """The row labels of the throughput scenarios, by scenario letter (a, b, c)."""
    return {
        "a": f"(a) publish {args.publish_n} x 64 B, msg/s",
        "b": f"(b) confirmed publish {args.confirm_n}, window {args.window}, msg/s",
        "c": f"(c) consume+ack {args.consume_n}, prefetch {args.prefetch}, msg/s",
    }


def better_latency(first: Any, second: Any) -> Any:
    """Of two ``(p50, p99)`` results, the one with the lower p50."""
    return min(first, second, key=lambda pair: pair[0])


def throughput_row(label: str, found: dict[str, Any]) -> list[str]:
    """The table row of a throughput scenario, and its "done" line on stderr.

    :param found: client name ("ours", "pika") -> ``(msg/s, client CPU us/msg)``; a client
        that has no result is absent
    """
    ours, theirs = found.get("ours"), found.get("pika")
    rate_ours, cpu_ours = ours if ours else (None, None)
    rate_pika, cpu_pika = theirs if theirs else (None, None)
    print(f"# {label}: done", file=sys.stderr, flush=True)
    return [label, fmt_rate(rate_ours), fmt_rate(rate_pika),
            ratio(rate_ours, rate_pika), fmt_rate(cpu_ours), fmt_rate(cpu_pika)]


def latency_rows(trips: int, found: dict[str, Any]) -> list[list[str]]:
    """The p50 and p99 rows of the round-trip scenario, and its "done" line on stderr.

    :param found: client name -> ``(p50, p99)`` in seconds; a client without a result is absent
    """
    ours, theirs = found.get("ours"), found.get("pika")
    rows: list[list[str]] = []
    for index, label in ((0, "p50"), (1, "p99")):
        mine = ours[index] * 1e6 if ours else None
        peer = theirs[index] * 1e6 if theirs else None
        rows.append([f"(d) round trip {trips}x, {label} latency, us",
                     fmt_rate(mine), fmt_rate(peer),
                     ratio(mine, peer, lower_is_better=True), "", ""])
    print("# (d) round trips: done", file=sys.stderr, flush=True)
    return rows


def print_results(connection: str, rows: Sequence[Sequence[str]]) -> None:
    """Print the table: ``connection``, ours vs pika, one row per figure."""
    print_table(f"{connection}, ours vs pika (ratio > 1 means ours is better)", HEADER, rows)
