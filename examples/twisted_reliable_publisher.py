"""Publish with confirms through Twisted's Deferred API, and reconnect when the broker goes away.

Usage::

    AMQP_URL=amqp://guest:guest@localhost:5672/%2F python examples/twisted_reliable_publisher.py
    python examples/twisted_reliable_publisher.py --url amqp://... --queue jobs --count 20000

The pattern (pika's Twisted API, driven by ``async def`` coroutines under ``ensureDeferred``):

* the queue is durable and every message persistent (``delivery_mode=2``): what the broker
  confirmed survives a broker restart;
* after ``await channel.confirm_delivery()``, ``channel.basic_publish(...)`` returns a Deferred
  per message that fires when the broker confirms it, or errbacks with ``NackError`` (nacked)
  or with the close reason when the channel or connection goes first.  Each Deferred gets a
  callback that settles it; a ``DeferredSemaphore`` keeps at most ``--window`` unconfirmed;
* an errback means the message's fate is unknown (or it was nacked): it is reported ``failed``
  and queued to be published again -- consumers may see it twice;
* when the channel is no longer open, the coroutine waits for the Deferreds in flight, closes
  what is left of the connection and the loop around it reconnects (``connectProtocol``)
  after an exponential back-off capped at ``--max-delay``; a refused connection (the broker is
  still down) is retried the same way.

Each line printed is ``confirmed <id>``, ``failed <id>`` or a progress message, then
``done confirmed=N failed=M``.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from typing import Any

from twisted.internet import defer, endpoints, error, task
from twisted.python.failure import Failure

import amqp_core as pika
from amqp_adapter_twisted import TwistedProtocolConnection
from amqp_core.exceptions import AMQPError

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL),
                        help="broker URL (default: $AMQP_URL, else %(default)s)")
    parser.add_argument("--queue", default="reliable-example", help="durable queue to publish to")
    parser.add_argument("--count", type=int, default=1000, help="messages to publish")
    parser.add_argument("--window", type=int, default=1000, help="unconfirmed messages at most")
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second (0: no limit)")
    parser.add_argument("--max-delay", type=float, default=2.0, help="longest reconnect delay, s")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after N seconds")
    return parser.parse_args(argv)


def say(text: str) -> None:
    print(text, flush=True)


class Publisher:
    """Publishes ids 0..count-1 until each one is confirmed, across connections."""

    def __init__(self, reactor: Any, args: argparse.Namespace) -> None:
        self.reactor = reactor
        self.args = args
        self.pending = collections.deque(range(args.count))  # ids to publish
        self.confirmed = self.failed = self.sent = 0
        self.started = time.monotonic()

    def settle(self, result: Any, message_id: int) -> None:
        if isinstance(result, Failure):  # nacked, or the connection went
            say(f"failed {message_id}")
            self.failed += 1
            self.pending.append(message_id)  # publish it again
        else:
            say(f"confirmed {message_id}")
            self.confirmed += 1

    async def publish_on(self, connection: TwistedProtocolConnection) -> None:
        """Publish on one connection until every id is confirmed or the channel closes."""
        channel = await connection.channel()
        await channel.queue_declare(self.args.queue, durable=True)
        await channel.confirm_delivery()
        say("connected")
        window = defer.DeferredSemaphore(self.args.window)
        in_flight: set[defer.Deferred[Any]] = set()

        def done(result: Any, message_id: int, deferred: defer.Deferred[Any]) -> None:
            in_flight.discard(deferred)
            window.release()
            self.settle(result, message_id)

        while channel.is_open and connection.is_open and (self.pending or in_flight):
            if not self.pending:  # wait for the last confirms (nacked ids come back)
                await defer.DeferredList(list(in_flight))
                continue
            await window.acquire()
            if self.args.rate:  # pace the publishing: sleep while ahead of the rate
                ahead = self.sent / self.args.rate - (time.monotonic() - self.started)
                if ahead > 0.005:
                    await task.deferLater(self.reactor, ahead)
            if not (channel.is_open and connection.is_open):
                window.release()
                break
            message_id = self.pending.popleft()
            properties = pika.BasicProperties(message_id=str(message_id), delivery_mode=2)
            deferred = channel.basic_publish("", self.args.queue, str(message_id), properties)
            self.sent += 1
            in_flight.add(deferred)
            deferred.addBoth(done, message_id, deferred)
            if deferred.called:  # failed at once (no confirm comes that fast): the channel closed
                break
        if in_flight:  # they errback with the close reason: let `done` report them
            await defer.DeferredList(list(in_flight))


async def run(reactor: Any, args: argparse.Namespace, publisher: Publisher) -> None:
    parameters = pika.URLParameters(args.url)
    endpoint = endpoints.TCP4ClientEndpoint(reactor, parameters.host, parameters.port)
    delay = 0.1
    while publisher.pending:
        try:
            connection = await endpoints.connectProtocol(
                endpoint, TwistedProtocolConnection(parameters))
            await connection.ready
            delay = 0.1
            await publisher.publish_on(connection)
            reason = await connection.close()  # the failure, if it had closed already
            if publisher.pending:
                say(f"connection lost ({reason!r}); reconnecting in {delay:.1f} s")
        except (error.ConnectError, AMQPError) as failure:
            say(f"connection lost ({failure!r}); reconnecting in {delay:.1f} s")
        if publisher.pending:
            await task.deferLater(reactor, delay)
            delay = min(delay * 2, args.max_delay)


def main(argv: list[str]) -> None:
    args = parse_args(argv)

    def start(reactor: Any) -> defer.Deferred[None]:
        publisher = Publisher(reactor, args)

        def finished(result: Any) -> None:
            if isinstance(result, Failure):
                say(f"gave up: {result.value!r}")  # --timeout passed (defer.TimeoutError)
            say(f"done confirmed={publisher.confirmed} failed={publisher.failed}")
            if publisher.pending:
                raise SystemExit(1)

        running = defer.ensureDeferred(run(reactor, args, publisher))
        return running.addTimeout(args.timeout, reactor).addBoth(finished)

    task.react(start)


if __name__ == "__main__":
    main(sys.argv[1:])
