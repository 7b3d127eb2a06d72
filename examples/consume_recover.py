"""Consume a queue and recover from connection failures, as the pika documentation describes.

Usage::

    AMQP_URL=amqp://guest:guest@localhost:5672/%2F python examples/consume_recover.py
    python examples/consume_recover.py amqp://... --queue jobs --max-messages 10 --timeout 60

The recovery policy lives in the application, around ``start_consuming()``:

* ``ConnectionClosedByBroker`` -- the broker (or an operator) closed the connection on
  purpose: stop, do not reconnect;
* ``AMQPChannelError`` -- a channel-level error (a missing queue, a failed precondition) is a
  bug to fix, not a network problem: stop;
* any other ``AMQPConnectionError`` (lost TCP stream, heartbeat timeout, refused connection)
  -- wait ``--retry-delay`` seconds, reconnect and continue consuming.

``--max-messages`` and ``--timeout`` bound the run (the tests use them); each line printed
says what happened, for people and for the tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

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
                        help="stop after this many seconds (0: no limit)")
    parser.add_argument("--retry-delay", type=float, default=1.0,
                        help="seconds between a failure and the next connection attempt")
    parser.add_argument("--name", default="consume_recover example",
                        help="connection name shown by the broker's management tools")
    return parser.parse_args(argv)


class Consumer:
    """Counts and acknowledges messages across connections."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.received = 0
        self.deadline = time.monotonic() + args.timeout if args.timeout else None

    def finished(self) -> bool:
        if self.args.max_messages and self.received >= self.args.max_messages:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def on_message(self, channel: pika.adapters.blocking_connection.BlockingChannel,
                   method: pika.spec.Basic.Deliver, _properties: pika.BasicProperties,
                   body: bytes) -> None:
        print(f"received {body.decode(errors='replace')}", flush=True)
        channel.basic_ack(method.delivery_tag)
        self.received += 1
        if self.finished():
            channel.stop_consuming()

    def consume_once(self) -> None:
        """One connection's worth of consuming; returns when finished, raises on failure."""
        params = pika.URLParameters(self.args.url)
        params.client_properties = {"connection_name": self.args.name}
        connection = pika.BlockingConnection(params)
        print("connected", flush=True)
        channel = connection.channel()
        channel.queue_declare(self.args.queue)
        channel.basic_qos(prefetch_count=10)
        channel.basic_consume(self.args.queue, self.on_message)
        if self.deadline is not None:
            connection.call_later(max(self.deadline - time.monotonic(), 0),
                                  channel.stop_consuming)
        channel.start_consuming()
        connection.close()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    consumer = Consumer(args)
    while not consumer.finished():
        try:
            consumer.consume_once()
        # Don't recover if the connection was closed by the broker
        except exceptions.ConnectionClosedByBroker as error:
            print(f"connection closed by broker, not recovering: {error!r}", flush=True)
            return 0
        # Don't recover on channel errors
        except exceptions.AMQPChannelError as error:
            print(f"channel error, not recovering: {error!r}", flush=True)
            return 1
        # Recover on all other connection errors
        except exceptions.AMQPConnectionError as error:
            print(f"connection lost, reconnecting: {error!r}", flush=True)
            time.sleep(args.retry_delay)
        except KeyboardInterrupt:
            return 130
    print(f"done after {consumer.received} message(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
