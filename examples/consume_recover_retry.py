"""Consume a queue and recover from connection failures with a retry decorator (``tenacity``).

Usage::

    pip install tenacity
    AMQP_URL=amqp://guest:guest@localhost:5672/%2F python examples/consume_recover_retry.py
    python examples/consume_recover_retry.py amqp://... --queue jobs --delay 5 --jitter 3

The same policy as ``consume_recover.py``, written the way the pika documentation shows it with
a retry decorator: ``consume()`` is retried on ``AMQPConnectionError`` after a fixed delay plus
random jitter (so that many consumers cut off at once do not all reconnect in the same
instant); a ``ConnectionClosedByBroker`` is caught inside ``consume()`` and ends it normally,
and an ``AMQPChannelError`` is not a connection error, so it is not retried either.

``--max-messages`` and ``--timeout`` bound the run (the tests use them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import tenacity

import amqp_core as pika
from amqp_core import exceptions

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default=os.environ.get("AMQP_URL", DEFAULT_URL),
                        help="broker URL (default: $AMQP_URL, else %(default)s)")
    parser.add_argument("--queue", default="recovery-example", help="queue to consume")
    parser.add_argument("--max-messages", type=int, default=0,
                        help="stop after this many messages (0: no limit)")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="stop after this many seconds, retries included (0: no limit)")
    parser.add_argument("--delay", type=float, default=5.0,
                        help="fixed part of the pause before reconnecting, in seconds")
    parser.add_argument("--jitter", type=float, default=3.0,
                        help="random extra pause, up to this many seconds")
    parser.add_argument("--name", default="consume_recover_retry example",
                        help="connection name shown by the broker's management tools")
    return parser.parse_args(argv)


class Progress:
    """What survives a reconnection: the count and the deadline."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.received = 0
        self.deadline = time.monotonic() + args.timeout if args.timeout else None

    def finished(self) -> bool:
        if self.args.max_messages and self.received >= self.args.max_messages:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline


def announce_retry(state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    pause = state.next_action.sleep if state.next_action is not None else 0.0
    print(f"connection lost, reconnecting in {pause:.2f} s: {error!r}", flush=True)


@tenacity.retry(
    retry=tenacity.retry_if_exception_type(exceptions.AMQPConnectionError),
    wait=tenacity.wait_fixed(5) + tenacity.wait_random(0, 3),
    before_sleep=announce_retry,
    reraise=True,
)
def consume(progress: Progress) -> None:
    """Consume until finished; a connection error makes tenacity call this again."""
    args = progress.args
    params = pika.URLParameters(args.url)
    params.client_properties = {"connection_name": args.name}
    connection = pika.BlockingConnection(params)
    print("connected", flush=True)
    channel = connection.channel()
    channel.queue_declare(args.queue)
    channel.basic_qos(prefetch_count=10)

    def on_message(ch: Any, method: Any, _properties: Any, body: bytes) -> None:
        print(f"received {body.decode(errors='replace')}", flush=True)
        ch.basic_ack(method.delivery_tag)
        progress.received += 1
        if progress.finished():
            ch.stop_consuming()

    channel.basic_consume(args.queue, on_message)
    if progress.deadline is not None:
        connection.call_later(max(progress.deadline - time.monotonic(), 0),
                              channel.stop_consuming)
    try:
        channel.start_consuming()
    # Don't recover connections closed by the broker
    except exceptions.ConnectionClosedByBroker as error:
        print(f"connection closed by broker, not recovering: {error!r}", flush=True)
        return
    connection.close()
    print(f"done after {progress.received} message(s)", flush=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    progress = Progress(args)
    stop: Any = tenacity.stop_never
    if args.timeout:
        stop = tenacity.stop_after_delay(args.timeout)
    retrying = consume.retry_with(
        wait=tenacity.wait_fixed(args.delay) + tenacity.wait_random(0, args.jitter),
        stop=stop,
    )
    try:
        retrying(progress)
    except exceptions.AMQPChannelError as error:
        print(f"channel error, not recovering: {error!r}", flush=True)
        return 1
    except exceptions.AMQPConnectionError as error:
        print(f"giving up: {error!r}", flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
