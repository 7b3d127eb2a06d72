"""``amqp-core declare``, ``delete``, ``purge``, ``bind`` and ``unbind`` against the test broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cli_helpers import Run, message_count

from amqp_core.adapters.blocking_connection import BlockingConnection
from amqp_core.cli import EXIT_CHANNEL, EXIT_CONNECTION, EXIT_OK
from amqp_core.exceptions import ChannelClosedByBroker


def _unique(prefix: str) -> str:
    return f"cli-test-{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def exchange(amqp: BlockingConnection) -> Iterator[str]:
    """A name for an exchange the test declares (deleted afterwards)."""
    name = _unique("ex")
    yield name
    if amqp.is_open:
        amqp.channel().exchange_delete(name)


def test_declare_queue_with_arguments_then_passive(
    cli: Run, amqp: BlockingConnection
) -> None:
    name = _unique("q")
    try:
        result = cli("declare", "queue", name, "--durable", "--max-length", "5",
                     "--message-ttl", "60000", "--arg", "x-overflow=reject-publish")
        assert result.code == EXIT_OK, result
        assert result.out == f"queue {name!r}: 0 message(s), 0 consumer(s)\n"
        # the broker knows the arguments: an inequivalent redeclare is refused (406)
        channel = amqp.channel()
        with pytest.raises(ChannelClosedByBroker) as refused:
            channel.queue_declare(name, durable=True, arguments={"x-max-length": 6})
        assert refused.value.reply_code == 406
        cli("publish", "-r", name, "m")
        passive = cli("declare", "queue", name, "--passive")
        assert passive.out == f"queue {name!r}: 1 message(s), 0 consumer(s)\n"
    finally:
        amqp.channel().queue_delete(name)


def test_declare_server_named_queue(cli: Run) -> None:
    result = cli("declare", "queue", "", "--exclusive")
    assert result.code == EXIT_OK
    assert result.out.startswith("queue 'amq.gen-")


def test_passive_declare_of_missing_queue_is_exit_4(cli: Run, broker: Any) -> None:
    result = cli("declare", "queue", "cli-no-such-queue", "--passive")
    assert result.code == EXIT_CHANNEL
    assert result.out == ""
    assert result.err_lines == [
        "amqp-core: error: the broker closed the channel: 404 NOT_FOUND - no queue "
        f"'cli-no-such-queue' in vhost '/' ({broker.host}:{broker.port})"
    ]


def test_wrong_password_is_exit_3_one_line(cli: Run, broker: Any) -> None:
    url = f"amqp://guest:wrong-password@{broker.host}:{broker.port}/%2F"
    result = cli("--url", url, "declare", "queue", "q", "--passive")
    assert result.code == EXIT_CONNECTION
    assert len(result.err_lines) == 1
    line = result.err_lines[0]
    assert line.startswith("amqp-core: error: authentication failed: 403 ACCESS_REFUSED")
    assert line.endswith(f"({broker.host}:{broker.port})")
    assert "wrong-password" not in result.err
    assert "Traceback" not in result.err


def test_unknown_vhost_is_exit_3(cli: Run, broker: Any) -> None:
    url = f"amqp://guest:guest@{broker.host}:{broker.port}/no-such-vhost"
    result = cli("--url", url, "check")
    assert result.code == EXIT_CONNECTION
    assert len(result.err_lines) == 1
    assert "access to the virtual host was refused" in result.err_lines[0]


def test_exchange_declare_bind_publish_unbind_delete(
    cli: Run, amqp: BlockingConnection, queue: str, exchange: str
) -> None:
    declared = cli("declare", "exchange", exchange, "--type", "topic", "--auto-delete")
    assert declared.code == EXIT_OK
    assert declared.out == f"exchange {exchange!r} (topic) declared\n"
    assert cli("declare", "exchange", exchange, "--type", "topic", "--passive",
               "--auto-delete").code == EXIT_OK
    bound = cli("bind", "queue", queue, exchange, "-r", "logs.*")
    assert bound.code == EXIT_OK
    assert bound.out == (
        f"queue {queue!r} bound to exchange {exchange!r} with routing key 'logs.*'\n"
    )
    cli("publish", "-e", exchange, "-r", "logs.error", "routed")
    assert message_count(amqp, queue) == 1
    assert cli("unbind", "queue", queue, exchange, "-r", "logs.*").code == EXIT_OK
    result = cli("publish", "-e", exchange, "-r", "logs.error", "dropped", "--mandatory")
    assert result.code == EXIT_CHANNEL  # no binding left: returned
    deleted = cli("delete", "exchange", exchange)
    assert deleted.out == f"exchange {exchange!r} deleted\n"
    with pytest.raises(ChannelClosedByBroker):
        amqp.channel().exchange_declare(exchange, "topic", passive=True)


def test_queue_bind_key_defaults_to_the_queue_name(
    cli: Run, amqp: BlockingConnection, queue: str
) -> None:
    assert cli("bind", "queue", queue, "amq.direct").out.endswith(f"routing key {queue!r}\n")
    cli("publish", "-e", "amq.direct", "-r", queue, "m")
    assert message_count(amqp, queue) == 1
    assert cli("unbind", "queue", queue, "amq.direct").code == EXIT_OK


def test_exchange_to_exchange_binding(
    cli: Run, amqp: BlockingConnection, queue: str, exchange: str
) -> None:
    cli("declare", "exchange", exchange, "--type", "fanout")
    cli("bind", "queue", queue, exchange)
    result = cli("bind", "exchange", exchange, "amq.topic", "-r", "#")
    assert result.code == EXIT_OK
    assert result.out.startswith(f"exchange {exchange!r} bound to exchange 'amq.topic'")
    cli("publish", "-e", "amq.topic", "-r", "any.key", "via-e2e")
    assert message_count(amqp, queue) == 1
    assert cli("unbind", "exchange", exchange, "amq.topic", "-r", "#").code == EXIT_OK


def test_purge_and_delete_queue(cli: Run, amqp: BlockingConnection) -> None:
    name = _unique("q")
    cli("declare", "queue", name)
    cli("publish", "-r", name, "--repeat", "3", "m")
    assert cli("purge", name).out == f"queue {name!r} purged (3 message(s))\n"
    cli("publish", "-r", name, "m")
    refused = cli("delete", "queue", name, "--if-empty")
    assert refused.code == EXIT_CHANNEL
    assert "406 PRECONDITION_FAILED" in refused.err
    deleted = cli("delete", "queue", name)
    assert deleted.out == f"queue {name!r} deleted (1 message(s))\n"
    assert cli("declare", "queue", name, "--passive").code == EXIT_CHANNEL
