"""Consume with tornado, process messages in a thread pool, ack through the thread-safe callback.

Usage::

    AMQP_URL=amqp://guest:guest@localhost:5672/%2F python examples/tornado_threaded_consumer.py
    python examples/tornado_threaded_consumer.py amqp://... --queue jobs --workers 8
    python examples/tornado_threaded_consumer.py amqp://... --publish 1000 --max-messages 1000

How it works: the tornado IOLoop's thread owns the connection and the channel.  Each delivery
is handed to a ``ThreadPoolExecutor``; a worker does the slow part (here it hashes the body and
sleeps ``--work-ms``, standing for a database call or an HTTP request), then asks the IOLoop to
acknowledge the message::

    connection.add_callback_threadsafe(functools.partial(on_processed, delivery_tag))

``add_callback_threadsafe`` is the one connection method other threads may call (it is tornado's
``IOLoop.add_callback``); the channel itself is only touched on the IOLoop's thread.
``basic_qos(prefetch_count=...)`` bounds how many messages wait in the pool at once.

``--publish N`` first puts N messages on the queue (a demo without a producer);
``--max-messages`` and ``--timeout`` bound the run (the tests use them).  Ctrl-C stops it.
The exit code is 0 when it stopped as asked, 1 on a timeout or a connection failure.
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tornado.ioloop import IOLoop

import amqp_core as pika
from amqp_adapter_tornado import TornadoConnection
from amqp_core.channel import Channel

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default=os.environ.get("AMQP_URL", DEFAULT_URL),
                        help="broker URL (default: $AMQP_URL, else %(default)s)")
    parser.add_argument("--queue", default="tornado-threaded-example", help="queue to consume")
    parser.add_argument("--workers", type=int, default=8, help="worker threads")
    parser.add_argument("--prefetch", type=int, default=64,
                        help="unacknowledged messages in flight at most")
    parser.add_argument("--work-ms", type=float, default=1.0,
                        help="milliseconds of pretend work per message")
    parser.add_argument("--publish", type=int, default=0,
                        help="publish this many messages to the queue first")
    parser.add_argument("--max-messages", type=int, default=0,
                        help="stop after this many messages (0: no limit)")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="stop after this many seconds (0: no limit)")
    return parser.parse_args(argv)


class ThreadedConsumer:
    """Receives on the IOLoop's thread, works in a thread pool, acks on the IOLoop's thread."""

    def __init__(self, args: argparse.Namespace, ioloop: IOLoop) -> None:
        self.args = args
        self.ioloop = ioloop
        self.pool = ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="worker")
        self.channel: Channel | None = None
        self.acked = 0
        self.acks_by_worker: collections.Counter[str] = collections.Counter()
        self.started = 0.0
        self.stopping = False
        self.failed = False
        self.connection = TornadoConnection(
            pika.URLParameters(args.url),
            on_open_callback=self.on_open,
            on_open_error_callback=self.on_open_error,
            on_close_callback=self.on_closed,
            custom_ioloop=ioloop,
        )

    # ---------------------------------------------------------------- IOLoop thread

    def on_open(self, connection: TornadoConnection) -> None:
        connection.channel(on_open_callback=self.on_channel)

    def on_open_error(self, _connection: TornadoConnection, error: BaseException) -> None:
        if not self.stopping:
            print(f"could not connect: {error!r}", flush=True)
            self.failed = True
        self.ioloop.stop()

    def on_closed(self, _connection: TornadoConnection, reason: BaseException) -> None:
        if not self.stopping:
            print(f"connection closed: {reason!r}", flush=True)
            self.failed = True
        self.ioloop.stop()

    def on_channel(self, channel: Channel) -> None:
        self.channel = channel
        channel.add_on_close_callback(self.on_channel_closed)
        channel.queue_declare(self.args.queue, callback=self.on_declared)

    def on_channel_closed(self, _channel: Channel, reason: BaseException) -> None:
        if not self.stopping:
            print(f"channel closed: {reason!r}", flush=True)
            self.failed = True
            self.stop()

    def on_declared(self, _frame: Any) -> None:
        assert self.channel is not None
        for index in range(self.args.publish):
            self.channel.basic_publish("", self.args.queue, f"job {index}".encode())
        if self.args.publish:
            print(f"published {self.args.publish}", flush=True)
        self.channel.basic_qos(prefetch_count=self.args.prefetch, callback=self.on_qos)

    def on_qos(self, _frame: Any) -> None:
        assert self.channel is not None
        self.started = time.monotonic()
        self.channel.basic_consume(self.args.queue, self.on_message)
        print(f"consuming {self.args.queue} with {self.args.workers} worker threads, "
              f"prefetch {self.args.prefetch}", flush=True)

    def on_message(self, _channel: Channel, method: Any, _properties: Any, body: bytes) -> None:
        self.pool.submit(self.work, method.delivery_tag, body)

    def on_processed(self, delivery_tag: int, worker: str) -> None:
        """Back on the IOLoop's thread: acknowledge (the channel is only used here)."""
        channel = self.channel
        if channel is None or not channel.is_open:
            return  # the channel closed meanwhile: the broker redelivers this message
        channel.basic_ack(delivery_tag)
        self.acked += 1
        self.acks_by_worker[worker] += 1
        if self.args.max_messages and self.acked >= self.args.max_messages:
            self.stop()

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self.connection.is_closed:
            self.ioloop.stop()
        elif not self.connection.is_closing:
            self.connection.close()  # its close callback stops the IOLoop

    def on_timeout(self) -> None:
        print(f"timeout after {self.args.timeout} s", flush=True)
        self.failed = True
        self.stop()

    # ---------------------------------------------------------------- worker threads

    def work(self, delivery_tag: int, body: bytes) -> None:
        """Runs in a worker thread: the slow part, then the ack is handed to the IOLoop."""
        hashlib.sha256(body).hexdigest()
        time.sleep(self.args.work_ms / 1000)
        worker = threading.current_thread().name
        self.connection.add_callback_threadsafe(
            functools.partial(self.on_processed, delivery_tag, worker))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ioloop = IOLoop(make_current=False)
    consumer = ThreadedConsumer(args, ioloop)
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            ioloop.asyncio_loop.add_signal_handler(signum, consumer.stop)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            pass
    if args.timeout:
        ioloop.call_later(args.timeout, consumer.on_timeout)
    try:
        ioloop.start()
    finally:
        # wait for the work in progress (its acks go nowhere: the channel is closed)
        consumer.pool.shutdown(wait=True, cancel_futures=True)
        ioloop.close()
    elapsed = time.monotonic() - consumer.started if consumer.started else 0.0
    by_worker = ", ".join(f"{name}: {count}"
                          for name, count in sorted(consumer.acks_by_worker.items()))
    print(f"processed {consumer.acked} messages in {elapsed:.2f} s by "
          f"{len(consumer.acks_by_worker)} worker threads ({by_worker})", flush=True)
    return 1 if consumer.failed else 0


if __name__ == "__main__":
    sys.exit(main())
