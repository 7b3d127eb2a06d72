"""Blocking publish and consume: the pika tutorial, with amqp_core.

Usage: python examples/blocking_publish_consume.py [AMQP_URL] (default: $AMQP_URL)
"""

import os
import sys
import uuid

import amqp_core as pika


def main(url: str, count: int = 10) -> None:
    queue = f"example-{uuid.uuid4().hex[:8]}"
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, auto_delete=True)
        channel.confirm_delivery()
        for number in range(count):
            channel.basic_publish("", queue, f"message {number}".encode())
        received = 0
        for method, _properties, body in channel.consume(queue, inactivity_timeout=5):
            if method is None:
                break
            print(body.decode())
            channel.basic_ack(method.delivery_tag)
            received += 1
            if received == count:
                break
        channel.cancel()
    print(f"received {received} of {count}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ["AMQP_URL"])
