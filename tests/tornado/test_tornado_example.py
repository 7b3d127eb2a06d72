"""The tornado example and the documentation's program, run as programs against the test broker.

Each runs in a subprocess bounded in time (and by its own ``--timeout``); the broker URL is
given on the command line to the example and through ``AMQP_URL`` to the documentation's
program.  Afterwards the test checks with its own connection that every message was acked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tornado_helpers import TornadoHarness

import amqp_core as pika

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tornado_threaded_consumer.py"
DOC = ROOT / "docs" / "adapters" / "tornado.md"

Params = Callable[..., pika.ConnectionParameters]


def _run(argv: list[str], env: dict[str, str] | None = None,
         timeout: float = 90) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ if env is None else env)
    environment["PYTHONWARNINGS"] = "error"  # a leaked socket or a deprecation fails the run
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          timeout=timeout, env=environment, cwd=ROOT, check=False)


def test_threaded_consumer_example(broker: Any, params: Params, unique: Any) -> None:
    queue = unique("example")
    count, workers = 3000, 16
    try:
        done = _run([str(EXAMPLE), broker.url, "--queue", queue, "--publish", str(count),
                     "--max-messages", str(count), "--workers", str(workers),
                     "--prefetch", "200", "--work-ms", "0.5", "--timeout", "60"])
        assert done.returncode == 0, done.stdout + done.stderr
        assert not done.stderr, done.stderr
        match = re.search(r"processed (\d+) messages in [\d.]+ s by (\d+) worker threads",
                          done.stdout)
        assert match, done.stdout
        assert int(match.group(1)) == count
        assert int(match.group(2)) > 1  # the work really was spread over the pool
    finally:
        h = TornadoHarness()
        try:
            channel = h.channel(h.connect(params()))
            declared = h.call(channel.queue_declare, queue, passive=True)
            assert declared.method.message_count == 0  # every message was acked
            h.call(channel.queue_delete, queue)
        finally:
            h.close()


def test_threaded_consumer_example_reports_a_refused_connection() -> None:
    done = _run([str(EXAMPLE), "amqp://guest:guest@127.0.0.1:9/%2F", "--timeout", "30"])
    assert done.returncode == 1
    assert "could not connect" in done.stdout


def _doc_program() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks, "no python block in the tornado page"
    return str(blocks[0])


def test_documentation_program_runs(broker: Any, tmp_path: Path) -> None:
    program = tmp_path / "tornado_doc_example.py"
    program.write_text(_doc_program())
    env = dict(os.environ)
    env["AMQP_URL"] = broker.url
    done = _run([str(program)], env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "received hello from tornado", done.stdout + done.stderr
    assert not done.stderr
