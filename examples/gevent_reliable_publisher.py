"""Publish with confirms on a GeventConnection from a greenlet; track delivery tags; reconnect.

Usage::

    AMQP_URL=amqp://guest:guest@localhost:5672/%2F python examples/gevent_reliable_publisher.py
    python examples/gevent_reliable_publisher.py --url amqp://... --queue jobs --count 20000

The pattern (pika's callback API in the gevent hub, the publishing loop in a greenlet):

* the queue is durable and every message persistent (``delivery_mode=2``): what the broker
  confirmed survives a broker restart;
* once the channel is in confirm mode a publishing greenlet is spawned; it publishes while
  fewer than ``--window`` messages are unconfirmed (pacing itself to ``--rate``) and otherwise
  waits on an event that the confirm callback sets.  Callbacks run in the hub and never block;
* the broker numbers the channel's publishes 1, 2, 3 ...; ``outstanding`` maps each delivery
  tag to its message id until Basic.Ack / Basic.Nack settles it (``multiple`` settles every
  tag up to the one given);
* a nacked message, and every outstanding message when the connection closes (its fate is
  unknown), is reported ``failed`` and queued to be published again -- consumers may see it
  twice;
* the close callback schedules a new connection with ``gevent.spawn_later`` after an
  exponential back-off capped at ``--max-delay``.

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

import gevent
import gevent.event

import amqp_core as pika
from amqp_adapter_gevent import GeventConnection

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
        self.outstanding: dict[int, int] = {}  # delivery tag -> id, on this channel
        self.confirmed = self.failed = self.sent = 0
        self.next_tag = 0
        self.delay = 0.1
        self.started = time.monotonic()
        self.wakeup = gevent.event.Event()  # set by callbacks: a confirm came, or a close
        self.done = gevent.event.Event()

    def finished(self) -> bool:
        return not self.pending and not self.outstanding

    def connect(self) -> None:
        GeventConnection(pika.URLParameters(self.args.url), on_open_callback=self.on_open,
                         on_open_error_callback=self.on_closed, on_close_callback=self.on_closed)

    # ---------------------------------------------------------------- callbacks (in the hub)

    def on_open(self, connection: GeventConnection) -> None:
        self.delay = 0.1
        connection.channel(on_open_callback=self.on_channel)

    def on_channel(self, channel: Any) -> None:
        channel.queue_declare(self.args.queue, durable=True, callback=lambda _frame: (
            channel.confirm_delivery(self.on_confirm, callback=lambda _f: (
                self.on_confirm_mode(channel)))))

    def on_confirm_mode(self, channel: Any) -> None:
        say("connected")
        self.next_tag = 0
        gevent.spawn(self.publish_loop, channel)

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
        self.wakeup.set()

    def on_closed(self, _connection: Any, reason: BaseException) -> None:
        for message_id in self.outstanding.values():  # fate unknown: publish it again
            say(f"failed {message_id}")
            self.failed += 1
            self.pending.appendleft(message_id)
        self.outstanding.clear()
        self.wakeup.set()  # the publishing greenlet sees the closed channel and ends
        if self.finished():
            self.done.set()
            return
        say(f"connection lost ({reason!r}); reconnecting in {self.delay:.1f} s")
        gevent.spawn_later(self.delay, self.connect)
        self.delay = min(self.delay * 2, self.args.max_delay)

    # ---------------------------------------------------------------- the publishing greenlet

    def publish_loop(self, channel: Any) -> None:
        while channel.is_open and channel.connection.is_open:
            if self.finished():
                channel.connection.close()  # on_closed sets `done`
                return
            if not self.pending or len(self.outstanding) >= self.args.window:
                self.wakeup.wait()
                self.wakeup.clear()
                continue
            if self.args.rate:  # pace the publishing: sleep while ahead of the rate
                ahead = self.sent / self.args.rate - (time.monotonic() - self.started)
                if ahead > 0:
                    gevent.sleep(ahead)
                    continue  # the channel may have closed meanwhile: check again
            message_id = self.pending[0]  # taken off only once published (it may raise)
            properties = pika.BasicProperties(message_id=str(message_id), delivery_mode=2)
            channel.basic_publish("", self.args.queue, str(message_id).encode(), properties)
            self.pending.popleft()
            self.next_tag += 1
            self.outstanding[self.next_tag] = message_id
            self.sent += 1
            if self.sent % 100 == 0:
                gevent.sleep(0)  # let the hub read confirms


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    publisher = Publisher(args)
    publisher.connect()
    if not publisher.done.wait(timeout=args.timeout):
        say(f"timeout after {args.timeout} s")
    say(f"done confirmed={publisher.confirmed} failed={publisher.failed}")
    return 0 if publisher.finished() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
