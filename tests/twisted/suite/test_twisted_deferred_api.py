"""The cross-adapter behaviour through the Deferred API (TwistedProtocolConnection/TwistedChannel).

Every test is an ``async def`` driven by ``ensureDeferred`` (the ``run`` fixture): Deferreds
are awaited directly.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted_helpers import spin

import amqp_core as pika
from amqp_adapter_twisted import (
    CHANNEL_DEFERREDS,
    ClosableDeferredQueue,
    ReceivedMessage,
    TwistedChannel,
    TwistedProtocolConnection,
)
from amqp_core import frame, spec
from amqp_core.channel import Channel
from amqp_core.exceptions import (
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
    ConnectionClosedByClient,
    ConsumerCancelled,
    DuplicateGetOkCallback,
    NackError,
    ProbableAuthenticationError,
    UnroutableError,
)

#: Methods of the callback channel written by hand in TwistedChannel (not generic).
HAND_WRITTEN = {"basic_consume", "basic_cancel", "basic_get", "confirm_delivery", "flow"}


async def message_count(channel: TwistedChannel, queue: str, expected: int) -> int:
    """The queue's ready-message count, polled (bounded) until it is ``expected``."""
    for _ in range(100):
        count: int = (await channel.queue_declare(queue, passive=True)).method.message_count
        if count == expected:
            break
        await deferLater(reactor, 0.02, lambda: None)
    return count


async def open_channel(connect: Any) -> tuple[TwistedProtocolConnection, TwistedChannel]:
    connection = await connect()
    return connection, await connection.channel()


def test_every_callback_method_has_a_deferred_form() -> None:
    """The generic table plus the hand-written methods cover every method with a reply."""
    with_reply = {
        name for name, member in inspect.getmembers(Channel, inspect.isfunction)
        if not name.startswith("_") and "callback" in inspect.signature(member).parameters
        and not name.startswith("add_")
    }
    assert with_reply <= set(CHANNEL_DEFERREDS) | HAND_WRITTEN
    for name in CHANNEL_DEFERREDS:
        parameters = inspect.signature(getattr(TwistedChannel, name)).parameters
        assert "callback" not in parameters, name
        assert "Deferred" in (getattr(TwistedChannel, name).__doc__ or "")


def test_open_ready_and_close(run: Any, connect: Any) -> None:
    async def scenario() -> None:
        connection = await connect()
        assert connection.is_open and not connection.is_closed
        assert connection.ready is None  # fired (pika drops the reference too)
        assert connection.server_properties  # the callback connection's attributes show through
        reason = await connection.close()
        assert isinstance(reason, ConnectionClosedByClient) and reason.reply_code == 200
        assert connection.is_closed
        assert (await connection.closed) is reason
        assert (await connection.close()) is reason  # closing again: the same outcome

    run(scenario)


def test_ready_fires_with_the_protocol(run: Any, broker: Any, params: Any) -> None:
    from twisted.internet.protocol import ClientCreator

    async def scenario() -> None:
        creator = ClientCreator(reactor, TwistedProtocolConnection, params())
        connection = await creator.connectTCP(broker.host, broker.port)
        assert (await connection.ready) is connection
        await connection.close()

    run(scenario)


def test_bad_password_errbacks_ready(run: Any, broker: Any, params: Any) -> None:
    from twisted.internet.protocol import ClientCreator

    async def scenario() -> None:
        bad = params(credentials=pika.PlainCredentials("guest", "wrong"))
        connection = await ClientCreator(reactor, TwistedProtocolConnection, bad).connectTCP(
            broker.host, broker.port
        )
        with pytest.raises(ProbableAuthenticationError):
            await connection.ready
        assert isinstance(await connection.closed, ProbableAuthenticationError)
        with pytest.raises(ProbableAuthenticationError):
            await connection.channel()

    run(scenario)
    spin(0.1)


def test_declare_bind_purge_delete(run: Any, connect: Any, unique: Any) -> None:
    async def scenario() -> None:
        _connection, channel = await open_channel(connect)
        exchange, queue = unique("x"), unique("q")
        reply = await channel.exchange_declare(exchange, exchange_type="topic")
        assert isinstance(reply, frame.Method)
        assert isinstance(reply.method, spec.Exchange.DeclareOk)
        declared = await channel.queue_declare(queue, auto_delete=True)
        assert declared.method.queue == queue and declared.method.message_count == 0
        assert isinstance((await channel.queue_bind(queue, exchange, "a.*")).method,
                          spec.Queue.BindOk)
        await channel.basic_publish(exchange, "a.b", b"routed")
        await channel.basic_publish(exchange, "z.b", b"not routed")
        assert await message_count(channel, queue, 1) == 1
        purged = await channel.queue_purge(queue)
        assert purged.method.message_count == 1
        assert isinstance((await channel.queue_unbind(queue, exchange, "a.*")).method,
                          spec.Queue.UnbindOk)
        other = unique("x2")
        await channel.exchange_declare(other)
        assert isinstance((await channel.exchange_bind(other, exchange, "#")).method,
                          spec.Exchange.BindOk)
        assert isinstance((await channel.exchange_unbind(other, exchange, "#")).method,
                          spec.Exchange.UnbindOk)
        assert isinstance((await channel.queue_delete(queue)).method, spec.Queue.DeleteOk)
        await channel.exchange_delete(other)
        assert isinstance((await channel.exchange_delete(exchange)).method,
                          spec.Exchange.DeleteOk)

    run(scenario)


def test_publish_consume_ack(run: Any, connect: Any, unique: Any) -> None:
    async def scenario() -> None:
        _connection, channel = await open_channel(connect)
        queue = unique("q")
        await channel.queue_declare(queue, exclusive=True)
        properties = spec.BasicProperties(content_type="text/plain", headers={"n": 1})
        for index in range(5):
            published = await channel.basic_publish("", queue, f"m{index}", properties)
            assert published is None
        queue_object, tag = await channel.basic_consume(queue)
        assert isinstance(queue_object, ClosableDeferredQueue)
        assert tag in channel.consumer_tags
        bodies = []
        for _ in range(5):
            message = await queue_object.get()
            assert isinstance(message, ReceivedMessage)
            assert message.channel is channel
            assert isinstance(message.method, spec.Basic.Deliver)
            assert message.properties.content_type == "text/plain"
            assert message.properties.headers == {"n": 1}
            bodies.append(message.body)
            channel.basic_ack(message.method.delivery_tag)
        assert bodies == [f"m{i}".encode() for i in range(5)]
        cancel_ok = await channel.basic_cancel(tag)
        assert isinstance(cancel_ok.method, spec.Basic.CancelOk)
        with pytest.raises(ConsumerCancelled):
            await queue_object.get()
        assert await message_count(channel, queue, 0) == 0
        assert (await channel.basic_cancel(tag)) is None  # no longer consuming

    run(scenario)


def test_cancel_requeues_messages_not_taken(run: Any, connect: Any, unique: Any) -> None:
    async def scenario() -> None:
        _connection, channel = await open_channel(connect)
        queue = unique("q")
        await channel.queue_declare(queue, exclusive=True)
        await channel.confirm_delivery()
        await defer.gatherResults([channel.basic_publish("", queue, b"x") for _ in range(3)])
        queue_object, tag = await channel.basic_consume(queue)
        first = await queue_object.get()
        channel.basic_ack(first.method.delivery_tag)
        while len(queue_object.pending) < 2:
            await channel.queue_declare(queue, passive=True)  # let the deliveries arrive
        await channel.basic_cancel(tag)
        assert not queue_object.pending
        assert await message_count(channel, queue, 2) == 2

    run(scenario)


def test_basic_get(run: Any, connect: Any, unique: Any) -> None:
    async def scenario() -> None:
        _connection, channel = await open_channel(connect)
        queue = unique("q")
        await channel.queue_declare(queue, exclusive=True)
        assert (await channel.basic_get(queue)) is None
        await channel.basic_publish("", queue, b"one")
        pending = channel.basic_get(queue)
        with pytest.raises(DuplicateGetOkCallback):
            channel.basic_get(queue)
        message = await pending
        assert isinstance(message, ReceivedMessage) and message.body == b"one"
        assert isinstance(message.method, spec.Basic.GetOk)
        channel.basic_ack(message.method.delivery_tag)
        assert (await channel.basic_get(queue, auto_ack=True)) is None

    run(scenario)


def test_confirms_ack_unroutable_and_nack(run: Any, connect: Any, unique: Any) -> None:
    async def scenario() -> None:
        _connection, channel = await open_channel(connect)
        select_ok = await channel.confirm_delivery()
        assert isinstance(select_ok.method, spec.Confirm.SelectOk)
        assert (await channel.confirm_delivery()) is None
        queue = unique("q")
        await channel.queue_declare(queue, exclusive=True)
        acks = await defer.gatherResults(
            [channel.basic_publish("", queue, b"m") for _ in range(50)]
        )
        assert all(isinstance(ack, spec.Basic.Ack) for ack in acks)
        with pytest.raises(UnroutableError) as unroutable:
            await channel.basic_publish("", unique("nowhere"), b"lost", mandatory=True)
        (returned,) = unroutable.value.messages
        assert returned.body == b"lost" and returned.method.reply_code == 312
        # a routed mandatory publish in the same batch is acked
        assert isinstance(await channel.basic_publish("", queue, b"m", mandatory=True),
                          spec.Basic.Ack)
        full = unique("full")
        await channel.queue_declare(full, exclusive=True, arguments={
            "x-max-length": 0, "x-overflow": "reject-publish",
        })
        with pytest.raises(NackError):
            await channel.basic_publish("", full, b"rejected")

    run(scenario)


def test_return_callback_gets_a_received_message(run: Any, connect: Any, unique: Any) -> None:
    async def scenario() -> None:
        _connection, channel = await open_channel(connect)
        returned: defer.Deferred[Any] = defer.Deferred()
        channel.add_on_return_callback(returned.callback)
        await channel.basic_publish("", unique("nowhere"), b"back", mandatory=True)
        message = await returned
        assert isinstance(message, ReceivedMessage) and message.channel is channel
        assert isinstance(message.method, spec.Basic.Return) and message.body == b"back"

    run(scenario)


def test_qos_recover_flow_tx(run: Any, connect: Any) -> None:
    async def scenario() -> None:
        _connection, channel = await open_channel(connect)
        assert isinstance((await channel.basic_qos(prefetch_count=10)).method, spec.Basic.QosOk)
        assert isinstance((await channel.basic_recover(requeue=True)).method,
                          spec.Basic.RecoverOk)
        assert (await channel.flow(True)) is True
        assert isinstance((await channel.tx_select()).method, spec.Tx.SelectOk)
        assert isinstance((await channel.tx_commit()).method, spec.Tx.CommitOk)
        assert isinstance((await channel.tx_rollback()).method, spec.Tx.RollbackOk)

    run(scenario)


def test_client_close(run: Any, connect: Any) -> None:
    async def scenario() -> None:
        _connection, channel = await open_channel(connect)
        seen: list[Any] = []
        channel.add_on_close_callback(lambda ch, reason: seen.append((ch, reason)))
        reason = await channel.close()
        assert isinstance(reason, ChannelClosedByClient)
        assert (await channel.on_closed) is reason
        assert seen == [(channel, reason)]
        assert channel.is_closed
        with pytest.raises(ChannelClosedByClient):
            await channel.queue_declare("anything")
        with pytest.raises(ChannelClosedByClient):
            await channel.basic_publish("", "q", b"x")
        with pytest.raises(ChannelWrongStateError):
            channel.close()

    run(scenario)


def test_broker_channel_error_errbacks_every_pending_deferred(
    run: Any, connect: Any, unique: Any
) -> None:
    async def scenario() -> None:
        connection, channel = await open_channel(connect)
        queue = unique("q")
        await channel.queue_declare(queue, exclusive=True)
        queue_object, _tag = await channel.basic_consume(queue)
        waiting = queue_object.get()
        missing = channel.queue_declare(unique("missing"), passive=True)
        behind = channel.queue_declare(queue, passive=True)  # queued behind the failing one
        for pending in (missing, behind, waiting):
            with pytest.raises(ChannelClosedByBroker) as closed:
                await pending
            assert closed.value.reply_code == 404
        assert isinstance(queue_object.closed, ChannelClosedByBroker)
        assert isinstance(await channel.on_closed, ChannelClosedByBroker)
        with pytest.raises(ChannelClosedByBroker):
            await channel.queue_declare(queue)
        assert connection.is_open
        again = await connection.channel()
        assert (await again.queue_declare(queue, passive=True)).method.queue == queue

    run(scenario)


def test_deleting_the_queue_closes_its_consumer_queue(run: Any, connect: Any,
                                                      unique: Any) -> None:
    async def scenario() -> None:
        connection, channel = await open_channel(connect)
        queue = unique("q")
        await channel.queue_declare(queue)
        queue_object, tag = await channel.basic_consume(queue)
        other = await connection.channel()
        await other.queue_delete(queue)
        with pytest.raises(ConsumerCancelled):
            await queue_object.get()
        assert tag not in channel.consumer_tags

    run(scenario)


def test_cancelled_deferred_keeps_the_channel_consistent(
    run: Any, connect: Any, unique: Any
) -> None:
    async def scenario() -> None:
        _connection, channel = await open_channel(connect)
        first = channel.queue_declare(unique("a"), exclusive=True)
        first.cancel()
        with pytest.raises(defer.CancelledError):
            await first
        name = unique("b")
        second = await channel.queue_declare(name, exclusive=True)
        assert second.method.queue == name

    run(scenario)


def test_bad_input_gives_failed_deferreds_naming_the_parameter(run: Any, connect: Any) -> None:
    async def scenario() -> None:
        _connection, channel = await open_channel(connect)
        with pytest.raises(TypeError, match="queue"):
            await channel.queue_declare(123)
        with pytest.raises(TypeError, match="callback"):
            await channel.queue_declare("q", callback=lambda _frame: None)
        with pytest.raises(ValueError, match="prefetch_count"):
            await channel.basic_qos(prefetch_count=-1)
        with pytest.raises(TypeError, match="consumer_tag"):
            await channel.basic_cancel(5)
        with pytest.raises(TypeError):
            TwistedChannel(object())  # type: ignore[arg-type]
        assert channel.is_open

    run(scenario)


def test_wrapping_a_callback_channel(run: Any, connect: Any, unique: Any) -> None:
    async def scenario() -> None:
        connection = await connect()
        opened: defer.Deferred[Any] = defer.Deferred()
        connection.callback_connection.channel(on_open_callback=opened.callback)
        channel = TwistedChannel(await opened)
        assert channel.channel_number >= 1 and channel.connection is connection.callback_connection
        name = unique("q")
        assert (await channel.queue_declare(name, exclusive=True)).method.queue == name

    run(scenario)
