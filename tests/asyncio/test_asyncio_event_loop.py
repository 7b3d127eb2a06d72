"""``AsyncioEventLoop`` against amqp_core's loop contract, on asyncio and uvloop, with local
servers only (127.0.0.1); no broker needed."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from typing import Any

import pytest

from amqp_adapter_asyncio import AsyncioEventLoop
from amqp_core.io.contract import EventLoop, RunnableLoop

WAIT = 5.0


class RecordingProtocol:
    """A contract StreamProtocol that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.transport: Any = None
        self.got_data = asyncio.get_running_loop().create_future()
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.calls.append(("made", None))

    def data_received(self, data: bytes) -> None:
        self.calls.append(("data", data))
        if not self.got_data.done():
            self.got_data.set_result(data)

    def eof_received(self) -> bool | None:
        self.calls.append(("eof", None))
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.calls.append(("lost", exc))
        if not self.lost.done():
            self.lost.set_result(exc)

    def pause_writing(self) -> None:
        self.calls.append(("pause", None))

    def resume_writing(self) -> None:
        self.calls.append(("resume", None))


class Echo(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def connect(contract: AsyncioEventLoop, port: int, protocol: RecordingProtocol,
                  ssl_context: ssl.SSLContext | None = None,
                  server_hostname: str | None = None) -> Any:
    done = asyncio.get_running_loop().create_future()
    contract.connect_stream(("127.0.0.1", port), socket.AF_INET, protocol, ssl_context,
                            server_hostname, done.set_result)
    return await asyncio.wait_for(done, WAIT)


def test_is_the_contract() -> None:
    loop = asyncio.new_event_loop()
    try:
        contract = AsyncioEventLoop(loop)
        assert isinstance(contract, EventLoop)
        for name in RunnableLoop.__dict__:  # test-only protocol, not runtime-checkable
            if not name.startswith("_"):
                assert callable(getattr(contract, name)), name
    finally:
        loop.close()
    with pytest.raises(TypeError, match="loop"):
        AsyncioEventLoop(object())  # type: ignore[arg-type]


def test_scheduling(run: Any) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        contract = AsyncioEventLoop(loop)
        assert abs(contract.time() - loop.time()) < 1.0
        order: list[str] = []
        done = loop.create_future()
        contract.call_later(0.05, lambda: (order.append("later"), done.set_result(None)))
        contract.call_later(-1, lambda: order.append("negative delay"))
        contract.call_soon(lambda: order.append("soon"))
        cancelled = contract.call_soon(lambda: order.append("cancelled"))
        cancelled.cancel()
        cancelled.cancel()  # twice is fine
        threading.Thread(
            target=contract.call_soon_threadsafe, args=(lambda: order.append("threadsafe"),)
        ).start()
        await asyncio.wait_for(done, WAIT)
        assert order[-1] == "later"
        assert set(order) == {"soon", "negative delay", "threadsafe", "later"}

    run(scenario)


def test_getaddrinfo(run: Any) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        contract = AsyncioEventLoop(loop)
        resolved = loop.create_future()
        contract.getaddrinfo("127.0.0.1", 5671, 0, socket.SOCK_STREAM, 0, 0, resolved.set_result)
        records = await asyncio.wait_for(resolved, WAIT)
        assert records[0][4][:2] == ("127.0.0.1", 5671)

        failed = loop.create_future()
        contract.getaddrinfo("127.0.0.1", "no-such-service-name", 0, socket.SOCK_STREAM, 0, 0,  # type: ignore[arg-type]
                             failed.set_result)
        assert isinstance(await asyncio.wait_for(failed, WAIT), OSError)

        called: list[Any] = []
        handle = contract.getaddrinfo("127.0.0.1", 1, 0, socket.SOCK_STREAM, 0, 0, called.append)
        handle.cancel()
        await asyncio.sleep(0.1)
        assert called == []

    run(scenario)


def test_stream_round_trip_and_close(run: Any) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        contract = AsyncioEventLoop(loop)
        protocol = RecordingProtocol()
        transport = await connect(contract, port, protocol)
        assert protocol.calls == [("made", None)] and protocol.transport is transport
        assert contract.open_streams == 1
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        transport.write(b"ping")
        assert await asyncio.wait_for(protocol.got_data, WAIT) == b"ping"
        transport.close()
        assert await asyncio.wait_for(protocol.lost, WAIT) is None
        await contract.wait_streams_closed()
        assert contract.open_streams == 0
        assert [name for name, _ in protocol.calls] == ["made", "data", "lost"]
        server.close()
        await server.wait_closed()

    run(scenario)


def test_refused_connect_reports_the_error_only(run: Any) -> None:
    async def scenario() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        protocol = RecordingProtocol()
        result = await connect(AsyncioEventLoop(asyncio.get_running_loop()), port, protocol)
        assert isinstance(result, ConnectionRefusedError)
        assert protocol.calls == []

    run(scenario)


def test_cancelled_connect_calls_nothing(run: Any) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        contract = AsyncioEventLoop(loop)
        protocol = RecordingProtocol()
        called: list[Any] = []
        handle = contract.connect_stream(("127.0.0.1", port), socket.AF_INET, protocol, None,
                                         None, called.append)
        handle.cancel()
        await asyncio.sleep(0.2)
        assert called == [] and protocol.calls == []
        assert contract.open_streams == 0
        server.close()
        await server.wait_closed()

    run(scenario)


def test_tls_stream(run: Any) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        contract = AsyncioEventLoop(loop)

        protocol = RecordingProtocol()
        transport = await connect(contract, port, protocol, client_context, "localhost")
        assert transport.get_extra_info("ssl_object") is not None
        transport.write(b"secret")
        assert await asyncio.wait_for(protocol.got_data, WAIT) == b"secret"
        transport.close()
        await contract.wait_streams_closed()

        wrong_name = RecordingProtocol()
        result = await connect(contract, port, wrong_name, client_context, "not-localhost")
        assert isinstance(result, ssl.SSLError)  # hostname check through the loop's TLS
        assert wrong_name.calls == []
        server.close()
        await server.wait_closed()

    run(scenario)


def test_runnable_loop_in_a_thread(loop_factory: Any) -> None:
    loop = loop_factory()
    contract = AsyncioEventLoop(loop)
    ran = threading.Event()
    loop.call_soon(ran.set)
    thread = threading.Thread(target=contract.run_until_stopped)
    thread.start()
    assert ran.wait(WAIT)
    contract.stop_soon()
    thread.join(WAIT)
    assert not thread.is_alive()
    loop.close()
