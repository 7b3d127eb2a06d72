"""No loss with confirms: the recovery examples survive a broker restart mid-publish.

Theory of operation: this module starts its OWN private RabbitMQ node (module scope; the
session broker is never restarted, other tests use it).  For each adapter it runs the
adapter's two recovery examples as subprocesses -- ``<adapter>_reconnecting_consumer.py`` and
``<adapter>_reliable_publisher.py`` (so Twisted's reactor and gevent's hub live in their own
processes) -- on a fresh durable queue; a thread per process collects the ids it prints
(``confirmed <id>`` / ``failed <id>`` from the publisher, ``received <id>`` from the consumer).
Mid-publish (once a share of the messages is confirmed) the test stops and starts the RabbitMQ
application (``rabbitmqctl stop_app`` / ``start_app``): every connection is closed with
CONNECTION_FORCED, new ones are refused until it is back, and the examples' own recovery code
reconnects.  Then, bounded in time: the publisher exits, the consumer drains the queue.

The checks are the issue's "no loss" properties: every confirmed id was received (at least
once); every id was either confirmed or reported failed to the application; the restart really
happened while publishing (the publisher reported a lost connection).  Duplicates (a message
redelivered because its ack was lost, or published again because its confirm was lost) are
allowed and reported.  A quick run of each pair without a restart checks that every example
runs as documented.  Set ``NOLOSS_DUMP=<directory>`` to keep every program's output there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from amqp_core.testing.broker import PrivateBroker, ensure_installed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ADAPTERS = ["blocking", "select", "asyncio", "tornado", "twisted", "gevent"]
MESSAGES = 20_000
RATE = 2_000  # messages per second, so that the publishing lasts ~10 s and the restart lands in it


class Program:
    """A running example; a thread splits its output into counters per leading word."""

    def __init__(self, script: str, *args: str) -> None:
        self.script = script
        self.lines: list[str] = []
        self.raw: list[str] = []
        self.ids: dict[str, Counter[str]] = {}
        self._lock = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(EXAMPLES / script), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.rstrip("\n")
            word, _, rest = line.partition(" ")
            with self._lock:
                self.raw.append(line)
                if word in ("confirmed", "failed", "received") and rest.isdigit():
                    self.ids.setdefault(word, Counter())[rest] += 1
                else:
                    self.lines.append(line)
                self._lock.notify_all()
        with self._lock:
            self._lock.notify_all()

    def counter(self, word: str) -> Counter[str]:
        with self._lock:
            return Counter(self.ids.get(word, Counter()))

    def count(self, word: str) -> int:
        with self._lock:
            return len(self.ids.get(word, ()))

    def has_line(self, prefix: str) -> bool:
        with self._lock:
            return any(line.startswith(prefix) for line in self.lines)

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() >= deadline or (
                self.process.poll() is not None and not self._reader.is_alive()
            ):
                if condition():
                    return
                raise AssertionError(f"{self.script}: no {what} within {timeout} s; "
                                     f"exit code {self.process.poll()}; output:\n{self.tail()}")
            with self._lock:
                self._lock.wait(0.2)

    def finish(self, timeout: float) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.script} did not finish within {timeout} s; output:\n{self.tail()}"
            ) from None
        self._reader.join(timeout=10)
        return code

    def tail(self, lines: int = 30) -> str:
        with self._lock:
            counts = {word: len(ids) for word, ids in self.ids.items()}
            return "\n".join([*self.lines[-lines:], f"(ids: {counts})"])

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateBroker]:
    """A private node for this module only: restarting it disturbs no other test."""
    if os.environ.get("AMQP_URL"):
        pytest.skip("restarts its own private RabbitMQ node; AMQP_URL points at an external one")
    ensure_installed()
    with PrivateBroker() as broker:
        yield broker


def run_pair(node: PrivateBroker, adapter: str, count: int, restart: bool) -> dict[str, object]:
    """Run the adapter's consumer and publisher on a fresh queue; restart the broker if asked."""
    queue = f"no-loss-{adapter}-{uuid.uuid4().hex[:8]}"
    common = ["--url", node.url, "--queue", queue, "--count", str(count), "--timeout", "90"]
    started = time.monotonic()
    consumer = Program(f"{adapter}_reconnecting_consumer.py", *common)
    publisher: Program | None = None
    try:
        consumer.wait_for(lambda: consumer.has_line("consuming"), "'consuming' line", 30)
        extra = ["--rate", str(RATE)] if restart else []
        publisher = Program(f"{adapter}_reliable_publisher.py", *common, *extra)
        if restart:
            pub = publisher
            pub.wait_for(lambda: pub.count("confirmed") >= count // 5, "confirms", 30)
            node.stop_app()
            restarted_at = pub.count("confirmed")
            node.start_app()
        assert publisher.finish(timeout=75) == 0, publisher.tail()
        confirmed, failed = publisher.counter("confirmed"), publisher.counter("failed")
        consumer.wait_for(
            lambda: set(confirmed) <= set(consumer.counter("received")),
            "delivery of every confirmed id", 40,
        )
        assert consumer.finish(timeout=15) == 0, consumer.tail()
        received = consumer.counter("received")
        everything = {str(i) for i in range(count)}
        missing = set(confirmed) - set(received)
        assert not missing, f"confirmed but never received: {sorted(missing, key=int)[:20]}"
        unreported = everything - set(confirmed) - set(failed)
        assert not unreported, f"neither confirmed nor failed: {sorted(unreported, key=int)[:20]}"
        assert set(received) <= everything
        for program in (publisher, consumer):  # each failure reached the application with a reason
            assert not program.has_line("connection lost (None)"), program.tail()
        if restart:
            assert restarted_at < count, "the publisher finished before the broker stopped"
            assert publisher.has_line("connection lost"), publisher.tail()
            assert consumer.has_line("connection lost"), consumer.tail()
        report = {
            "adapter": adapter, "confirmed": len(confirmed), "failed": sum(failed.values()),
            "received": sum(received.values()), "distinct": len(received),
            "duplicates": sum(received.values()) - len(received),
            "seconds": round(time.monotonic() - started, 1),
        }
        print(f"\nno-loss {'restart' if restart else 'sanity'}: {report}")
        return report
    finally:
        consumer.kill()
        if publisher is not None:
            publisher.kill()
        dump = os.environ.get("NOLOSS_DUMP")
        if dump:
            for program in (consumer, publisher):
                if program is not None:
                    Path(dump, f"{adapter}-{program.script}.out").write_text("\n".join(program.raw))


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_examples_run_without_a_restart(node: PrivateBroker, adapter: str) -> None:
    report = run_pair(node, adapter, 200, restart=False)
    assert report["confirmed"] == 200
    assert report["failed"] == 0
    assert report["distinct"] == 200


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_no_confirmed_message_is_lost_across_a_broker_restart(
    node: PrivateBroker, adapter: str, record_property: Callable[[str, object], None]
) -> None:
    report = run_pair(node, adapter, MESSAGES, restart=True)
    for key, value in report.items():
        record_property(key, value)
