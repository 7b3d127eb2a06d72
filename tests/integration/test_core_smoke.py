"""The sans-I/O core driven by hand over a plain blocking socket against the real broker.

This is the smallest possible "driver": it shows that the core alone (no
adapter, no event loop) speaks to RabbitMQ: handshake, declare, publish, get,
close.
"""

from __future__ import annotations

import socket
import time
import uuid

from amqp_core import spec
from amqp_core.credentials import PlainCredentials
from amqp_core.protocol import NEED_DATA, Connection
from amqp_core.protocol import events as ev


def _pump(sock: socket.socket, core: Connection, wanted: type, deadline: float) -> ev.Event:
    """Send what the core queued, read until an event of type ``wanted`` arrives."""
    while True:
        event = core.next_event()
        # parsing may have queued replies (Start-Ok, Tune-Ok ...): send before reading
        data = core.data_to_send()
        if data:
            sock.sendall(data)
        if event is NEED_DATA:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out waiting for {wanted.__name__}"
            sock.settimeout(remaining)
            core.receive_data(sock.recv(65536))
            continue
        if isinstance(event, wanted):
            return event
        assert not isinstance(event, ev.ConnectionFailed), event


def test_core_round_trip_over_plain_socket(broker) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 20
    core = Connection(
        credentials=PlainCredentials("guest", "guest"),
        client_properties={"product": "core-smoke"},
        heartbeat=0,
    )
    queue = f"core-smoke-{uuid.uuid4().hex}"
    with socket.create_connection((broker.host, broker.port), timeout=10) as sock:
        core.initiate()
        opened = _pump(sock, core, ev.ConnectionOpened, deadline)
        assert isinstance(opened, ev.ConnectionOpened)
        assert (
            opened.server_properties["product"] == b"RabbitMQ"
            or opened.server_properties["product"] == "RabbitMQ"
        )
        assert core.frame_max == 131072

        channel = core.open_channel()
        _pump(sock, core, ev.ChannelOpened, deadline)

        core.send_method(channel, spec.Queue.Declare(queue=queue, auto_delete=True))
        declared = _pump(sock, core, ev.RpcReply, deadline)
        assert isinstance(declared, ev.RpcReply)
        assert declared.method.queue == queue

        properties = spec.BasicProperties(content_type="text/plain", headers={"x-delay": -1})
        core.basic_publish(channel, "", queue, b"hello core", properties)
        core.send_method(channel, spec.Basic.Get(queue=queue, no_ack=True))
        got = _pump(sock, core, ev.RpcReply, deadline)
        assert isinstance(got, ev.RpcReply)
        assert isinstance(got.method, spec.Basic.GetOk)
        assert got.body == b"hello core"
        assert got.properties is not None
        assert got.properties.content_type == "text/plain"
        assert got.properties.headers == {"x-delay": -1}

        core.close()
        closed = _pump(sock, core, ev.ConnectionClosed, deadline)
        assert isinstance(closed, ev.ConnectionClosed)
        assert closed.by_peer is False
        assert core.is_closed
