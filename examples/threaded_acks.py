"""Long work in worker threads, acknowledged through ``add_callback_threadsafe``.

A BlockingConnection and its channels belong to the thread that runs them: a worker thread
must not call ``channel.basic_ack`` itself.  Instead it hands the ack back with
``connection.add_callback_threadsafe(callback)``, the one method that may be called from
another thread; the callback runs in the consuming thread, inside ``start_consuming()``,
which it wakes at once.  Meanwhile the consuming thread keeps servicing the connection
(heartbeats included), however long the work takes.

Usage: python examples/threaded_acks.py [AMQP_URL] [--messages N] [--workers N]
"""

import argparse
import functools
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import amqp_core as pika


def do_work(body: bytes) -> None:
    time.sleep(0.05)  # stands for minutes of real work


def main(url: str, messages: int = 20, workers: int = 4) -> None:
    queue = f"example-{uuid.uuid4().hex[:8]}"
    acked = 0
    threads_used = set()

    with pika.BlockingConnection(pika.URLParameters(url)) as connection, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        channel = connection.channel()
        channel.queue_declare(queue, exclusive=True)
        channel.confirm_delivery()
        for number in range(messages):
            channel.basic_publish("", queue, f"job {number}".encode())

        def ack(delivery_tag: int) -> None:
            # runs in the consuming thread, called by the connection
            nonlocal acked
            channel.basic_ack(delivery_tag)
            acked += 1
            if acked == messages:
                channel.stop_consuming()

        def work(delivery_tag: int, body: bytes) -> None:
            # runs in a worker thread: work, then hand the ack back to the connection's thread
            do_work(body)
            threads_used.add(threading.get_ident())
            connection.add_callback_threadsafe(functools.partial(ack, delivery_tag))

        def on_message(channel, method, properties, body) -> None:  # type: ignore[no-untyped-def]
            pool.submit(work, method.delivery_tag, body)

        channel.basic_qos(prefetch_count=workers * 2)  # bounds the work in progress
        channel.basic_consume(queue, on_message)
        timer = connection.call_later(60, channel.stop_consuming)  # never hang
        channel.start_consuming()
        connection.remove_timeout(timer)
        left = channel.queue_declare(queue, passive=True).method.message_count
    print(f"{left} messages left in the queue")
    print(f"acked {acked} of {messages} from {len(threads_used)} worker threads")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default=os.environ.get("AMQP_URL"))
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    if not args.url:
        parser.error("give the broker URL or set AMQP_URL")
    main(args.url, args.messages, args.workers)
