"""Helpers of the ``amqp-core`` command tests (imported by the test modules and the conftest)."""

from __future__ import annotations

import io
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from amqp_core.adapters.blocking_connection import BlockingConnection
from amqp_core.cli import main


@dataclass(frozen=True)
class Result:
    """What one run of the command did."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        """The non-empty lines written to stderr."""
        return [line for line in self.err.splitlines() if line.strip()]


Run = Callable[..., Result]


def runner(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    def run(*argv: str, stdin: bytes | None = None) -> Result:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def message_count(amqp: BlockingConnection, queue: str) -> int:
    """How many ready messages ``queue`` holds."""
    count: int = amqp.channel().queue_declare(queue, passive=True).method.message_count
    return count
