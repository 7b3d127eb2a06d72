"""Network faults through the async/await API: every pending awaitable ends with the fault.

The callback-level fault matrix is the kit's (``amqp_core.testing.fault_scenarios``, run for
asyncio in tests/kit); this checks what only the async layer adds: futures that were waiting
for the broker when the stream stalled or broke are completed with the connection's error,
never left pending.  Traffic goes through :class:`amqp_core.testing.fault_proxy.FaultProxy`
on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from amqp_adapter_asyncio import connect
from amqp_core import exceptions
from amqp_core.testing.fault_proxy import FaultProxy

#: Bound on reporting a lost stream, in seconds.
LOST_BOUND = 5.0


async def _open_with_pending(conn: Any, queue: str) -> dict[str, Any]:
    """A channel with a queue and confirms, then requests the broker will never answer."""
    ch = await conn.channel()
    await ch.queue_declare(queue, exclusive=True)
    confirmed = await conn.channel()
    await confirmed.confirm_delivery()
    return {"channel": ch, "confirmed": confirmed}


def _start_pending(state: dict[str, Any], conn: Any, queue: str) -> dict[str, Any]:
    ch, confirmed = state["channel"], state["confirmed"]
    return {
        "queue_declare": asyncio.ensure_future(ch.queue_declare(queue, passive=True)),
        "basic_get": asyncio.ensure_future(ch.basic_get(queue)),
        "confirmed publish": asyncio.ensure_future(confirmed.basic_publish("", queue, b"x")),
        "channel()": asyncio.ensure_future(conn.channel()),
    }


@pytest.mark.parametrize("heartbeat", [1, 2])
def test_stalled_peer_fails_every_pending_awaitable_with_the_heartbeat_timeout(
    run: Any, params: Any, broker: Any, unique: Any, heartbeat: int
) -> None:
    queue = unique("stall")

    async def scenario() -> None:
        with FaultProxy(broker.host, broker.port) as proxy:
            conn = await connect(params(port=proxy.port, heartbeat=heartbeat))
            state = await _open_with_pending(conn, queue)
            proxy.stall()  # a black hole both ways: the sockets stay open, nothing flows
            pending = _start_pending(state, conn, queue)
            started = time.monotonic()
            reason = await asyncio.wait_for(conn.wait_closed(), 2 * heartbeat + 3)
            elapsed = time.monotonic() - started
            assert isinstance(reason, exceptions.AMQPHeartbeatTimeout), reason
            assert elapsed <= 2 * heartbeat + 3, elapsed
            outcomes = await asyncio.wait_for(
                asyncio.gather(*pending.values(), return_exceptions=True), 1.0)
            for what, outcome in zip(pending, outcomes, strict=True):
                assert isinstance(outcome, exceptions.AMQPHeartbeatTimeout), (what, outcome)
            assert isinstance(await state["channel"].wait_closed(),
                              exceptions.AMQPHeartbeatTimeout)

    run(scenario, timeout=30)


@pytest.mark.parametrize("how", ["reset", "close"])
def test_broken_stream_fails_every_pending_awaitable_with_stream_lost(
    run: Any, params: Any, broker: Any, unique: Any, how: str
) -> None:
    queue = unique("lost")

    async def scenario() -> None:
        with FaultProxy(broker.host, broker.port) as proxy:
            conn = await connect(params(port=proxy.port))
            state = await _open_with_pending(conn, queue)
            proxy.stall(discard=True)  # the requests below stay unanswered ...
            pending = _start_pending(state, conn, queue)
            await asyncio.sleep(0.1)
            assert not any(future.done() for future in pending.values())
            started = time.monotonic()
            # ... until the stream breaks under them
            await asyncio.to_thread(proxy.reset_all if how == "reset" else proxy.close_all)
            reason = await asyncio.wait_for(conn.wait_closed(), LOST_BOUND)
            assert time.monotonic() - started <= LOST_BOUND
            assert isinstance(reason, exceptions.StreamLostError), reason
            assert (reason.host, reason.port) == ("127.0.0.1", proxy.port)
            outcomes = await asyncio.wait_for(
                asyncio.gather(*pending.values(), return_exceptions=True), 1.0)
            for what, outcome in zip(pending, outcomes, strict=True):
                assert isinstance(outcome, exceptions.StreamLostError), (what, outcome)

    run(scenario, timeout=30)
