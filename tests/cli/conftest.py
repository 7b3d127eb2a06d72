"""Fixtures of the ``amqp-core`` command tests.

Theory of operation: the command runs in-process through :func:`amqp_core.cli.main`, its output
captured by pytest's ``capsys``; ``AMQP_URL`` points it at the session's broker (``cli``) or at a
closed local port (``offline_cli``, for what must fail before or at connecting).  Queues get
unique names and are deleted afterwards through a plain ``BlockingConnection``, which the tests
also use to check what the command did.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cli_helpers import Run, closed_port, runner

from amqp_core import URLParameters
from amqp_core.adapters.blocking_connection import BlockingConnection


@pytest.fixture
def cli(broker: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run ``amqp-core ARGS...`` in-process against the session broker (a ``Result``)."""
    monkeypatch.setenv("AMQP_URL", broker.url)
    return runner(capsys, monkeypatch)


@pytest.fixture
def offline_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run the command with ``AMQP_URL`` pointing at a closed port (connecting is refused)."""
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F")
    return runner(capsys, monkeypatch)


@pytest.fixture
def amqp(broker: Any) -> Iterator[BlockingConnection]:
    """A connection of the test's own, to prepare and check what the command did."""
    connection = BlockingConnection(URLParameters(broker.url))
    yield connection
    if connection.is_open:
        connection.close()


@pytest.fixture
def queue(amqp: BlockingConnection) -> Iterator[str]:
    """A fresh, empty queue (deleted after the test)."""
    name = f"cli-test-{uuid.uuid4().hex[:12]}"
    amqp.channel().queue_declare(name)
    yield name
    if amqp.is_open:
        amqp.channel().queue_delete(name)
