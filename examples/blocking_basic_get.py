"""Polling a queue with ``basic_get`` (BlockingConnection).

``channel.basic_get(queue)`` fetches one message without a consumer: it returns
``(method, properties, body)`` -- ``method`` is a ``spec.Basic.GetOk`` whose ``message_count``
says how many messages are left -- or ``(None, None, None)`` when the queue is empty.
Acknowledge with ``basic_ack`` (or pass ``auto_ack=True``).

Usage: python examples/blocking_basic_get.py [AMQP_URL] (default: $AMQP_URL)
"""

import os
import sys
import uuid

import amqp_core as pika


def main(url: str, count: int = 5) -> None:
    queue = f"example-{uuid.uuid4().hex[:8]}"
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, exclusive=True)
        channel.confirm_delivery()  # so every message is in the queue before the first get
        for number in range(count):
            properties = pika.BasicProperties(content_type="text/plain", message_id=str(number))
            channel.basic_publish("", queue, f"message {number}".encode(), properties)

        fetched = 0
        while True:
            method, properties, body = channel.basic_get(queue)
            if method is None:  # the queue is empty
                print("queue empty")
                break
            print(f"got {body.decode()!r} (id {properties.message_id}, "
                  f"{method.message_count} left)")
            channel.basic_ack(method.delivery_tag)
            fetched += 1
    print(f"fetched {fetched} of {count}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ["AMQP_URL"])
