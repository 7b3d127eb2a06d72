"""A Twisted service that consumes a queue and reconnects whenever the connection is lost.

Usage::

    AMQP_URL=amqp://guest:guest@localhost:5672/%2F python examples/twisted_service.py
    python examples/twisted_service.py amqp://... --queue jobs --max-messages 10 --timeout 60

How it works:

* :class:`ConsumerService` is a ``twisted.application.service.Service``; it owns a
  ``ClientService`` (``twisted.application.internet``) that keeps one
  :class:`~amqp_adapter_twisted.TwistedProtocolConnection` connected through a client
  endpoint (``amqps://`` URLs use Twisted's TLS), reconnecting with an exponential back-off
  after every loss -- a dropped TCP stream, a heartbeat timeout, or the broker closing the
  connection (``rabbitmqctl close_connection``, a node restart).
* For each connection :meth:`ConsumerService.consume_on` waits for ``ready``, opens a channel,
  declares the (durable) queue, sets a prefetch window and reads the consumer's
  ``ClosableDeferredQueue`` with ``await queue.get()``, acknowledging every message.  When the
  connection goes, ``get()`` errbacks with the reason and the coroutine ends; the
  ``ClientService`` has already started reconnecting.
* Inside ``twistd`` the service is started and stopped by the application; run as a script,
  :func:`main` starts it under ``twisted.internet.task.react``.

``--max-messages`` and ``--timeout`` bound the run (the tests use them); each line printed says
what happened, for people and for the tests.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet import defer, endpoints, task
from twisted.internet.protocol import Factory

import amqp_core as pika
from amqp_adapter_twisted import TwistedProtocolConnection

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("url", nargs="?", default=os.environ.get("AMQP_URL", DEFAULT_URL),
                        help="broker URL (default: $AMQP_URL, else %(default)s)")
    parser.add_argument("--queue", default="twisted-service-example", help="queue to consume")
    parser.add_argument("--prefetch", type=int, default=10, help="unacknowledged messages at most")
    parser.add_argument("--max-messages", type=int, default=0,
                        help="stop after this many messages (0: no limit)")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="stop after this many seconds (0: no limit)")
    parser.add_argument("--ca", help="CA certificate (PEM) to trust for amqps:// URLs")
    parser.add_argument("--name", default="twisted_service example",
                        help="connection name shown by the broker's management tools")
    return parser.parse_args(argv)


def say(text: str) -> None:
    print(text, flush=True)


class _ConnectionFactory(Factory):
    """Builds one TwistedProtocolConnection per connection the ClientService makes."""

    noisy = False

    def __init__(self, parameters: pika.URLParameters) -> None:
        self.parameters = parameters

    def buildProtocol(self, addr: Any) -> TwistedProtocolConnection:
        return TwistedProtocolConnection(self.parameters)


class ConsumerService(Service):
    """Consume ``queue`` for as long as the service runs, reconnecting after every loss.

    :param reactor: the reactor
    :param url: the broker's ``amqp://`` or ``amqps://`` URL
    :param queue: the queue to consume (declared durable)
    :param prefetch: the prefetch window
    :param ca: a CA certificate file for TLS (None: the system's trust store)
    :param name: the connection name the broker shows
    """

    def __init__(self, reactor: Any, url: str, queue: str, prefetch: int = 10,
                 ca: str | None = None, name: str = "twisted_service example") -> None:
        self.reactor = reactor
        self.queue = queue
        self.prefetch = prefetch
        self.received = 0
        #: Fires with the count when :meth:`stop_after` is reached.
        self.done: defer.Deferred[int] = defer.Deferred()
        self._limit = 0
        self._connection: TwistedProtocolConnection | None = None
        parameters = pika.URLParameters(url)
        parameters.client_properties = {"connection_name": name}
        endpoint: Any = endpoints.TCP4ClientEndpoint(reactor, parameters.host, parameters.port)
        if url.startswith("amqps://"):
            from twisted.internet import ssl

            trust = None
            if ca:
                with open(ca, "rb") as pem:
                    trust = ssl.trustRootFromCertificates(
                        [ssl.Certificate.loadPEM(pem.read())]
                    )
            endpoint = endpoints.wrapClientTLS(
                ssl.optionsForClientTLS(parameters.host, trustRoot=trust), endpoint
            )
        self._client = ClientService(
            endpoint, _ConnectionFactory(parameters), clock=reactor,
            retryPolicy=backoffPolicy(initialDelay=0.5, maxDelay=5.0),
            prepareConnection=self.consume_on,
        )

    def stop_after(self, count: int) -> None:
        """Fire :attr:`done` once ``count`` messages were processed (0: never)."""
        self._limit = count

    def startService(self) -> None:
        super().startService()
        say(f"starting: consuming {self.queue!r}")
        self._client.startService()

    def stopService(self) -> defer.Deferred[None]:
        """Close the AMQP connection politely, then stop reconnecting."""
        super().stopService()
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            await connection.close()
        await self._client.stopService()

    def consume_on(self, connection: TwistedProtocolConnection) -> None:
        """The ClientService just connected ``connection``: consume on it in the background."""
        self._connection = connection
        work = defer.ensureDeferred(self._consume(connection))
        work.addErrback(lambda failure: say(f"consumer stopped: {failure.value!r}"))

    async def _consume(self, connection: TwistedProtocolConnection) -> None:
        await connection.ready
        channel = await connection.channel()
        await channel.queue_declare(self.queue, durable=True)
        await channel.basic_qos(prefetch_count=self.prefetch)
        messages, _tag = await channel.basic_consume(self.queue)
        say("consuming")
        while True:
            message = await messages.get()  # errbacks with the reason when the connection goes
            self.handle(message.body)
            channel.basic_ack(message.method.delivery_tag)
            self.received += 1
            if self._limit and self.received >= self._limit and not self.done.called:
                self.done.callback(self.received)

    def handle(self, body: bytes) -> None:
        """The application's work for one message."""
        say(f"received {body.decode(errors='replace')}")


async def run(reactor: Any, args: argparse.Namespace) -> int:
    service = ConsumerService(reactor, args.url, args.queue, args.prefetch, args.ca, args.name)
    service.stop_after(args.max_messages)
    service.startService()
    waiting: defer.Deferred[Any] = service.done
    if args.timeout:
        waiting.addTimeout(args.timeout, reactor)
    try:
        count = await waiting
        say(f"done: {count} messages")
        return 0
    except defer.TimeoutError:
        say(f"timeout after {args.timeout} s: {service.received} messages")
        return 1
    finally:
        await service.stopService()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def start(reactor: Any) -> defer.Deferred[None]:
        def finished(code: int) -> None:
            if code:
                raise SystemExit(code)

        return defer.ensureDeferred(run(reactor, args)).addCallback(finished)

    task.react(start)


if __name__ == "__main__":
    main()
