"""Consume a durable queue on a GeventConnection; reconnect from its close callback.

Usage::

    AMQP_URL=amqp://guest:guest@localhost:5672/%2F python examples/gevent_reconnecting_consumer.py
    python examples/gevent_reconnecting_consumer.py --url amqp://... --queue jobs --count 20000

The pattern (pika's callback API in the gevent hub; the main greenlet only waits):

* open connection -> open channel -> declare the durable queue -> ``basic_qos`` ->
  ``basic_consume``; each message is acknowledged once handled, so a message whose ack was
  lost with the connection comes again: expect duplicates, never gaps;
* the connection's ``on_close_callback`` (and ``on_open_error_callback``, for a refused
  reconnection while the broker is still down) schedules a new connection with
  ``gevent.spawn_later`` after an exponential back-off capped at ``--max-delay`` (callbacks run
  in the hub and must not block, so they never sleep themselves);
* a broker restart closes connections with CONNECTION_FORCED: that is recovered from like a
  lost stream.  Only the program's own ``close()`` (when finished) ends it, by setting the
  event the main greenlet waits on.

Each line printed is ``received <message id>`` or a progress message, then
``done received=N distinct=M``.  ``--count`` stops after that many distinct ids; ``--timeout``
bounds the run.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import gevent
import gevent.event

import amqp_core as pika
from amqp_adapter_gevent import GeventConnection

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
    """Keeps one consuming connection alive until ``--count`` distinct ids were received."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.connection: GeventConnection | None = None
        self.done = gevent.event.Event()
        self.stopping = False
        self.received = 0
        self.seen: set[str] = set()
        self.delay = 0.1

    def connect(self) -> None:
        if self.stopping:
            return
        self.connection = GeventConnection(
            pika.URLParameters(self.args.url), on_open_callback=self.on_open,
            on_open_error_callback=self.on_closed, on_close_callback=self.on_closed)

    def on_open(self, connection: GeventConnection) -> None:
        self.delay = 0.1
        connection.channel(on_open_callback=self.on_channel)

    def on_channel(self, channel: Any) -> None:
        channel.queue_declare(self.args.queue, durable=True, callback=lambda _frame: (
            channel.basic_qos(prefetch_count=self.args.prefetch, callback=lambda _f: (
                self.start_consuming(channel)))))

    def start_consuming(self, channel: Any) -> None:
        channel.basic_consume(self.args.queue, self.on_message)
        say("consuming")

    def on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        message_id = properties.message_id or body.decode(errors="replace")
        say(f"received {message_id}")
        channel.basic_ack(method.delivery_tag)
        self.received += 1
        self.seen.add(message_id)
        if self.args.count and len(self.seen) >= self.args.count:
            self.stop()

    def stop(self) -> None:
        self.stopping = True
        connection = self.connection
        if connection is None or connection.is_closed:
            self.done.set()
        elif not connection.is_closing:
            connection.close()  # on_closed sets `done`

    def on_closed(self, _connection: Any, reason: BaseException) -> None:
        if self.stopping:
            self.done.set()
            return
        say(f"connection lost ({reason!r}); reconnecting in {self.delay:.1f} s")
        gevent.spawn_later(self.delay, self.connect)
        self.delay = min(self.delay * 2, self.args.max_delay)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    consumer = Consumer(args)
    consumer.connect()
    if not consumer.done.wait(timeout=args.timeout):
        consumer.stop()
        consumer.done.wait(timeout=5)
    say(f"done received={consumer.received} distinct={len(consumer.seen)}")
    return 0 if not args.count or len(consumer.seen) >= args.count else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
