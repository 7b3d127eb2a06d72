"""The ``consume()`` generator of BlockingConnection, with ``inactivity_timeout`` and ``cancel()``.

``channel.consume(queue, inactivity_timeout=...)`` yields ``(method, properties, body)`` for
each message and ``(None, None, None)`` after that many idle seconds, so a loop can stop when
the queue runs dry.  ``channel.cancel()`` ends the generator's consumer and requeues the
messages it had received but not yet yielded; it returns how many.

Usage: python examples/blocking_consumer_generator.py [AMQP_URL] (default: $AMQP_URL)
"""

import os
import sys
import uuid

import amqp_core as pika


def main(url: str, count: int = 10) -> None:
    queue = f"example-{uuid.uuid4().hex[:8]}"
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        # exclusive, not auto_delete: an auto_delete queue would go with the first cancel()
        channel.queue_declare(queue, exclusive=True)
        channel.confirm_delivery()  # each publish returns once the broker has the message
        for number in range(count):
            channel.basic_publish("", queue, f"job {number}".encode())

        # First pass: take only 4 messages, then cancel.  With prefetch 10 the broker has
        # already sent the rest; cancel() hands them back to the queue.
        channel.basic_qos(prefetch_count=count)
        taken = 0
        for method, _properties, body in channel.consume(queue, inactivity_timeout=5):
            if method is None:  # 5 s without a message
                break
            print("first pass:", body.decode())
            channel.basic_ack(method.delivery_tag)
            taken += 1
            if taken == 4:
                break
        requeued = channel.cancel()
        print(f"cancel() requeued {requeued} messages")

        # Second pass: consume until the queue has been idle for 2 seconds.
        drained = 0
        for method, _properties, body in channel.consume(queue, inactivity_timeout=2):
            if method is None:
                print("idle for 2 s: stopping")
                break
            print("second pass:", body.decode())
            channel.basic_ack(method.delivery_tag)
            drained += 1
        channel.cancel()
    print(f"consumed {taken} + {drained} of {count}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ["AMQP_URL"])
