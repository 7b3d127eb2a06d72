"""RPC over RabbitMQ's direct reply-to (``amq.rabbitmq.reply-to``), server and client in one.

The server consumes a request queue and publishes each answer to the request's ``reply_to``
with its ``correlation_id``.  The client needs no reply queue of its own: it consumes the
pseudo-queue ``amq.rabbitmq.reply-to`` (with ``auto_ack=True``, as RabbitMQ requires) BEFORE
publishing requests whose ``reply_to`` is ``amq.rabbitmq.reply-to``; the broker routes the
answers straight back to that consumer.

Here the server runs in a thread with its own BlockingConnection (a connection belongs to one
thread); the main thread stops it through ``add_callback_threadsafe``.

Usage: python examples/direct_reply_to_rpc.py [AMQP_URL] (default: $AMQP_URL)
"""

import os
import sys
import threading
import uuid
from typing import Any

import amqp_core as pika

REPLY_TO = "amq.rabbitmq.reply-to"


def fibonacci(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


class Server(threading.Thread):
    """Answers ``fib(n)`` requests on ``queue`` until :meth:`stop`."""

    def __init__(self, url: str, queue: str) -> None:
        super().__init__(name="rpc-server")
        self.url, self.queue = url, queue
        self.ready = threading.Event()
        self.connection: Any = None
        self.channel: Any = None

    def run(self) -> None:
        with pika.BlockingConnection(pika.URLParameters(self.url)) as connection:
            self.connection, self.channel = connection, connection.channel()
            self.channel.queue_declare(self.queue, exclusive=True)
            self.channel.basic_qos(prefetch_count=10)
            self.channel.basic_consume(self.queue, self.on_request)
            self.ready.set()
            self.channel.start_consuming()  # until stop() makes it return

    def on_request(self, channel, method, properties, body) -> None:  # type: ignore[no-untyped-def]
        answer = fibonacci(int(body))
        channel.basic_publish("", properties.reply_to, str(answer).encode(),
                              pika.BasicProperties(correlation_id=properties.correlation_id))
        channel.basic_ack(method.delivery_tag)

    def stop(self) -> None:
        # called from the main thread: add_callback_threadsafe is the one thread-safe method,
        # stop_consuming then runs in the server's thread
        self.connection.add_callback_threadsafe(self.channel.stop_consuming)


def main(url: str) -> None:
    queue = f"rpc-{uuid.uuid4().hex[:8]}"
    server = Server(url, queue)
    server.start()
    if not server.ready.wait(30):
        raise SystemExit("the server did not start")

    requests: dict[str, int] = {}  # correlation_id -> n
    answers: dict[str, int] = {}  # correlation_id -> fib(n)

    def on_reply(channel, method, properties, body) -> None:  # type: ignore[no-untyped-def]
        answers[properties.correlation_id] = int(body)

    try:
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            channel = connection.channel()
            # consume the pseudo-queue first (auto_ack is required), then publish requests
            channel.basic_consume(REPLY_TO, on_reply, auto_ack=True)
            for n in (10, 20, 30):
                correlation_id = uuid.uuid4().hex
                requests[correlation_id] = n
                channel.basic_publish("", queue, str(n).encode(), pika.BasicProperties(
                    reply_to=REPLY_TO, correlation_id=correlation_id))
            # wait for the answers (bounded), matching them by correlation_id
            for _ in range(100):
                if len(answers) == len(requests):
                    break
                connection.process_data_events(time_limit=0.1)
            for correlation_id, n in requests.items():
                print(f"fib({n}) = {answers.get(correlation_id, 'no answer')}")
    finally:
        server.stop()
        server.join(30)
    print(f"{len(answers)} of {len(requests)} answers")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ["AMQP_URL"])
