"""The demo: publish and consume through every installed adapter, print a table.

Run ``python -m amqp_core.demo`` (or ``bash tools/demo.sh`` from a fresh
clone).  With ``AMQP_URL`` set it uses that broker; otherwise it starts a
private local RabbitMQ node (127.0.0.1 only, its own ports and data
directory) and stops it at the end.

For each adapter it publishes ``--messages`` messages to a fresh queue,
consumes them back with acks, then measures ``--round-trips`` sequential
publish -> deliver round trips, and prints: adapter, messages, msgs/s, p50
round trip.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import BasicProperties, URLParameters


@dataclass
class DemoResult:
    """One adapter's figures."""

    adapter: str
    messages: int
    seconds: float
    round_trips_ms: list[float]

    @property
    def rate(self) -> float:
        """Messages published and consumed per second."""
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        """Median publish -> deliver round trip in milliseconds."""
        return statistics.median(self.round_trips_ms) if self.round_trips_ms else float("nan")


def _progress(text: str) -> None:
    print(f"  .. {text}", flush=True)


def run_select(url: str, messages: int, round_trips: int) -> DemoResult:
    """Publish and consume through SelectConnection (the callback API)."""
    from .adapters.select_connection import SelectConnection

    queue = f"demo-select-{uuid.uuid4().hex[:8]}"
    state: dict[str, Any] = {"received": 0, "rtts": [], "error": None}
    body = b"x" * 64

    def on_open(connection: Any) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel: Any) -> None:
        state["channel"] = channel
        channel.queue_declare(queue, auto_delete=True, callback=lambda _f: declared(channel))

    def declared(channel: Any) -> None:
        channel.basic_qos(prefetch_count=1000)
        channel.basic_consume(queue, on_message)
        state["start"] = time.perf_counter()
        for _ in range(messages):
            channel.basic_publish("", queue, body)

    def on_message(channel: Any, method: Any, properties: Any, payload: bytes) -> None:
        channel.basic_ack(method.delivery_tag)
        state["received"] += 1
        received = state["received"]
        if received == messages:
            state["elapsed"] = time.perf_counter() - state["start"]
            _progress(f"select: {messages} messages through; measuring round trips")
            send_probe(channel)
        elif received > messages:
            sent = properties.headers["t"]
            state["rtts"].append((time.perf_counter_ns() - sent) / 1e6)
            if len(state["rtts"]) >= round_trips:
                channel.connection.close()
            else:
                send_probe(channel)

    def send_probe(channel: Any) -> None:
        properties = BasicProperties(headers={"t": time.perf_counter_ns()})
        channel.basic_publish("", queue, body, properties)

    def on_close(connection: Any, error: BaseException) -> None:
        connection.ioloop.stop()

    def on_open_error(connection: Any, error: BaseException) -> None:
        state["error"] = error
        connection.ioloop.stop()

    connection = SelectConnection(URLParameters(url), on_open, on_open_error, on_close)
    deadline = connection.ioloop.call_later(120, connection.ioloop.stop)
    connection.ioloop.start()
    connection.ioloop.remove_timeout(deadline)
    if state["error"] is not None:
        raise state["error"]
    return DemoResult("select", messages, state.get("elapsed", 0.0), state["rtts"])


ADAPTER_RUNNERS: dict[str, Callable[[str, int, int], DemoResult]] = {"select": run_select}


def _print_table(results: list[DemoResult]) -> None:
    header = f"{'adapter':<12} {'messages':>9} {'msgs/s':>10} {'p50 round trip':>15}"
    print()
    print(header)
    print("-" * len(header))
    for result in results:
        print(
            f"{result.adapter:<12} {result.messages:>9} {result.rate:>10,.0f} "
            f"{result.p50_ms:>12.3f} ms"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m amqp_core.demo``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default=os.environ.get("AMQP_URL"),
                        help="broker URL (default: $AMQP_URL, else a private local node)")
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--round-trips", type=int, default=500)
    args = parser.parse_args(argv)

    broker = None
    url = args.url
    if not url:
        from .testing.broker import PrivateBroker, ensure_installed

        print("No AMQP_URL given: starting a private RabbitMQ node on 127.0.0.1 ...", flush=True)
        ensure_installed()
        broker = PrivateBroker()
        broker.start()
        url = broker.url
        print(f"  broker up at {url}", flush=True)
    try:
        results = []
        for name, runner in ADAPTER_RUNNERS.items():
            print(f"adapter {name}:", flush=True)
            results.append(runner(url, args.messages, args.round_trips))
            _progress(f"{name}: done")
        _print_table(results)
    finally:
        if broker is not None:
            print("stopping the private node ...", flush=True)
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
