"""Publish with confirms on a SelectConnection, track every delivery tag, reconnect on failure.

Usage::

    AMQP_URL=amqp://guest:guest@localhost:5672/%2F python examples/select_reliable_publisher.py
    python examples/select_reliable_publisher.py --url amqp://... --queue jobs --count 20000

The pattern (pika's callback API):

* the queue is durable and every message persistent (``delivery_mode=2``): what the broker
  confirmed survives a broker restart;
* after ``confirm_delivery`` the broker numbers the channel's publishes 1, 2, 3 ...; the
  publisher keeps ``outstanding`` = {delivery tag: message id} and settles entries when
  Basic.Ack / Basic.Nack arrive (``multiple`` settles every tag up to the one given);
  at most ``--window`` messages are unconfirmed at once, ``--rate`` paces the publishing;
* a nacked message, and every outstanding message when the connection closes (its fate is
  unknown), is reported ``failed`` and queued to be published again -- consumers may see it
  twice;
* the connection's close callback schedules a new connection on the same IOLoop after an
  exponential back-off capped at ``--max-delay`` (delivery tags start again at 1 on the new
  channel).

Each line printed is ``confirmed <id>``, ``failed <id>`` or a progress message, then
``done confirmed=N failed=M``.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from typing import Any

import amqp_core as pika
from amqp_core.adapters.select_connection import IOLoop

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

    def __init__(self, args: argparse.Namespace, ioloop: IOLoop) -> None:
        self.args = args
        self.ioloop = ioloop
        self.pending = collections.deque(range(args.count))  # ids to publish
        self.outstanding: dict[int, int] = {}  # delivery tag -> id, on this channel
        self.confirmed = self.failed = self.sent = 0
        self.channel: Any = None
        self.next_tag = 0
        self.delay = 0.1
        self.started = time.monotonic()
        self.timer: Any = None

    def finished(self) -> bool:
        return not self.pending and not self.outstanding

    def connect(self) -> None:
        pika.SelectConnection(pika.URLParameters(self.args.url), on_open_callback=self.on_open,
                              on_open_error_callback=self.on_closed,
                              on_close_callback=self.on_closed, custom_ioloop=self.ioloop)

    def on_open(self, connection: pika.SelectConnection) -> None:
        self.delay = 0.1
        connection.channel(on_open_callback=self.on_channel)

    def on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.queue_declare(self.args.queue, durable=True, callback=lambda _frame: (
            channel.confirm_delivery(self.on_confirm, callback=self.on_confirm_mode)))

    def on_confirm_mode(self, _frame: Any) -> None:
        say("connected")
        self.next_tag = 0
        self.publish_more()

    def on_timer(self) -> None:
        self.timer = None
        self.publish_more()

    def publish_more(self) -> None:
        channel = self.channel
        if channel is None or not channel.is_open or not channel.connection.is_open:
            return
        budget = len(self.pending)
        if self.args.rate:
            budget = int(self.args.rate * (time.monotonic() - self.started)) - self.sent
        while self.pending and budget > 0 and len(self.outstanding) < self.args.window:
            message_id = self.pending[0]  # taken off only once published (it may raise)
            properties = pika.BasicProperties(message_id=str(message_id), delivery_mode=2)
            channel.basic_publish("", self.args.queue, str(message_id).encode(), properties)
            self.pending.popleft()
            self.next_tag += 1
            self.outstanding[self.next_tag] = message_id
            self.sent += 1
            budget -= 1
        if self.pending and self.args.rate and self.timer is None:
            self.timer = self.ioloop.call_later(0.01, self.on_timer)

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        if method.multiple:
            tags = [tag for tag in self.outstanding if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        for tag in tags:
            message_id = self.outstanding.pop(tag)
            if acked:
                say(f"confirmed {message_id}")
                self.confirmed += 1
            else:
                say(f"failed {message_id}")  # nacked: publish it again
                self.failed += 1
                self.pending.append(message_id)
        if self.finished():
            self.channel.connection.close()
        else:
            self.publish_more()

    def on_closed(self, _connection: Any, reason: BaseException) -> None:
        self.channel = None
        for message_id in self.outstanding.values():  # fate unknown: publish it again
            say(f"failed {message_id}")
            self.failed += 1
            self.pending.appendleft(message_id)
        self.outstanding.clear()
        if self.finished():
            self.ioloop.stop()
            return
        say(f"connection lost ({reason!r}); reconnecting in {self.delay:.1f} s")
        self.ioloop.call_later(self.delay, self.connect)
        self.delay = min(self.delay * 2, self.args.max_delay)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    ioloop = IOLoop()
    publisher = Publisher(args, ioloop)
    publisher.connect()
    ioloop.call_later(args.timeout, ioloop.stop)  # never hang
    ioloop.start()
    say(f"done confirmed={publisher.confirmed} failed={publisher.failed}")
    return 0 if publisher.finished() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
