"""Consume a durable queue with Twisted; reconnect from the connection's ``closed`` callback.

Usage::

    AMQP_URL=amqp://guest:guest@localhost:5672/%2F python examples/twisted_reconnecting_consumer.py
    python examples/twisted_reconnecting_consumer.py --url amqp://... --queue jobs --count 20000

The pattern (pika's Twisted API; ``twisted_service.py`` shows the same job done by Twisted's
``ClientService``):

* ``endpoints.connectProtocol`` connects a :class:`TwistedProtocolConnection`; a coroutine
  (``ensureDeferred``) waits for ``ready``, opens a channel, declares the durable queue, sets
  the prefetch window and reads the consumer's ``ClosableDeferredQueue``, acknowledging every
  message once handled -- a message whose ack was lost with the connection comes again:
  expect duplicates, never gaps;
* the connection's ``closed`` Deferred is its close callback: it fires with the reason (a
  dropped stream, CONNECTION_FORCED from a broker restart ...) and schedules a new connection
  with ``reactor.callLater`` after an exponential back-off capped at ``--max-delay``.  A
  refused TCP connection (the broker is still down) errbacks ``connectProtocol`` instead, and
  schedules the next attempt the same way;
* when the connection goes, the pending ``queue.get()`` errbacks and the coroutine ends.

Each line printed is ``received <message id>`` or a progress message, then
``done received=N distinct=M``.  ``--count`` stops after that many distinct ids; ``--timeout``
bounds the run.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from twisted.internet import defer, endpoints, task
from twisted.python.failure import Failure

import amqp_core as pika
from amqp_adapter_twisted import TwistedProtocolConnection

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

    def __init__(self, reactor: Any, args: argparse.Namespace) -> None:
        self.reactor = reactor
        self.args = args
        self.parameters = pika.URLParameters(args.url)
        self.endpoint = endpoints.TCP4ClientEndpoint(
            reactor, self.parameters.host, self.parameters.port)
        self.connection: TwistedProtocolConnection | None = None
        self.done: defer.Deferred[None] = defer.Deferred()
        self.stopping = False
        self.received = 0
        self.seen: set[str] = set()
        self.delay = 0.1

    def connect(self) -> None:
        if self.stopping:
            return
        connecting = endpoints.connectProtocol(
            self.endpoint, TwistedProtocolConnection(self.parameters))
        connecting.addCallbacks(self.on_connected, self.on_failed)

    def on_connected(self, connection: TwistedProtocolConnection) -> None:
        self.connection = connection
        connection.closed.addCallback(self.on_closed)  # the close callback
        consuming = defer.ensureDeferred(self.consume(connection))
        consuming.addErrback(self.on_consume_failed, connection)

    def on_consume_failed(self, failure: Failure, connection: TwistedProtocolConnection) -> None:
        if connection.is_open:  # the consumer failed, not the connection: start again
            say(f"consumer failed ({failure.value!r}); reconnecting")
            connection.close()
        # else: the connection is gone, its close callback reconnects

    def on_failed(self, failure: Failure) -> None:
        self.retry(failure.value)

    def on_closed(self, reason: BaseException) -> None:
        if self.stopping:
            if not self.done.called:
                self.done.callback(None)
            return
        self.retry(reason)

    def retry(self, reason: object) -> None:
        say(f"connection lost ({reason!r}); reconnecting in {self.delay:.1f} s")
        self.reactor.callLater(self.delay, self.connect)
        self.delay = min(self.delay * 2, self.args.max_delay)

    async def consume(self, connection: TwistedProtocolConnection) -> None:
        await connection.ready
        self.delay = 0.1
        channel = await connection.channel()
        await channel.queue_declare(self.args.queue, durable=True)
        await channel.basic_qos(prefetch_count=self.args.prefetch)
        messages, _tag = await channel.basic_consume(self.args.queue)
        say("consuming")
        while True:
            message = await messages.get()  # errbacks with the reason when the connection goes
            message_id = message.properties.message_id or message.body.decode(errors="replace")
            say(f"received {message_id}")
            channel.basic_ack(message.method.delivery_tag)
            self.received += 1
            self.seen.add(message_id)
            if self.args.count and len(self.seen) >= self.args.count:
                self.stop()
                return

    def stop(self) -> None:
        self.stopping = True
        connection = self.connection
        if connection is None or connection.is_closed:
            if not self.done.called:
                self.done.callback(None)
        else:
            connection.close()  # on_closed fires `done`


async def run(reactor: Any, args: argparse.Namespace) -> int:
    consumer = Consumer(reactor, args)
    consumer.connect()
    timer = reactor.callLater(args.timeout, consumer.stop)  # never hang
    await consumer.done
    if timer.active():
        timer.cancel()
    say(f"done received={consumer.received} distinct={len(consumer.seen)}")
    return 0 if not args.count or len(consumer.seen) >= args.count else 1


def main(argv: list[str]) -> None:
    args = parse_args(argv)

    def start(reactor: Any) -> defer.Deferred[None]:
        def finished(code: int) -> None:
            if code:
                raise SystemExit(code)

        return defer.ensureDeferred(run(reactor, args)).addCallback(finished)

    task.react(start)


if __name__ == "__main__":
    main(sys.argv[1:])
