"""Delivery confirmations with BlockingConnection: each publish waits for the broker's answer.

After ``channel.confirm_delivery()`` every ``basic_publish`` returns only once the broker has
confirmed the message, and raises instead when it did not take it:

* ``NackError``: the broker nacked it (here: a full queue with ``x-overflow=reject-publish``);
* ``UnroutableError``: it was published with ``mandatory=True`` and no queue was bound to
  receive it (the broker returned it before confirming it).

``UnroutableError.messages`` lists the returned messages (``method``, ``properties``,
``body``); as in pika, ``NackError.messages`` of a single publish is empty unless the message
was also returned.

Usage: python examples/blocking_confirms.py [AMQP_URL] (default: $AMQP_URL)
"""

import os
import sys
import uuid

import amqp_core as pika
from amqp_core.exceptions import NackError, UnroutableError


def main(url: str) -> None:
    queue = f"example-{uuid.uuid4().hex[:8]}"
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        # a queue holding one message at most; further publishes are refused (nacked)
        channel.queue_declare(queue, exclusive=True, arguments={
            "x-max-length": 1, "x-overflow": "reject-publish"})
        channel.confirm_delivery()

        # 1. routed and stored: the broker acks it, basic_publish returns
        channel.basic_publish("", queue, b"first", mandatory=True)
        print("first: confirmed")

        # 2. the queue is full: the broker nacks it
        try:
            channel.basic_publish("", queue, b"second")
        except NackError:
            print("second: nacked (NackError): the queue is full")

        # 3. mandatory and no queue by that name: the broker returns it, then acks it
        try:
            channel.basic_publish("", f"{queue}-nowhere", b"third", mandatory=True)
        except UnroutableError as error:
            returned = error.messages[0]
            print(f"third: returned unroutable: {returned.method.reply_code} "
                  f"{returned.method.reply_text}, body {returned.body.decode()!r}")

        # 4. the same without mandatory: the broker drops it silently and acks it
        channel.basic_publish("", f"{queue}-nowhere", b"fourth")
        print("fourth: confirmed (unroutable, but not mandatory: dropped)")

        count = channel.queue_declare(queue, passive=True).method.message_count
        print(f"queue holds {count} message")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ["AMQP_URL"])
