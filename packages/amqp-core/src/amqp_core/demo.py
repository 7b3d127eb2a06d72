"""The demo: publish and consume through every installed adapter, print a table.

Run ``python -m amqp_core.demo`` (or ``bash tools/demo.sh`` from a fresh
clone).  With ``AMQP_URL`` set it uses that broker; otherwise it starts a
private local RabbitMQ node (127.0.0.1 only, its own ports and data
directory) and stops it at the end.

Every installed adapter (``amqp_core.plugins.installed_adapters()``) runs in a
process of its own (gevent's monkey-patching and Twisted's reactor are
process-global): it fills a fresh queue with ``--messages`` messages and
consumes them back with an ack each, then measures ``--round-trips``
sequential publish -> deliver round trips.  The scenarios are the ones of
``amqp-core bench`` (:mod:`amqp_core.cli._bench`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from .cli._bench import BenchConfig, run_scenario
from .parameters import URLParameters
from .plugins import installed_adapters

#: Bound on one adapter's whole run, in seconds.
ADAPTER_TIMEOUT = 300.0


def _run_one(adapter: str, url: str, messages: int, round_trips: int) -> dict[str, Any]:
    """Run both scenarios through ``adapter`` in this process; a JSON-able summary."""
    config = BenchConfig(count=messages, round_trips=round_trips, size=64, window=1000,
                         prefetch=1000, timeout=ADAPTER_TIMEOUT / 2)
    params = URLParameters(url)
    consume = run_scenario(adapter, params, "consume", config, lambda _units: None)
    latency = run_scenario(adapter, params, "latency", config, lambda _units: None)
    error = consume.error or latency.error
    return {
        "adapter": adapter,
        "messages": messages,
        "rate": consume.rate,
        "p50_us": latency.p50_us,
        "error": None if error is None else f"{type(error).__name__}: {error}",
    }


def _run_in_subprocess(adapter: str, url: str, messages: int, round_trips: int) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "amqp_core.demo", "--one", adapter, "--url", url,
        "--messages", str(messages), "--round-trips", str(round_trips),
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=ADAPTER_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return {"adapter": adapter, "error": f"timed out after {ADAPTER_TIMEOUT:.0f} s"}
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return {"adapter": adapter, "error": tail}
    summary: dict[str, Any] = json.loads(lines[-1])
    return summary


def _print_table(results: list[dict[str, Any]]) -> None:
    header = f"{'adapter':<10} {'messages':>9} {'msgs/s':>10} {'p50 round trip':>16}"
    print()
    print(header)
    print("-" * len(header))
    for row in results:
        if row.get("error"):
            print(f"{row['adapter']:<10} failed: {row['error']}")
            continue
        print(
            f"{row['adapter']:<10} {row['messages']:>9} {row['rate']:>10,.0f} "
            f"{row['p50_us'] / 1000:>13.3f} ms"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m amqp_core.demo``."""
    parser = argparse.ArgumentParser(description="Publish and consume through every adapter.")
    parser.add_argument("--url", default=os.environ.get("AMQP_URL"),
                        help="broker URL (default: $AMQP_URL, else a private local node)")
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--round-trips", type=int, default=500)
    parser.add_argument("--one", metavar="ADAPTER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.messages < 1 or args.round_trips < 1:
        parser.error("--messages and --round-trips must be at least 1")

    if args.one:
        print(json.dumps(_run_one(args.one, args.url, args.messages, args.round_trips)))
        return 0

    broker = None
    url = args.url
    if not url:
        from .testing.broker import PrivateBroker, ensure_installed

        print("No AMQP_URL given: starting a private RabbitMQ node on 127.0.0.1 ...", flush=True)
        ensure_installed()
        broker = PrivateBroker()
        broker.start()
        url = broker.url
        print(f"  broker up on 127.0.0.1:{broker.port}", flush=True)
    failed = False
    try:
        adapters = [info.name for info in installed_adapters()]
        print(f"installed adapters: {', '.join(adapters)}", flush=True)
        results = []
        for number, name in enumerate(adapters, 1):
            started = time.monotonic()
            print(f"[{number}/{len(adapters)}] {name}: publishing and consuming "
                  f"{args.messages} messages, then {args.round_trips} round trips ...",
                  flush=True)
            row = _run_in_subprocess(name, url, args.messages, args.round_trips)
            failed = failed or bool(row.get("error"))
            print(f"        done in {time.monotonic() - started:.1f} s", flush=True)
            results.append(row)
        _print_table(results)
    finally:
        if broker is not None:
            print("stopping the private node ...", flush=True)
            broker.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
