"""An asynchronous consumer and publisher on SelectConnection (pika's callback API).

Usage: python examples/select_consumer.py [AMQP_URL] (default: $AMQP_URL)
"""

import os
import sys
import uuid

import amqp_core as pika


def main(url: str, count: int = 10) -> None:
    queue = f"example-{uuid.uuid4().hex[:8]}"
    state = {"received": 0}

    def on_open(connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel) -> None:  # type: ignore[no-untyped-def]
        channel.queue_declare(queue, auto_delete=True, callback=lambda _frame: start(channel))

    def start(channel) -> None:  # type: ignore[no-untyped-def]
        channel.basic_consume(queue, on_message)
        for number in range(count):
            channel.basic_publish("", queue, f"message {number}".encode())

    def on_message(channel, method, properties, body) -> None:  # type: ignore[no-untyped-def]
        print(body.decode())
        channel.basic_ack(method.delivery_tag)
        state["received"] += 1
        if state["received"] == count:
            channel.connection.close()

    def on_close(connection, error) -> None:  # type: ignore[no-untyped-def]
        connection.ioloop.stop()

    connection = pika.SelectConnection(
        pika.URLParameters(url), on_open_callback=on_open, on_close_callback=on_close,
        on_open_error_callback=on_close,
    )
    connection.ioloop.call_later(30, connection.ioloop.stop)  # never hang
    connection.ioloop.start()
    print(f"received {state['received']} of {count}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ["AMQP_URL"])
