"""TornadoConnection side by side with other asyncio code on the same loop (asyncio and uvloop).

Inside a coroutine, ``IOLoop.current()`` is the tornado face of the running asyncio loop; the
connection made without ``custom_ioloop`` runs there while asyncio tasks (a ticker, a TCP echo
server and its client) keep running, and the connection's callbacks resolve asyncio futures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from tornado.ioloop import IOLoop

import amqp_core as pika
from amqp_adapter_tornado import TornadoConnection
from amqp_core.channel import Channel

Params = Callable[..., pika.ConnectionParameters]

MESSAGES = 500


def _loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.new_event_loop  # type: ignore[no-any-return]
    return asyncio.new_event_loop


async def _echo_round_trips(count: int) -> int:
    """Plain asyncio networking on the same loop: an echo server and a client."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    for index in range(count):
        writer.write(b"ping %d\n" % index)
        assert await reader.readline() == b"ping %d\n" % index
        done += 1
        await asyncio.sleep(0.001)
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return done


async def _consume_beside_asyncio(params: pika.ConnectionParameters, queue: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    ioloop = IOLoop.current()
    opened: asyncio.Future[TornadoConnection] = loop.create_future()
    closed: asyncio.Future[BaseException] = loop.create_future()
    channel_ready: asyncio.Future[Channel] = loop.create_future()
    all_received: asyncio.Future[None] = loop.create_future()
    bodies: list[bytes] = []
    ticks = 0
    stop_ticking = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop_ticking.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    def on_message(channel: Channel, method: Any, _properties: Any, body: bytes) -> None:
        bodies.append(body)
        channel.basic_ack(method.delivery_tag)
        if len(bodies) == MESSAGES and not all_received.done():
            all_received.set_result(None)

    def on_channel(channel: Channel) -> None:
        def declared(_frame: Any) -> None:
            channel.basic_consume(queue, on_message,
                                  callback=lambda _f: channel_ready.set_result(channel))

        channel.queue_declare(queue, exclusive=True, callback=declared)

    ticking = asyncio.create_task(ticker())
    echoing = asyncio.create_task(_echo_round_trips(50))
    conn = TornadoConnection(
        params,
        on_open_callback=opened.set_result,
        on_open_error_callback=lambda _c, error: opened.set_exception(error),
        on_close_callback=lambda _c, reason: closed.set_result(reason),
    )
    same_loop = conn.ioloop is ioloop and ioloop.asyncio_loop is loop  # type: ignore[attr-defined]
    await opened
    conn.channel(on_open_callback=on_channel)
    channel = await channel_ready
    for index in range(MESSAGES):  # an asyncio task publishing, a few messages per loop turn
        channel.basic_publish("", queue, b"%d" % index)
        if index % 10 == 0:
            await asyncio.sleep(0)
    await all_received
    echoed = await echoing
    conn.close()
    reason = await closed
    await conn.wait_stream_closed()
    stop_ticking.set()
    await ticking
    return {"same_loop": same_loop, "bodies": bodies, "ticks": ticks, "echoed": echoed,
            "reason": reason, "open_streams": conn.event_loop.open_streams}  # type: ignore


@pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
def test_coexists_with_asyncio_tasks(kind: str, params: Params, unique: Any) -> None:
    factory = _loop_factory(kind)

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(_consume_beside_asyncio(params(), unique("aio")), 30)

    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(bounded())
    assert result["same_loop"]
    assert result["bodies"] == [b"%d" % i for i in range(MESSAGES)]
    assert result["echoed"] == 50
    assert result["ticks"] > 10
    assert isinstance(result["reason"], pika.exceptions.ConnectionClosedByClient)
    assert result["open_streams"] == 0


def test_run_sync_drives_a_connection(params: Params, unique: Any) -> None:
    """tornado's own ``IOLoop.run_sync`` runs a coroutine that uses the connection."""
    ioloop = IOLoop(make_current=False)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[TornadoConnection] = loop.create_future()
        got: asyncio.Future[bytes] = loop.create_future()
        conn = TornadoConnection(params(), on_open_callback=opened.set_result,
                                 on_open_error_callback=lambda _c, e: opened.set_exception(e),
                                 custom_ioloop=ioloop)
        await opened
        queue = unique("sync")

        def on_channel(channel: Channel) -> None:
            def declared(_frame: Any) -> None:
                channel.basic_consume(queue, lambda _c, _m, _p, body: got.set_result(body),
                                      auto_ack=True)
                channel.basic_publish("", queue, b"via run_sync")

            channel.queue_declare(queue, exclusive=True, callback=declared)

        conn.channel(on_open_callback=on_channel)
        body = await got
        conn.close()
        await conn.wait_stream_closed()
        return body

    try:
        assert ioloop.run_sync(main, timeout=30) == b"via run_sync"
    finally:
        ioloop.close()
