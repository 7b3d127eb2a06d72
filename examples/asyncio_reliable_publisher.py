"""Publish with confirms using asyncio's async/await API, and reconnect when the broker goes away.

Usage::

    AMQP_URL=amqp://guest:guest@localhost:5672/%2F python examples/asyncio_reliable_publisher.py
    python examples/asyncio_reliable_publisher.py --url amqp://... --queue jobs --count 20000

The pattern (``amqp_adapter_asyncio.connect``):

* the queue is durable and every message persistent (``delivery_mode=2``): what the broker
  confirmed survives a broker restart;
* after ``await channel.confirm_delivery()``, ``channel.basic_publish(...)`` returns a future
  per message that completes when the broker confirms it, or fails with ``NackError`` (nacked)
  or with the close reason when the channel or connection goes first.  No task per message: a
  done-callback settles each future, and a semaphore keeps at most ``--window`` unconfirmed;
* a failed future means the message's fate is unknown (or it was nacked): it is reported
  ``failed`` and queued to be published again -- consumers may see it twice;
* connection failures (``AMQPConnectionError``, and ``ChannelWrongStateError`` from publishing
  on a channel that just closed) end the ``async with connect(...)`` block; the loop around it
  reconnects after an exponential back-off capped at ``--max-delay``.

Each line printed is ``confirmed <id>``, ``failed <id>`` or a progress message, then
``done confirmed=N failed=M``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import os
import sys
import time

import amqp_core as pika
from amqp_adapter_asyncio import AsyncChannel, connect
from amqp_core.exceptions import AMQPChannelError, AMQPConnectionError

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

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.pending = collections.deque(range(args.count))  # ids to publish
        self.confirmed = self.failed = self.sent = 0
        self.started = time.monotonic()

    def settle(self, message_id: int, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is None:
            say(f"confirmed {message_id}")
            self.confirmed += 1
        else:  # nacked, or the connection went before the confirm: publish it again
            say(f"failed {message_id}")
            self.failed += 1
            self.pending.append(message_id)

    async def publish_on(self, channel: AsyncChannel) -> None:
        """Publish until every id is confirmed; raises when the channel or connection fails."""
        window = asyncio.Semaphore(self.args.window)
        in_flight: set[asyncio.Future[None]] = set()

        def done(message_id: int, future: asyncio.Future[None]) -> None:
            window.release()
            in_flight.discard(future)
            self.settle(message_id, future)

        try:
            while self.pending or in_flight:
                if not self.pending:  # wait for the last confirms (nacked ids come back)
                    await asyncio.wait(in_flight)
                    continue
                await window.acquire()
                if self.args.rate:  # pace the publishing: sleep while ahead of the rate
                    elapsed = time.monotonic() - self.started
                    await asyncio.sleep(self.sent / self.args.rate - elapsed)
                message_id = self.pending.popleft()
                properties = pika.BasicProperties(message_id=str(message_id), delivery_mode=2)
                try:
                    future = channel.basic_publish("", self.args.queue, str(message_id),
                                                   properties)
                except BaseException:
                    self.pending.appendleft(message_id)
                    raise
                self.sent += 1
                in_flight.add(future)
                future.add_done_callback(functools.partial(done, message_id))
        finally:
            if in_flight:  # they fail with the close reason: let their callbacks report them
                await asyncio.wait(in_flight, timeout=10)


async def run(args: argparse.Namespace, publisher: Publisher) -> None:
    delay = 0.1
    while publisher.pending:
        try:
            async with connect(args.url) as connection:
                channel = await connection.channel()
                await channel.queue_declare(args.queue, durable=True)
                await channel.confirm_delivery()
                say("connected")
                delay = 0.1
                await publisher.publish_on(channel)
        except (AMQPConnectionError, AMQPChannelError) as error:
            say(f"connection lost ({error!r}); reconnecting in {delay:.1f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, args.max_delay)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    publisher = Publisher(args)
    try:
        asyncio.run(asyncio.wait_for(run(args, publisher), args.timeout))
    except TimeoutError:
        say(f"timeout after {args.timeout} s")
    say(f"done confirmed={publisher.confirmed} failed={publisher.failed}")
    return 0 if not publisher.pending else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
