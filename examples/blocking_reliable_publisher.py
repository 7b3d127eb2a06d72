"""Publish with confirms on a BlockingConnection and lose nothing when the broker goes away.

Usage::

    AMQP_URL=amqp://guest:guest@localhost:5672/%2F python examples/blocking_reliable_publisher.py
    python examples/blocking_reliable_publisher.py amqp://... --queue jobs --count 20000

The pattern:

* the queue is durable and every message persistent (``delivery_mode=2``), so a message the
  broker has confirmed survives a broker restart;
* every message carries its id in ``properties.message_id``; the application remembers which
  ids are not confirmed yet;
* messages go out in batches inside ``channel.confirm_window()``: leaving the window waits for
  the broker's confirms, and ``NackError`` lists the nacked messages.  (``--batch 1`` waits
  for every message, one round trip each, like pika's ``basic_publish`` after
  ``confirm_delivery()``; ``confirm_window`` is amqp_core's, not pika's.)
* when the connection or channel fails (``AMQPConnectionError``: a lost stream, the broker
  closing the connection, a refused reconnection; ``ChannelClosed``), every message of the
  batch in flight has an unknown fate: it is reported ``failed`` and published again after
  reconnecting (a message can therefore reach consumers twice -- consumers must tolerate
  duplicates); reconnection waits with an exponential back-off capped at ``--max-delay``.

Each line printed is ``confirmed <id>``, ``failed <id>`` (its fate was unknown or it was nacked;
it will be published again) or a progress message, then ``done confirmed=N failed=M``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import amqp_core as pika
from amqp_core import exceptions

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL),
                        help="broker URL (default: $AMQP_URL, else %(default)s)")
    parser.add_argument("--queue", default="reliable-example", help="durable queue to publish to")
    parser.add_argument("--count", type=int, default=1000, help="messages to publish")
    parser.add_argument("--batch", type=int, default=100, help="messages per confirm window")
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second (0: no limit)")
    parser.add_argument("--max-delay", type=float, default=2.0, help="longest reconnect delay, s")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after N seconds")
    return parser.parse_args(argv)


def say(text: str) -> None:
    print(text, flush=True)


def publish_batch(channel: Any, queue: str, ids: list[int]) -> list[int]:
    """Publish ``ids`` and wait for their confirms; returns the nacked ids."""
    properties = {i: pika.BasicProperties(message_id=str(i), delivery_mode=2) for i in ids}
    try:
        with channel.confirm_window(max_outstanding=len(ids)):
            for i in ids:
                channel.basic_publish("", queue, str(i).encode(), properties[i])
    except exceptions.NackError as error:
        return [int(message.properties.message_id) for message in error.messages]
    return []


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    deadline = time.monotonic() + args.timeout
    pending = list(range(args.count))  # ids not confirmed yet, in publishing order
    confirmed = failed = sent = 0
    delay = 0.1
    started = time.monotonic()
    while pending and time.monotonic() < deadline:
        batch: list[int] = []  # the ids whose confirms we are waiting for
        try:
            connection = pika.BlockingConnection(pika.URLParameters(args.url))
            channel = connection.channel()
            channel.queue_declare(args.queue, durable=True)
            channel.confirm_delivery()
            say("connected")
            delay = 0.1
            while pending and time.monotonic() < deadline:
                if args.rate:  # pace the publishing: sleep while ahead of the rate
                    connection.sleep(max(0.0, sent / args.rate - (time.monotonic() - started)))
                batch = pending[:args.batch]
                sent += len(batch)
                nacked = publish_batch(channel, args.queue, batch)
                for i in batch:
                    if i in nacked:
                        say(f"failed {i}")
                        failed += 1
                    else:
                        say(f"confirmed {i}")
                        confirmed += 1
                pending = pending[len(batch):] + nacked  # nacked ones go again, later
                batch = []
            connection.close()
        except (exceptions.AMQPConnectionError, exceptions.ChannelClosed) as error:
            # the batch in flight may or may not have reached the queue: publish it again
            for i in batch:
                say(f"failed {i}")
            failed += len(batch)
            say(f"connection lost ({error!r}); reconnecting in {delay:.1f} s")
            time.sleep(delay)
            delay = min(delay * 2, args.max_delay)
    say(f"done confirmed={confirmed} failed={failed}")
    return 0 if not pending else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
