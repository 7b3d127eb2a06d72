"""Many greenlets publish on one connection while one greenlet consumes: amqp_core on gevent.

Usage::

    AMQP_URL=amqp://guest:guest@localhost:5672/%2F python examples/gevent_publishers.py
    python examples/gevent_publishers.py amqp://... --publishers 100 --messages 50 --monkey

How it fits together:

* One :class:`~amqp_adapter_gevent.GeventConnection` runs in the hub; its callbacks (open,
  confirms, deliveries) run there too and never block: they set gevent events or put items on
  gevent queues.
* ``--publishers`` greenlets call ``channel.basic_publish`` directly (channel methods never
  switch greenlets, so any greenlet of the hub's thread may call them); the channel is in
  confirm mode, and each publisher waits until the broker confirmed all of its messages.
* One consumer greenlet takes the deliveries from a ``gevent.queue.Queue`` fed by the consumer
  callback, acknowledges each one (directly, from its greenlet) and counts them.
* ``--monkey`` runs everything after ``gevent.monkey.patch_all()``: nothing else changes.

The program prints one summary line and exits 0, or exits 1 when ``--timeout`` passes first.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--monkey" in sys.argv:
    from gevent import monkey

    monkey.patch_all()

import argparse
import os
import time
import uuid
from typing import Any

import gevent
import gevent.event
import gevent.queue

import amqp_core as pika
from amqp_adapter_gevent import GeventConnection

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("url", nargs="?", default=os.environ.get("AMQP_URL", DEFAULT_URL),
                        help="broker URL (default: $AMQP_URL, else %(default)s)")
    parser.add_argument("--publishers", type=int, default=50, help="publishing greenlets")
    parser.add_argument("--messages", type=int, default=100, help="messages per publisher")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up after N seconds")
    parser.add_argument("--monkey", action="store_true",
                        help="run after gevent.monkey.patch_all() (done before any import)")
    return parser.parse_args(argv)


class Example:
    """One connection, a confirming publisher channel and a consumer channel."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.total = args.publishers * args.messages
        self.queue = f"gevent-publishers-{uuid.uuid4().hex[:8]}"
        self.ready = gevent.event.Event()
        self.failed: BaseException | None = None
        self.publish_channel: Any = None
        self.published = 0  # publish sequence numbers handed out so far
        self.confirmed_up_to = 0  # every delivery tag <= this is confirmed
        self.confirmed = gevent.event.Event()  # set (and replaced) when confirms arrive
        self.deliveries: gevent.queue.Queue[Any] = gevent.queue.Queue()
        self.connection = GeventConnection(
            pika.URLParameters(args.url),
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_failure,
            on_close_callback=self._on_failure,
        )

    # ---------------------------------------------------------------- callbacks (in the hub)

    def _on_failure(self, _connection: Any, error: BaseException) -> None:
        self.failed = error
        self.ready.set()
        self.confirmed.set()  # never cleared: waiting publishers see the failure

    def _on_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._on_publish_channel)

    def _on_publish_channel(self, channel: Any) -> None:
        self.publish_channel = channel
        channel.queue_declare(self.queue, exclusive=True, callback=lambda _f: (
            channel.confirm_delivery(self._on_confirm, callback=lambda _f: self.ready.set())))

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if not isinstance(method, pika.spec.Basic.Ack):
            self.failed = RuntimeError(f"the broker refused a message: {method}")
        self.confirmed_up_to = max(self.confirmed_up_to, method.delivery_tag)
        # wake every publisher waiting now; later waits block on a fresh event
        woken, self.confirmed = self.confirmed, gevent.event.Event()
        woken.set()

    def _on_message(self, _channel: Any, method: Any, _properties: Any, body: bytes) -> None:
        self.deliveries.put((method.delivery_tag, body))

    # ---------------------------------------------------------------- greenlets

    def publisher(self, index: int) -> int:
        """Publish this greenlet's messages, then wait for their confirmations."""
        channel = self.publish_channel
        last = 0
        for i in range(self.args.messages):
            channel.basic_publish("", self.queue, f"{index}:{i}".encode())
            self.published += 1
            last = self.published  # confirm-mode sequence number of this message
            if i % 10 == 9:
                gevent.sleep(0)  # let the other publishers (and the hub) run
        while self.confirmed_up_to < last and self.failed is None:
            self.confirmed.wait()
        return self.args.messages

    def consumer(self, channel: Any) -> int:
        """Acknowledge and count deliveries until every message arrived."""
        seen: set[bytes] = set()
        while len(seen) < self.total:
            tag, body = self.deliveries.get()
            channel.basic_ack(tag)
            seen.add(body)
        return len(seen)

    def run(self) -> int:
        with gevent.Timeout(self.args.timeout, TimeoutError("the example took too long")):
            self.ready.wait()
            if self.failed is not None:
                raise self.failed
            consume_channel = gevent.event.AsyncResult()
            self.connection.channel(on_open_callback=consume_channel.set)
            channel = consume_channel.get()
            channel.basic_qos(prefetch_count=500)
            channel.basic_consume(self.queue, self._on_message)
            consumer = gevent.spawn(self.consumer, channel)
            started = time.perf_counter()
            publishers = [gevent.spawn(self.publisher, n) for n in range(self.args.publishers)]
            gevent.joinall(publishers, raise_error=True)
            published = sum(p.value for p in publishers)
            if self.failed is not None:
                raise self.failed
            consumed = consumer.get()
            elapsed = time.perf_counter() - started
        closed = gevent.event.Event()
        self.connection.add_on_close_callback(lambda _c, _e: closed.set())
        self.connection.close()
        closed.wait(10)
        print(f"{self.args.publishers} publishers published {published} messages, all confirmed; "
              f"consumed and acked {consumed} in {elapsed:.2f} s")
        return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return Example(args).run()
    except (TimeoutError, pika.exceptions.AMQPError) as error:
        print(f"failed: {error!r}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
