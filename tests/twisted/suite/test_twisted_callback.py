"""TwistedConnection: pika's callback API on the reactor (the plugin's connection class).

The cross-adapter behaviour of the callback API is amqp_core's conformance kit's job; these
tests cover what is specific to this adapter: discovery, its own TCP/TLS streams, its
workflow errors, and the Deferred API over one of its channels.
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from twisted.internet import defer, reactor
from twisted_helpers import LOOP, spin, wait

import amqp_core as pika
from amqp_adapter_twisted import TwistedChannel, TwistedConnection, TwistedEventLoop
from amqp_core.exceptions import AMQPConnectionError, ConnectionClosedByClient
from amqp_core.plugins import get_adapter, get_connection_class


class Outcome:
    """Collects a TwistedConnection's callbacks; ``opened``/``closed`` are Deferreds."""

    def __init__(self) -> None:
        self.opened: defer.Deferred[Any] = defer.Deferred()
        self.closed: defer.Deferred[Any] = defer.Deferred()

    def connection(self, parameters: Any, **kwargs: Any) -> TwistedConnection:
        return TwistedConnection(
            parameters,
            on_open_callback=self.opened.callback,
            on_open_error_callback=lambda _c, error: self.opened.errback(error),
            on_close_callback=lambda _c, reason: self.closed.callback(reason),
            **kwargs,
        )


def test_discovered_through_the_plugin_api() -> None:
    assert get_connection_class("twisted") is TwistedConnection
    description = get_adapter("twisted")
    assert description.distribution == "amqp-adapter-twisted"
    assert "Twisted" in description.summary or "twisted" in description.native_loop


def test_custom_ioloop_choices() -> None:
    connection = TwistedConnection(pika.ConnectionParameters(), custom_ioloop=reactor,
                                   internal_connection_workflow=False)
    assert connection.ioloop is reactor
    assert isinstance(connection.event_loop, TwistedEventLoop)
    loop = TwistedEventLoop(reactor)
    assert TwistedConnection(custom_ioloop=loop,
                             internal_connection_workflow=False).event_loop is loop
    with pytest.raises(TypeError, match="custom_ioloop"):
        TwistedConnection(custom_ioloop=object())


def test_callback_api_and_a_deferred_channel(params: Any, unique: Any) -> None:
    outcome = Outcome()
    connection = outcome.connection(params(), custom_ioloop=LOOP)
    assert wait(outcome.opened) is connection
    channel_opened: defer.Deferred[Any] = defer.Deferred()
    connection.channel(on_open_callback=channel_opened.callback)
    channel = TwistedChannel(wait(channel_opened))

    async def scenario() -> bytes:
        queue = unique("q")
        await channel.queue_declare(queue, exclusive=True)
        await channel.confirm_delivery()
        await channel.basic_publish("", queue, b"over TwistedConnection")
        message = await channel.basic_get(queue, auto_ack=True)
        return bytes(message.body)

    assert wait(defer.ensureDeferred(scenario())) == b"over TwistedConnection"
    connection.close()
    assert isinstance(wait(outcome.closed), ConnectionClosedByClient)


def test_tls_from_ssl_options(private_broker: Any, params: Any) -> None:
    context = ssl.create_default_context(cafile=str(private_broker.ca_path))
    outcome = Outcome()
    connection = outcome.connection(
        params(port=private_broker.tls_port, ssl_options=pika.SSLOptions(context, "localhost")),
        custom_ioloop=LOOP,
    )
    wait(outcome.opened)
    got: defer.Deferred[Any] = defer.Deferred()

    def on_channel(channel: Any) -> None:
        def declared(frame: Any) -> None:
            queue = frame.method.queue
            channel.basic_publish("", queue, b"y" * 200_000)
            channel.basic_get(queue, lambda _ch, _m, _p, body: got.callback(body), auto_ack=True)

        channel.queue_declare("", exclusive=True, callback=declared)

    connection.channel(on_open_callback=on_channel)
    assert wait(got) == b"y" * 200_000
    connection.close()
    wait(outcome.closed)
    spin(0.1)


def test_tls_with_an_untrusted_ca_fails_to_open(private_broker: Any, params: Any) -> None:
    outcome = Outcome()
    outcome.connection(
        params(port=private_broker.tls_port, connection_attempts=1,
               ssl_options=pika.SSLOptions(ssl.create_default_context(), "localhost")),
        custom_ioloop=LOOP,
    )
    with pytest.raises(AMQPConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        wait(outcome.opened)
    spin(0.1)


def test_refused_then_retried_over_the_workflow(broker: Any, params: Any) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    done: defer.Deferred[Any] = defer.Deferred()
    TwistedConnection.create_connection(
        [params(port=dead_port), params()], done.callback, custom_ioloop=LOOP
    )
    connection = wait(done)
    assert isinstance(connection, TwistedConnection) and connection.is_open
    closed: defer.Deferred[Any] = defer.Deferred()
    connection.add_on_close_callback(lambda _c, reason: closed.callback(reason))
    connection.close()
    wait(closed)


def test_refused_everywhere_is_an_open_error(params: Any) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    outcome = Outcome()
    outcome.connection(params(port=dead_port, connection_attempts=2, retry_delay=0.05),
                       custom_ioloop=LOOP)
    with pytest.raises(AMQPConnectionError, match="ConnectionRefusedError"):
        wait(outcome.opened)
