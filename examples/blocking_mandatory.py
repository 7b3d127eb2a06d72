"""Mandatory publishing with BlockingConnection: getting unroutable messages back.

A message published with ``mandatory=True`` that no queue receives comes back from the broker
(``Basic.Return``).  How it comes back depends on the channel's mode:

* without confirms, ``basic_publish`` returns at once; the returned message is handed to the
  callbacks registered with ``channel.add_on_return_callback``, which run whenever the
  connection processes events (``process_data_events``, ``start_consuming``, ``consume()``);
* with ``confirm_delivery()``, ``basic_publish`` itself raises ``UnroutableError``.

Usage: python examples/blocking_mandatory.py [AMQP_URL] (default: $AMQP_URL)
"""

import os
import sys
import time
import uuid

import amqp_core as pika
from amqp_core.exceptions import UnroutableError


def main(url: str) -> None:
    exchange = f"example-{uuid.uuid4().hex[:8]}"
    returned = []

    def on_return(channel, method, properties, body) -> None:  # type: ignore[no-untyped-def]
        # method is a spec.Basic.Return: reply_code, reply_text, exchange, routing_key
        print(f"returned: {body.decode()!r} {method.reply_code} {method.reply_text} "
              f"(routing key {method.routing_key!r})")
        returned.append(body)

    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.exchange_declare(exchange, "direct", auto_delete=True)
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, exchange, routing_key="known")
        channel.add_on_return_callback(on_return)

        # Without confirms: the publish returns at once, the return arrives later.
        channel.basic_publish(exchange, "known", b"routed", mandatory=True)
        channel.basic_publish(exchange, "unknown", b"lost", mandatory=True)
        deadline = time.monotonic() + 10
        while not returned and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.5)  # runs on_return
        print(f"{len(returned)} message returned through the callback")

        # With confirms: basic_publish raises UnroutableError instead.
        channel.confirm_delivery()
        channel.basic_publish(exchange, "known", b"routed again", mandatory=True)
        try:
            channel.basic_publish(exchange, "unknown", b"lost again", mandatory=True)
        except UnroutableError as error:
            message = error.messages[0]
            print(f"UnroutableError: {message.body.decode()!r} {message.method.reply_text}")

        count = channel.queue_declare(queue, passive=True).method.message_count
        print(f"queue holds {count} routed messages")
        channel.exchange_delete(exchange)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ["AMQP_URL"])
