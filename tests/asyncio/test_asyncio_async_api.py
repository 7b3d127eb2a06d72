"""The async/await API (``connect``, ``AsyncConnection``, ``AsyncChannel``, ``Consumer``) against
the real broker, on asyncio and uvloop.  Every coroutine is bounded by ``asyncio.wait_for``."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

import amqp_core as pika
from amqp_adapter_asyncio import (
    AsyncChannel,
    AsyncConnection,
    Consumer,
    Message,
    ReturnedMessage,
    connect,
)
from amqp_adapter_asyncio.aio import CHANNEL_AWAITABLES, CONNECTION_AWAITABLES
from amqp_core import exceptions, spec
from amqp_core.channel import Channel
from amqp_core.testing.fault_proxy import FaultProxy, unused_port


async def eventually(predicate: Any, timeout: float = 5.0) -> None:
    """Poll an async predicate until true (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------- connecting


def test_connect_with_url_and_async_with(run: Any, broker: Any, unique: Any) -> None:
    queue = unique("url")

    async def scenario() -> None:
        async with connect(broker.url) as conn:
            assert isinstance(conn, AsyncConnection)
            assert conn.is_open and conn.ioloop is asyncio.get_running_loop()
            async with await conn.channel() as ch:
                assert isinstance(ch, AsyncChannel) and ch.is_open
                frame = await ch.queue_declare(queue, auto_delete=True)
                assert isinstance(frame.method, spec.Queue.DeclareOk)
                assert frame.method.queue == queue
            assert ch.is_closed
        assert conn.is_closed
        assert conn.callback_connection.event_loop.open_streams == 0

    run(scenario)


def test_await_connect_with_parameters_then_async_with(run: Any, params: Any) -> None:
    async def scenario() -> None:
        conn = await connect(params())
        async with conn:
            assert conn.server_properties  # the callback connection's attribute
        reason = await conn.wait_closed()
        assert isinstance(reason, exceptions.ConnectionClosedByClient)
        await conn.close()  # idempotent

    run(scenario)


def test_connect_tries_a_sequence_of_parameters(run: Any, params: Any) -> None:
    async def scenario() -> None:
        async with connect([params(port=unused_port(), connection_attempts=1), params()]) as conn:
            assert conn.is_open

    run(scenario)


def test_connect_wrong_password(run: Any, params: Any) -> None:
    async def scenario() -> None:
        with pytest.raises(exceptions.ProbableAuthenticationError):
            await connect(params(credentials=pika.PlainCredentials("guest", "wrong")))

    run(scenario)


def test_connect_checks_its_argument() -> None:
    with pytest.raises(TypeError, match="url_or_parameters"):
        connect(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="url_or_parameters"):
        connect([])


def test_cancelled_connect_leaves_nothing_behind(run: Any, params: Any) -> None:
    async def scenario() -> None:
        task = asyncio.ensure_future(connect(params()))
        await asyncio.sleep(0)  # started, not open yet
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)  # the aborted attempt winds down
        async with connect(params()) as conn:  # and a new one works
            assert conn.is_open

    run(scenario)


# ---------------------------------------------------------------------------- generic wrapper


def test_generic_wrapper_shape() -> None:
    for name, how in CHANNEL_AWAITABLES.items():
        method = getattr(AsyncChannel, name)
        assert inspect.iscoroutinefunction(method), name
        assert how.callback_kwarg not in inspect.signature(method).parameters, name
        assert f"Channel.{name}" in (method.__doc__ or "")
        assert callable(getattr(Channel, name))
    for name in CONNECTION_AWAITABLES:
        assert inspect.iscoroutinefunction(getattr(AsyncConnection, name)), name
    assert "callback" not in inspect.signature(AsyncChannel.queue_declare).parameters
    assert "queue" in inspect.signature(AsyncChannel.queue_declare).parameters


def test_methods_return_pika_frames(run: Any, params: Any, unique: Any) -> None:
    exchange, queue = unique("x"), unique("q")

    async def scenario() -> None:
        async with connect(params()) as conn:
            ch = await conn.channel()
            assert isinstance(ch.callback_channel, Channel)
            with pytest.raises(TypeError, match="callback"):
                await ch.queue_declare(queue, callback=lambda _f: None)
            replies = [
                await ch.exchange_declare(exchange, "topic", auto_delete=True),
                await ch.queue_declare(queue, exclusive=True),
                await ch.queue_bind(queue, exchange, "a.#"),
                await ch.basic_qos(prefetch_count=10),
                await ch.queue_purge(queue),
                await ch.queue_unbind(queue, exchange, "a.#"),
                await ch.tx_select(),
                await ch.tx_commit(),
                await ch.exchange_delete(exchange),
                await ch.queue_delete(queue),
            ]
            kinds = [type(reply.method) for reply in replies]
            assert kinds == [
                spec.Exchange.DeclareOk, spec.Queue.DeclareOk, spec.Queue.BindOk,
                spec.Basic.QosOk, spec.Queue.PurgeOk, spec.Queue.UnbindOk, spec.Tx.SelectOk,
                spec.Tx.CommitOk, spec.Exchange.DeleteOk, spec.Queue.DeleteOk,
            ]
            assert await ch.flow(True) is True
            # sync methods are the callback channel's
            assert ch.basic_ack.__self__ is ch.callback_channel
            assert ch.channel_number == ch.callback_channel.channel_number

    run(scenario)


# ---------------------------------------------------------------------------- get / consume


def test_basic_get(run: Any, params: Any, unique: Any) -> None:
    queue = unique("get")

    async def scenario() -> None:
        async with connect(params()) as conn:
            ch = await conn.channel()
            await ch.queue_declare(queue, exclusive=True)
            assert await ch.basic_get(queue) is None
            published = ch.basic_publish("", queue, b"one", pika.BasicProperties(message_id="m1"))
            # a plain method: queued at once; without confirms the awaitable is already done
            assert not inspect.iscoroutinefunction(AsyncChannel.basic_publish)
            assert isinstance(published, asyncio.Future) and published.done()
            await published
            await ch.basic_publish("", queue, "two")  # str bodies are UTF-8
            first, second, third = await asyncio.gather(
                ch.basic_get(queue), ch.basic_get(queue, auto_ack=True), ch.basic_get(queue)
            )
            assert isinstance(first, Message) and first.body == b"one"
            assert first.properties.message_id == "m1" and first.channel is ch
            assert isinstance(first.method, spec.Basic.GetOk)
            assert not first.settled
            first.ack()
            assert first.settled
            assert isinstance(second, Message) and second.body == b"two" and second.settled
            assert third is None

    run(scenario)


def test_consume_ack_nack_reject(run: Any, params: Any, unique: Any) -> None:
    queue = unique("consume")

    async def scenario() -> None:
        async with connect(params()) as conn:
            ch = await conn.channel()
            await ch.queue_declare(queue, exclusive=True)
            for index in range(4):
                await ch.basic_publish("", queue, f"m{index}".encode(),
                                       pika.BasicProperties(priority=index))
            seen: list[Message] = []
            async with ch.consume(queue) as consumer:
                assert isinstance(consumer, Consumer) and consumer.is_active
                assert consumer.consumer_tag in ch.consumer_tags
                async for message in consumer:
                    assert message.channel is ch
                    assert isinstance(message.method, spec.Basic.Deliver)
                    assert message.properties.priority == int(message.body[1:])
                    seen.append(message)
                    if len(seen) == 4:
                        break
                seen[0].ack()
                seen[1].nack(requeue=False)  # dropped
                seen[2].reject(requeue=True)  # comes back
                seen[3].ack()
                again = await asyncio.wait_for(consumer.__anext__(), 5)
                assert again.body == b"m2" and again.redelivered
                again.ack()
            assert not consumer.is_active
            frame = await ch.queue_declare(queue, passive=True)
            assert frame.method.message_count == 0 and frame.method.consumer_count == 0

    run(scenario)


def test_leaving_async_with_requeues_buffered_messages(run: Any, params: Any,
                                                       unique: Any) -> None:
    queue = unique("requeue")

    async def scenario() -> None:
        async with connect(params()) as conn:
            ch = await conn.channel()
            await ch.queue_declare(queue, exclusive=True)
            for index in range(5):
                await ch.basic_publish("", queue, b"%d" % index)
            async with ch.consume(queue) as consumer:
                first = await consumer.__anext__()
                first.ack()
                await asyncio.sleep(0.1)  # the other four arrive and wait in the buffer

            async def given_back() -> bool:
                # the broker applies requeues asynchronously: poll (bounded)
                frame = await ch.queue_declare(queue, passive=True)
                return frame.method.consumer_count == 0 and frame.method.message_count == 4

            await eventually(given_back)

    run(scenario)


def test_break_out_of_bare_async_for_cancels_the_consumer(run: Any, params: Any,
                                                          unique: Any) -> None:
    queue = unique("break")

    async def scenario() -> None:
        async with connect(params()) as conn:
            ch = await conn.channel()
            await ch.queue_declare(queue, exclusive=True)
            await ch.basic_publish("", queue, b"x")
            async for message in ch.consume(queue):
                message.ack()
                break

            async def no_consumer() -> bool:
                frame = await ch.queue_declare(queue, passive=True)
                return frame.method.consumer_count == 0 and not ch.consumer_tags

            await eventually(no_consumer)

    run(scenario)


def test_waiting_for_a_message_can_time_out(run: Any, params: Any, unique: Any) -> None:
    queue = unique("idle")

    async def scenario() -> None:
        async with connect(params()) as conn:
            ch = await conn.channel()
            await ch.queue_declare(queue, exclusive=True)
            async with ch.consume(queue, auto_ack=True) as consumer:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(consumer.__anext__(), 0.2)
                assert consumer.is_active  # only the wait was cancelled
                await ch.basic_publish("", queue, b"late")
                message = await asyncio.wait_for(consumer.__anext__(), 5)
                assert message.body == b"late" and message.settled

    run(scenario)


def test_broker_cancel_ends_iteration(run: Any, params: Any, unique: Any) -> None:
    queue = unique("deleted")

    async def scenario() -> None:
        async with connect(params()) as conn:
            ch = await conn.channel()
            other = await conn.channel()
            await ch.queue_declare(queue)
            consumer = ch.consume(queue)
            await consumer.start()
            await other.queue_delete(queue)
            with pytest.raises(exceptions.ConsumerCancelled):
                await asyncio.wait_for(consumer.__anext__(), 5)
            assert not consumer.is_active
            assert ch.is_open

    run(scenario)


# ---------------------------------------------------------------------------- publishing


def test_confirmed_publishing(run: Any, params: Any, unique: Any) -> None:
    queue = unique("confirm")

    async def scenario() -> None:
        async with connect(params()) as conn:
            ch = await conn.channel()
            await ch.queue_declare(queue, exclusive=True)
            select_ok = await ch.confirm_delivery()
            assert isinstance(select_ok.method, spec.Confirm.SelectOk)
            assert ch.publisher_confirms
            assert await ch.confirm_delivery() is None
            # a window of 500 in flight; the broker acks with multiple=True
            results = await asyncio.gather(
                *(ch.basic_publish("", queue, b"%d" % i) for i in range(500))
            )
            assert results == [None] * 500
            frame = await ch.queue_declare(queue, passive=True)
            assert frame.method.message_count == 500

    run(scenario)


def test_unroutable_and_routed_publishes_in_one_window(run: Any, params: Any,
                                                      unique: Any) -> None:
    queue = unique("mixed")

    async def scenario() -> None:
        async with connect(params()) as conn:
            ch = await conn.channel()
            await ch.queue_declare(queue, exclusive=True)
            await ch.confirm_delivery()
            nowhere = unique("nowhere")
            outcomes = await asyncio.gather(
                ch.basic_publish("", queue, b"a", mandatory=True),
                ch.basic_publish("", nowhere, b"b", mandatory=True),
                ch.basic_publish("", queue, b"c"),
                ch.basic_publish("", nowhere, b"d"),  # not mandatory: dropped, still acked
                ch.basic_publish("", nowhere, b"e", mandatory=True),
                return_exceptions=True,
            )
            assert outcomes[0] is None and outcomes[2] is None and outcomes[3] is None
            for index, body in ((1, b"b"), (4, b"e")):
                error = outcomes[index]
                assert isinstance(error, exceptions.UnroutableError), outcomes
                (returned,) = error.messages
                assert isinstance(returned, ReturnedMessage)
                assert isinstance(returned.method, spec.Basic.Return)
                assert returned.method.reply_code == 312 and returned.body == body
            assert ch.is_open

    run(scenario)


def test_nacked_publish_raises(run: Any, params: Any, unique: Any) -> None:
    queue = unique("full")

    async def scenario() -> None:
        async with connect(params()) as conn:
            ch = await conn.channel()
            await ch.queue_declare(queue, exclusive=True, arguments={
                "x-max-length": 0, "x-overflow": "reject-publish",
            })
            await ch.confirm_delivery()
            with pytest.raises(exceptions.NackError) as caught:
                await ch.basic_publish("", queue, b"no room")
            (nacked,) = caught.value.messages
            assert isinstance(nacked.method, spec.Basic.Nack) and nacked.body == b"no room"
            assert ch.is_open

    run(scenario)


def test_large_messages(run: Any, params: Any, unique: Any) -> None:
    queue = unique("large")
    body = bytes(range(256)) * 4096  # 1 MiB: many frames each

    async def scenario() -> None:
        async with connect(params()) as conn:
            ch = await conn.channel()
            await ch.queue_declare(queue, exclusive=True)
            await ch.confirm_delivery()
            await asyncio.gather(*(ch.basic_publish("", queue, body) for _ in range(8)))
            for _ in range(8):
                message = await ch.basic_get(queue, auto_ack=True)
                assert message is not None and message.body == body

    run(scenario, timeout=60)


# ---------------------------------------------------------------------------- cancellation


def test_cancelled_calls_leave_the_channel_consistent(run: Any, params: Any,
                                                     unique: Any) -> None:
    first, second = unique("first"), unique("second")

    async def scenario() -> None:
        async with connect(params()) as conn:
            ch = await conn.channel()
            task = asyncio.ensure_future(ch.queue_declare(first, exclusive=True))
            await asyncio.sleep(0)  # the request is on its way
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # the reply to the cancelled call arrives and is discarded: this one gets its own
            frame = await ch.queue_declare(second, exclusive=True)
            assert frame.method.queue == second
            assert (await ch.queue_declare(first, passive=True)).method.queue == first

            await ch.confirm_delivery()
            publish = asyncio.ensure_future(ch.basic_publish("", first, b"given up"))
            await asyncio.sleep(0)
            publish.cancel()
            with pytest.raises(asyncio.CancelledError):
                await publish
            await ch.basic_publish("", first, b"kept")  # later confirms still line up
            frame = await ch.queue_declare(first, passive=True)
            assert frame.method.message_count == 2

            get = asyncio.ensure_future(ch.basic_get(first))
            await asyncio.sleep(0)
            get.cancel()
            with pytest.raises(asyncio.CancelledError):
                await get
            message = await ch.basic_get(first)  # the abandoned one was given back
            assert message is not None
            message.ack()

            opening = asyncio.ensure_future(conn.channel())
            await asyncio.sleep(0)
            opening.cancel()
            with pytest.raises(asyncio.CancelledError):
                await opening
            another = await conn.channel()
            assert another.is_open

    run(scenario)


# ---------------------------------------------------------------------------- closing


def test_channel_closed_by_broker_fails_pending_calls(run: Any, params: Any,
                                                     unique: Any) -> None:
    async def scenario() -> None:
        async with connect(params()) as conn:
            ch = await conn.channel()
            missing = ch.queue_declare(unique("missing"), passive=True)
            behind = ch.queue_declare(unique("ok"), exclusive=True)
            outcomes = await asyncio.gather(missing, behind, return_exceptions=True)
            for outcome in outcomes:
                assert isinstance(outcome, exceptions.ChannelClosedByBroker), outcomes
                assert outcome.reply_code == 404
            reason = await ch.wait_closed()
            assert isinstance(reason, exceptions.ChannelClosedByBroker)
            assert ch.is_closed
            with pytest.raises(exceptions.ChannelWrongStateError):
                await ch.queue_declare(unique("late"))
            await ch.close()  # idempotent
            fresh = await conn.channel()  # the connection is fine
            assert (await fresh.queue_declare("", exclusive=True)).method.queue

    run(scenario)


def test_broker_forced_close(run: Any, params: Any, private_broker: Any, unique: Any) -> None:
    name, queue = unique("forced"), unique("q")

    async def scenario() -> None:
        conn = await connect(params(client_properties={"connection_name": name}))
        ch = await conn.channel()
        await ch.queue_declare(queue, exclusive=True)
        consumer = ch.consume(queue)
        await consumer.start()

        def close_it() -> None:
            rows = private_broker.list_connections()
            (mine,) = [row for row in rows if name in row["client_properties"]]
            private_broker.close_connection(mine["pid"], "forced by test")

        await asyncio.wait_for(asyncio.to_thread(close_it), 30)
        reason = await asyncio.wait_for(conn.wait_closed(), 15)
        assert isinstance(reason, exceptions.ConnectionClosedByBroker)
        assert reason.reply_code == 320
        with pytest.raises(exceptions.ConnectionClosedByBroker):
            await asyncio.wait_for(consumer.__anext__(), 5)
        with pytest.raises(exceptions.AMQPError):
            await conn.channel()
        await conn.close()  # already closed: returns

    run(scenario, timeout=60)


def test_tls_connect(run: Any, private_broker: Any) -> None:
    async def scenario() -> None:
        parameters = pika.URLParameters(private_broker.tls_url)
        parameters.ssl_options = pika.SSLOptions(private_broker.client_ssl_context(), "localhost")
        async with connect(parameters) as conn:
            ch = await conn.channel()
            assert (await ch.queue_declare("", exclusive=True)).method.queue

    run(scenario)


def test_async_api_on_a_loop_in_another_thread(thread_loop: asyncio.AbstractEventLoop,
                                               params: Any, unique: Any) -> None:
    queue = unique("thread")

    async def scenario() -> bytes:
        async with connect(params()) as conn:
            ch = await conn.channel()
            await ch.queue_declare(queue, exclusive=True)
            await ch.confirm_delivery()
            await ch.basic_publish("", queue, b"from a worker thread")
            message = await ch.basic_get(queue, auto_ack=True)
            assert message is not None
            return message.body

    future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(scenario(), 20), thread_loop)
    assert future.result(30) == b"from a worker thread"


def test_used_from_a_foreign_loop_raises(run: Any, thread_loop: asyncio.AbstractEventLoop,
                                        params: Any) -> None:
    async def open_there() -> AsyncChannel:
        conn = await connect(params())
        return await conn.channel()

    ch = asyncio.run_coroutine_threadsafe(
        asyncio.wait_for(open_there(), 20), thread_loop
    ).result(30)

    async def misuse() -> None:
        with pytest.raises(RuntimeError, match="loop"):
            await ch.queue_declare("x")

    run(misuse)

    async def close_there() -> None:
        await ch.connection.close()

    asyncio.run_coroutine_threadsafe(asyncio.wait_for(close_there(), 20), thread_loop).result(30)


# ---------------------------------------------------------------------------- back-pressure


def test_publishers_wait_while_the_transport_is_paused(run: Any, params: Any, broker: Any,
                                                      unique: Any) -> None:
    queue = unique("backpressure")
    body = b"x" * (1 << 20)
    count = 48

    async def scenario() -> None:
        with FaultProxy(broker.host, broker.port) as proxy:
            async with connect(params(port=proxy.port)) as conn:
                ch = await conn.channel()
                await ch.queue_declare(queue, exclusive=True)
                await ch.confirm_delivery()
                assert proxy.accepted == 1
                # the "broker" stops reading: buffers fill
                proxy.stall("upstream", discard=False)
                futures = []
                paused_at = None
                for index in range(count):
                    futures.append(ch.basic_publish("", queue, b"%03d" % index + body))
                    await asyncio.sleep(0)  # let this turn's write happen
                    if paused_at is None and conn.callback_connection.writing_paused:
                        paused_at = index
                assert paused_at is not None, "the transport never paused"
                assert not futures[-1].done()  # waiting in the backlog (not even sent)
                proxy.pass_through("upstream")
                assert await asyncio.wait_for(asyncio.gather(*futures), 60) == [None] * count
                assert not conn.callback_connection.writing_paused
                for index in range(count):  # all there, in call order
                    message = await ch.basic_get(queue, auto_ack=True)
                    assert message is not None and message.body[:3] == b"%03d" % index

    run(scenario, timeout=120)


def test_leaving_nested_blocks_while_the_connection_closes(run: Any, params: Any,
                                                          unique: Any) -> None:
    queue = unique("nested")

    async def scenario() -> None:
        async with connect(params()) as conn:
            async with await conn.channel() as ch:
                await ch.queue_declare(queue, exclusive=True)
                async with ch.consume(queue):
                    closing = asyncio.ensure_future(conn.close())
                    await asyncio.sleep(0)  # the connection is closing now
                # leaving the consumer and the channel only waits: no wrong-state error
            await asyncio.wait_for(closing, 10)
            assert ch.is_closed and conn.is_closed

    run(scenario)
