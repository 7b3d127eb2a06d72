"""TwistedProtocolConnection as a Twisted protocol: endpoints, Twisted's TLS, forced close,
connection loss errbacking every pending Deferred, and thread-safe acks from 16 threads."""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

import pytest
from blocking_helpers import FakeServer
from twisted.internet import defer, endpoints, reactor, ssl
from twisted.internet.protocol import ClientCreator
from twisted_helpers import spin, wait

import amqp_core as pika
from amqp_adapter_twisted import TwistedChannel, TwistedProtocolConnection
from amqp_core.exceptions import (
    AMQPConnectionError,
    AMQPHeartbeatTimeout,
    ChannelClosedByClient,
    ConnectionClosedByBroker,
    ConnectionOpenAborted,
    StreamLostError,
)
from amqp_core.io.driver import CLOSE_GRACE
from amqp_core.testing.fault_proxy import FaultProxy


async def over_endpoint(endpoint: Any, parameters: Any) -> TwistedProtocolConnection:
    connection = await endpoints.connectProtocol(endpoint, TwistedProtocolConnection(parameters))
    await connection.ready
    return connection


def test_tcp_endpoint(run: Any, broker: Any, params: Any, unique: Any) -> None:
    async def scenario() -> None:
        endpoint = endpoints.TCP4ClientEndpoint(reactor, broker.host, broker.port)
        connection = await over_endpoint(endpoint, params())
        channel = await connection.channel()
        name = unique("q")
        assert (await channel.queue_declare(name, exclusive=True)).method.queue == name
        await connection.close()

    run(scenario)


def tls_options(private_broker: Any, client_cert: bool = False) -> Any:
    trust = ssl.trustRootFromCertificates(
        [ssl.Certificate.loadPEM(private_broker.ca_path.read_bytes())]
    )
    certificate = None
    if client_cert:
        certificate = ssl.PrivateCertificate.loadPEM(
            private_broker.client_cert_path.read_bytes()
            + private_broker.client_key_path.read_bytes()
        )
    return ssl.optionsForClientTLS("localhost", trustRoot=trust, clientCertificate=certificate)


@pytest.mark.parametrize("how", ["endpoint", "connectSSL"])
def test_tls_through_twisted(run: Any, private_broker: Any, params: Any, unique: Any,
                             how: str) -> None:
    async def scenario() -> None:
        if how == "endpoint":
            endpoint = endpoints.wrapClientTLS(
                tls_options(private_broker),
                endpoints.TCP4ClientEndpoint(reactor, private_broker.host,
                                             private_broker.tls_port),
            )
            connection = await over_endpoint(endpoint, params())
        else:
            creator = ClientCreator(reactor, TwistedProtocolConnection, params())
            connection = await creator.connectSSL(
                private_broker.host, private_broker.tls_port, tls_options(private_broker)
            )
            await connection.ready
        channel = await connection.channel()
        queue = unique("tls")
        await channel.queue_declare(queue, exclusive=True)
        await channel.confirm_delivery()
        await channel.basic_publish("", queue, b"x" * 300_000)  # several TLS records
        message = await channel.basic_get(queue, auto_ack=True)
        assert message.body == b"x" * 300_000
        await connection.close()

    run(scenario)
    spin(0.1)


# Twisted hands pyOpenSSL its own X509/PKey objects, which recent pyOpenSSL deprecates
@pytest.mark.filterwarnings("ignore:Passing pyOpenSSL:DeprecationWarning")
def test_tls_client_certificate_external_auth(run: Any, private_broker: Any,
                                              params: Any) -> None:
    async def scenario() -> None:
        endpoint = endpoints.wrapClientTLS(
            tls_options(private_broker, client_cert=True),
            endpoints.TCP4ClientEndpoint(reactor, private_broker.host, private_broker.tls_port),
        )
        connection = await over_endpoint(endpoint, params(credentials=pika.ExternalCredentials()))
        assert connection.is_open
        await connection.close()

    run(scenario)
    spin(0.1)


def test_broker_forced_close(run: Any, private_broker: Any, connect: Any, unique: Any) -> None:
    async def setup() -> tuple[Any, Any, Any]:
        connection = await connect()
        channel = await connection.channel()
        queue = unique("q")
        await channel.queue_declare(queue, exclusive=True)
        queue_object, _tag = await channel.basic_consume(queue)
        return connection, channel, queue_object

    connection, channel, queue_object = run(setup)
    waiting = queue_object.get()
    private_broker.close_all_connections("forced by the twisted test")

    async def after() -> None:
        reason = await connection.closed
        assert isinstance(reason, ConnectionClosedByBroker) and reason.reply_code == 320
        with pytest.raises(ConnectionClosedByBroker):
            await waiting
        assert isinstance(await channel.on_closed, ConnectionClosedByBroker)
        with pytest.raises(ConnectionClosedByBroker):
            await channel.queue_declare("x")
        with pytest.raises(ConnectionClosedByBroker):
            await connection.channel()
        assert connection.is_closed

    run(after)


def test_connection_loss_errbacks_every_pending_deferred(
    run: Any, broker: Any, connect: Any, unique: Any
) -> None:
    proxy = FaultProxy(broker.host, broker.port)
    try:
        async def setup() -> dict[str, Any]:
            connection = await connect(port=proxy.port)
            channel = await connection.channel()
            confirmed = await connection.channel()
            closing = await connection.channel()
            queue = unique("q")
            await channel.queue_declare(queue, exclusive=True)
            await confirmed.confirm_delivery()
            queue_object, _tag = await channel.basic_consume(queue)
            return {"connection": connection, "channel": channel, "confirmed": confirmed,
                    "closing": closing, "queue": queue, "queue_object": queue_object}

        state = run(setup)
        proxy.stall(discard=False)  # nothing answers from now on
        channel, confirmed = state["channel"], state["confirmed"]
        pending = {
            "consumer get": state["queue_object"].get(),
            "queue_declare": channel.queue_declare(state["queue"], passive=True),
            "basic_get": channel.basic_get(state["queue"]),
            "confirmed publish": confirmed.basic_publish("", state["queue"], b"x"),
            "channel()": state["connection"].channel(),
            "channel close": state["closing"].close(),
        }
        spin(0.2)
        assert not any(deferred.called for deferred in pending.values())
        proxy.close_all()

        async def after() -> None:
            for what, deferred in pending.items():
                if what == "channel close":  # a channel closed by the client keeps that reason
                    assert isinstance(await deferred, ChannelClosedByClient), what
                    continue
                with pytest.raises(StreamLostError):
                    await deferred
            assert isinstance(await state["connection"].closed, StreamLostError)
            assert isinstance(state["queue_object"].closed, StreamLostError)

        run(after)
    finally:
        proxy.close()


def test_acks_from_16_threads(run: Any, connect: Any, unique: Any) -> None:
    count = 1600

    async def consume() -> tuple[Any, Any, str, list[int]]:
        connection = await connect()
        channel = await connection.channel()
        queue = unique("q")
        await channel.queue_declare(queue, exclusive=True)
        await channel.confirm_delivery()
        await defer.gatherResults(
            [channel.basic_publish("", queue, str(i)) for i in range(count)]
        )
        await channel.basic_qos(prefetch_count=count)
        queue_object, _tag = await channel.basic_consume(queue)
        tags = [(await queue_object.get()).method.delivery_tag for _ in range(count)]
        return connection, channel, queue, tags

    connection, channel, queue, tags = run(consume)
    all_acked: defer.Deferred[None] = defer.Deferred()
    acked: list[int] = []
    start = threading.Event()  # all 16 threads call at once

    def ack(tag: int) -> None:  # runs on the reactor's thread
        channel.basic_ack(tag)
        acked.append(tag)
        if len(acked) == count:
            all_acked.callback(None)

    def worker(mine: list[int]) -> None:
        start.wait(10)
        for tag in mine:
            connection.add_callback_threadsafe(functools.partial(ack, tag))

    threads = [threading.Thread(target=worker, args=(tags[i::16],)) for i in range(16)]
    for thread in threads:
        thread.start()
    start.set()
    wait(all_acked, 30)
    for thread in threads:
        thread.join(10)
    assert sorted(acked) == sorted(tags)

    async def verify() -> None:
        await channel.close()
        # had any ack been lost, closing the channel would have requeued its message
        check = await connection.channel()
        declared = await check.queue_declare(queue, passive=True)
        assert declared.method.message_count == 0

    run(verify)


def test_peer_closing_before_the_handshake_errbacks_ready(run: Any, params: Any) -> None:
    with FakeServer("close") as server:
        async def scenario() -> None:
            creator = ClientCreator(reactor, TwistedProtocolConnection, params())
            connection = await creator.connectTCP("127.0.0.1", server.port)
            with pytest.raises(AMQPConnectionError):
                await connection.ready
            assert isinstance(await connection.closed, AMQPConnectionError)
            assert connection.is_closed

        run(scenario)
        spin(0.1)


def test_silent_peer_times_out_with_stack_timeout(run: Any, params: Any) -> None:
    with FakeServer("silent") as server:
        async def scenario() -> None:
            creator = ClientCreator(reactor, TwistedProtocolConnection,
                                    params(stack_timeout=0.5))
            connection = await creator.connectTCP("127.0.0.1", server.port)
            with pytest.raises(AMQPConnectionError):
                await connection.ready

        run(scenario, timeout=10)
        spin(0.1)


def test_close_before_ready_aborts(run: Any, broker: Any, params: Any) -> None:
    async def scenario() -> None:
        creator = ClientCreator(reactor, TwistedProtocolConnection, params())
        connection = await creator.connectTCP(broker.host, broker.port)
        ready = connection.ready
        reason = await connection.close()
        assert isinstance(reason, ConnectionOpenAborted)
        with pytest.raises(ConnectionOpenAborted):
            await ready

    run(scenario)
    spin(0.1)


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="custom_reactor"):
        TwistedProtocolConnection(custom_reactor=object())
    with pytest.raises(TypeError, match="parameters"):
        TwistedProtocolConnection(parameters="amqp://")  # type: ignore[arg-type]


def test_channel_is_a_twisted_channel(run: Any, connect: Any) -> None:
    async def scenario() -> None:
        connection = await connect()
        first, second = await connection.channel(), await connection.channel(7)
        assert isinstance(first, TwistedChannel) and second.channel_number == 7
        cancelled = connection.channel()
        cancelled.cancel()  # the channel that opens anyway is closed again
        with pytest.raises(defer.CancelledError):
            await cancelled
        third = await connection.channel()
        assert third.is_open

    run(scenario)


def test_heartbeat_timeout_ends_the_connection(run: Any, broker: Any, params: Any,
                                               connect: Any) -> None:
    proxy = FaultProxy(broker.host, broker.port)
    try:
        async def setup() -> Any:
            connection = await connect(params(heartbeat=1), port=proxy.port)
            channel = await connection.channel()
            queue_object, _tag = await channel.basic_consume(
                (await channel.queue_declare("", exclusive=True)).method.queue
            )
            return connection, queue_object.get()

        connection, waiting = run(setup)
        assert connection.heartbeat == 1
        proxy.stall(discard=False)  # the broker goes silent: no heartbeats arrive

        async def after() -> None:
            reason = await connection.closed
            assert isinstance(reason, AMQPHeartbeatTimeout)
            with pytest.raises(AMQPHeartbeatTimeout):
                await waiting

        run(after, timeout=15)
    finally:
        proxy.close()


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "twisted-tls"])
def test_close_right_after_a_large_burst(run: Any, private_broker: Any, params: Any,
                                         unique: Any, tls: bool) -> None:
    """Closing while Twisted's buffer is full (producer paused) still flushes and closes."""
    async def scenario() -> None:
        endpoint: Any = endpoints.TCP4ClientEndpoint(
            reactor, private_broker.host, private_broker.tls_port if tls else private_broker.port
        )
        if tls:
            endpoint = endpoints.wrapClientTLS(tls_options(private_broker), endpoint)
        connection = await over_endpoint(endpoint, params())
        channel = await connection.channel()
        queue = unique("burst")
        await channel.queue_declare(queue, auto_delete=False)
        for _ in range(16):
            channel.basic_publish("", queue, b"z" * (128 << 10))  # 2 MiB in one turn
        started = time.monotonic()
        reason = await connection.close()
        assert reason.reply_code == 200
        # not held until the driver's grace timer aborts the stream (a paused producer
        # left registered keeps Twisted from closing)
        assert time.monotonic() - started < CLOSE_GRACE
        check = await over_endpoint(
            endpoints.TCP4ClientEndpoint(reactor, private_broker.host, private_broker.port),
            params(),
        )
        checker = await check.channel()
        declared = await checker.queue_delete(queue)
        assert declared.method.message_count == 16
        await check.close()

    run(scenario)
    spin(0.1)
