"""The recovery examples, run as programs against the test broker.

Theory of operation: each example runs in a subprocess with ``--max-messages`` and ``--timeout``
so it always ends; a thread collects its output lines.  A test publishes messages with its own
connection, then breaks the example's connection in one of two ways -- the broker closes it
(``rabbitmqctl close_connection``: the example must stop), or a TCP proxy between the example
and the broker drops the stream (the example must reconnect and go on consuming) -- and checks
what the example printed and its exit code.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from blocking_helpers import amqp_url, params_for, unique

import amqp_core as pika
from amqp_core.testing.fault_proxy import FaultProxy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WAIT = 20.0


class Program:
    """A running example and the lines it printed so far."""

    def __init__(self, script: str, *args: str) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(EXAMPLES / script), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def count(self, prefix: str) -> int:
        with self._changed:
            return sum(1 for line in self.lines if line.startswith(prefix))

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not condition()):
                    self._changed.wait(0.2)  # the last lines may still be on their way
                    if condition():
                        return
                    raise AssertionError(f"no {what}; output so far:\n" + "\n".join(self.lines))
                self._changed.wait(min(left, 0.5))

    def finish(self, timeout: float = WAIT) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def received(self) -> list[str]:
        with self._changed:
            return [line.split(" ", 1)[1] for line in self.lines if line.startswith("received ")]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def publisher(broker: Any) -> Iterator[Any]:
    connection = pika.BlockingConnection(params_for(broker))
    channel = connection.channel()
    yield channel
    if connection.is_open:
        connection.close()


def publish(channel: Any, queue: str, bodies: list[str]) -> None:
    channel.queue_declare(queue)
    channel.confirm_delivery()  # idempotent after the first call
    for body in bodies:
        channel.basic_publish("", queue, body)


def example_args(url: str, queue: str, name: str, max_messages: int) -> list[str]:
    return [url, "--queue", queue, "--name", name, "--max-messages", str(max_messages),
            "--timeout", "60"]


SCRIPTS = [
    pytest.param("consume_recover.py", ["--retry-delay", "0.2"], id="loop"),
    pytest.param(
        "consume_recover_retry.py", ["--delay", "0.2", "--jitter", "0.3"], id="tenacity",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("tenacity") is None, reason="tenacity is not installed"
        ),
    ),
]


@pytest.mark.parametrize(("script", "extra"), SCRIPTS)
def test_broker_close_stops_the_example(
    private_broker: Any, publisher: Any, script: str, extra: list[str]
) -> None:
    queue, name = unique("recover"), unique("example")
    program = Program(script, *example_args(private_broker.url, queue, name, 100), *extra)
    try:
        program.wait_for(lambda: program.count("connected") == 1, "connection")
        publish(publisher, queue, ["a", "b", "c"])
        program.wait_for(lambda: len(program.received()) == 3, "3 messages")
        pid = next(row["pid"] for row in private_broker.list_connections()
                   if name in row["client_properties"])
        private_broker.close_connection(pid, "stopped by the test")
        assert program.finish() == 0
        assert program.count("connection closed by broker") == 1
        assert program.count("connected") == 1, "it must not reconnect"
        assert program.received() == ["a", "b", "c"]
    finally:
        program.kill()
        publisher.queue_delete(queue)


@pytest.mark.parametrize(("script", "extra"), SCRIPTS)
def test_dropped_stream_reconnects_and_continues(
    broker: Any, publisher: Any, script: str, extra: list[str]
) -> None:
    queue, name = unique("recover"), unique("example")
    with FaultProxy(broker.host, broker.port) as proxy:
        program = Program(script, *example_args(amqp_url(proxy.port), queue, name, 6), *extra)
        try:
            program.wait_for(lambda: program.count("connected") == 1, "connection")
            publish(publisher, queue, ["1", "2", "3"])
            program.wait_for(lambda: len(set(program.received())) == 3, "3 messages")
            time.sleep(0.3)  # let the acks out, so no message is redelivered and counted twice
            proxy.close_all()
            program.wait_for(lambda: program.count("connection lost") >= 1, "failure report")
            program.wait_for(lambda: program.count("connected") == 2, "reconnection")
            publish(publisher, queue, ["4", "5", "6"])
            assert program.finish() == 0
            assert set(program.received()) == {"1", "2", "3", "4", "5", "6"}
            assert program.count("done after") == 1
            assert proxy.accepted == 2
        finally:
            program.kill()
            publisher.queue_delete(queue)
