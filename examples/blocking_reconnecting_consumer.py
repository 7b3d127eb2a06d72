"""Consume a durable queue on a BlockingConnection and reconnect after every failure.

Usage::

    AMQP_URL=amqp://guest:guest@localhost:5672/%2F python examples/blocking_reconnecting_consumer.py
    python examples/blocking_reconnecting_consumer.py --url amqp://... --queue jobs --count 20000

The pattern (the blocking half of ``blocking_reliable_publisher.py``):

* the queue is declared durable, so it and its persistent messages survive a broker restart;
* each message is acknowledged after it was handled, so a message whose ack was lost with the
  connection is delivered again: consumers see duplicates, never gaps (``redelivered`` tells);
* recovery lives around ``start_consuming()``: a broker restart closes connections with
  CONNECTION_FORCED (``ConnectionClosedByBroker``), then refuses new ones until it is back,
  so every ``AMQPConnectionError`` leads to a new connection after an exponential back-off
  capped at ``--max-delay``.  (``consume_recover.py`` shows pika's documented variant, which
  stops when the broker closes the connection on purpose.)  A channel error (a missing queue,
  a failed precondition) is a bug to fix, not a network problem: the program stops.

Each line printed is ``received <message id>`` or a progress message, then
``done received=N distinct=M``.  ``--count`` stops after that many distinct ids; ``--timeout``
bounds the run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import amqp_core as pika
from amqp_core import exceptions

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL),
                        help="broker URL (default: $AMQP_URL, else %(default)s)")
    parser.add_argument("--queue", default="reliable-example", help="durable queue to consume")
    parser.add_argument("--count", type=int, default=0,
                        help="stop after this many distinct message ids (0: never)")
    parser.add_argument("--prefetch", type=int, default=100, help="unacked messages at most")
    parser.add_argument("--max-delay", type=float, default=2.0, help="longest reconnect delay, s")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after N seconds")
    return parser.parse_args(argv)


def say(text: str) -> None:
    print(text, flush=True)


class Consumer:
    """Acknowledges every message and remembers the ids it saw, across connections."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.received = 0
        self.seen: set[str] = set()
        self.delay = 0.1  # the next reconnection delay
        self.deadline: float = time.monotonic() + args.timeout

    def finished(self) -> bool:
        if self.args.count and len(self.seen) >= self.args.count:
            return True
        return time.monotonic() >= self.deadline

    def on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        message_id = properties.message_id or body.decode(errors="replace")
        say(f"received {message_id}")
        channel.basic_ack(method.delivery_tag)
        self.received += 1
        self.seen.add(message_id)
        if self.finished():
            channel.stop_consuming()

    def consume_once(self) -> None:
        """Consume on one connection until finished; raises when the connection fails."""
        connection = pika.BlockingConnection(pika.URLParameters(self.args.url))
        channel = connection.channel()
        channel.queue_declare(self.args.queue, durable=True)
        channel.basic_qos(prefetch_count=self.args.prefetch)
        channel.basic_consume(self.args.queue, self.on_message)
        say("consuming")
        self.delay = 0.1
        connection.call_later(max(self.deadline - time.monotonic(), 0), channel.stop_consuming)
        channel.start_consuming()
        connection.close()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    consumer = Consumer(args)
    while not consumer.finished():
        try:
            consumer.consume_once()
        except exceptions.AMQPChannelError as error:
            say(f"channel error, not recovering: {error!r}")
            return 1
        except exceptions.AMQPConnectionError as error:
            say(f"connection lost ({error!r}); reconnecting in {consumer.delay:.1f} s")
            time.sleep(consumer.delay)
            consumer.delay = min(consumer.delay * 2, args.max_delay)
    say(f"done received={consumer.received} distinct={len(consumer.seen)}")
    return 0 if not args.count or len(consumer.seen) >= args.count else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
