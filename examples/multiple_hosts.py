"""Several brokers to choose from: a list of ConnectionParameters tried in order.

``BlockingConnection([params1, params2, ...])`` tries each parameter set in turn (every
address of each host) and keeps the first connection that opens.  The whole list is tried
``connection_attempts`` times with ``retry_delay`` seconds between passes; as in pika both
are read from the LAST parameter set.  When every try fails, the last error is raised
(``AMQPConnectionError``, naming the host and port).

Here the first "broker" is a port nothing listens on (a socket bound but not listening, so
connecting is refused at once), the second is the real one.

Usage: python examples/multiple_hosts.py [AMQP_URL] (default: $AMQP_URL)
"""

import os
import socket
import sys
import time

import amqp_core as pika
from amqp_core.exceptions import AMQPConnectionError


def main(url: str) -> None:
    real = pika.URLParameters(url)
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        dead_port = dead.getsockname()[1]
        down = pika.ConnectionParameters("127.0.0.1", dead_port, credentials=real.credentials)

        # 1. the first is down, the second answers
        real.connection_attempts = 3  # read from the last parameter set
        real.retry_delay = 1
        with pika.BlockingConnection([down, real]) as connection:
            channel = connection.channel()
            channel.queue_declare("", exclusive=True)
            # the repr names the broker it connected to
            print(f"port {dead_port} refused; connected: {connection!r}")

        # 2. every broker down: 2 passes over the list, 0.5 s apart, then the last error
        also_down = pika.ConnectionParameters("127.0.0.1", dead_port,
                                              connection_attempts=2, retry_delay=0.5)
        started = time.monotonic()
        try:
            pika.BlockingConnection([down, also_down])
        except AMQPConnectionError as error:
            print(f"all brokers down: {type(error).__name__} after "
                  f"{time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ["AMQP_URL"])
