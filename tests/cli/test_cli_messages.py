"""``amqp-core publish``, ``consume`` and ``get`` against the test broker."""

from __future__ import annotations

import json

from cli_helpers import Run, message_count

from amqp_core.adapters.blocking_connection import BlockingConnection
from amqp_core.cli import EXIT_CHANNEL, EXIT_OK


def _records(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_publish_body_properties_and_headers(
    cli: Run, amqp: BlockingConnection, queue: str
) -> None:
    result = cli(
        "publish", "-r", queue, "héllo",
        "--content-type", "text/plain", "--content-encoding", "utf-8", "--persistent",
        "--priority", "7", "--correlation-id", "corr-1", "--reply-to", "replies",
        "--expiration", "60000", "--message-id", "m-1", "--timestamp", "1700000000",
        "--type", "greeting", "--user-id", "guest", "--app-id", "cli-test",
        "--header", "text=v", "--header-int", "n=42", "--header-json", 'j={"a": [1, true]}',
        "--header-json", "f=2.5",
    )
    assert result.code == EXIT_OK, result
    assert "published 1 message(s)" in result.out and "confirmed" in result.out
    _method, properties, body = amqp.channel().basic_get(queue, auto_ack=True)
    assert body == "héllo".encode()
    assert properties is not None and properties.headers is not None
    assert properties.content_type == "text/plain"
    assert properties.content_encoding == "utf-8"
    assert properties.delivery_mode == 2
    assert properties.priority == 7
    assert properties.correlation_id == "corr-1"
    assert properties.reply_to == "replies"
    assert properties.expiration == "60000"
    assert properties.message_id == "m-1"
    assert properties.timestamp == 1700000000
    assert properties.type == "greeting"
    assert properties.user_id == "guest"
    assert properties.app_id == "cli-test"
    headers = dict(properties.headers)
    assert headers["n"] == 42 and headers["f"] == 2.5
    assert headers["j"] == {"a": [1, True]}
    assert headers["text"] in ("v", b"v")


def test_publish_from_stdin_lines_and_repeat(
    cli: Run, amqp: BlockingConnection, queue: str
) -> None:
    result = cli("publish", "-r", queue, "--lines", "--repeat", "2", stdin=b"one\r\ntwo\nthree\n")
    assert result.code == EXIT_OK, result
    assert "published 6 message(s)" in result.out
    got = cli("get", queue, "--count", "10")
    assert got.out.splitlines() == ["one", "two", "three"] * 2


def test_publish_whole_stdin_binary(cli: Run, queue: str) -> None:
    assert cli("publish", "-r", queue, "-", stdin=b"\x00\xffraw\n").code == EXIT_OK
    record = _records(cli("get", queue, "--format", "json").out)[0]
    assert record["body_base64"] == "AP9yYXcK"


def test_publish_to_exchange_without_confirms(cli: Run, queue: str) -> None:
    result = cli("publish", "-e", "amq.direct", "-r", queue, "x", "--no-confirm")
    assert result.code == EXIT_OK
    assert "not confirmed" in result.out
    # nothing is bound: the message is dropped without an error


def test_publish_mandatory_unroutable_is_exit_4(cli: Run) -> None:
    result = cli("publish", "-e", "amq.direct", "-r", "no-such-binding", "x", "--mandatory")
    assert result.code == EXIT_CHANNEL
    assert len(result.err_lines) == 1
    assert "returned as unroutable" in result.err_lines[0]


def test_publish_to_missing_exchange_is_exit_4(cli: Run) -> None:
    result = cli("publish", "-e", "cli-no-such-exchange", "-r", "k", "x")
    assert result.code == EXIT_CHANNEL
    assert len(result.err_lines) == 1
    assert "404 NOT_FOUND - no exchange 'cli-no-such-exchange'" in result.err_lines[0]


def test_consume_count_as_json_then_lines(cli: Run, amqp: BlockingConnection, queue: str) -> None:
    for body in ("a", "b", "c"):
        assert cli("publish", "-r", queue, body, "--header-int", "n=1").code == EXIT_OK
    result = cli("consume", queue, "-n", "2", "--format", "json", "--prefetch", "1")
    assert result.code == EXIT_OK, result
    records = _records(result.out)
    assert [record["body"] for record in records] == ["a", "b"]
    assert records[0]["routing_key"] == queue and records[0]["exchange"] == ""
    assert records[0]["properties"] == {"headers": {"n": 1}}
    assert message_count(amqp, queue) == 1  # acked: gone
    rest = cli("consume", queue, "--idle-timeout", "0.3")
    assert rest.code == EXIT_OK
    assert rest.out == "c\n"


def test_consume_idle_timeout_on_empty_queue(cli: Run, queue: str) -> None:
    result = cli("consume", queue, "--count", "5", "--idle-timeout", "0.2")
    assert result.code == EXIT_OK
    assert result.out == ""
    assert "consumed 0 of 5" in result.err


def test_consume_ack_modes(cli: Run, amqp: BlockingConnection, queue: str) -> None:
    cli("publish", "-r", queue, "--lines", stdin=b"1\n2\n3\n")
    requeue = cli("consume", queue, "-n", "3", "--ack-mode", "requeue", "--idle-timeout", "2")
    assert requeue.out.splitlines() == ["1", "2", "3"]
    assert message_count(amqp, queue) == 3  # all back in the queue
    reject = cli("consume", queue, "-n", "1", "--ack-mode", "reject", "--prefetch", "1")
    assert reject.out.splitlines() == ["1"]
    assert message_count(amqp, queue) == 2
    auto = cli("consume", queue, "-n", "2", "--ack-mode", "auto")
    assert auto.out.splitlines() == ["2", "3"]
    assert message_count(amqp, queue) == 0


def test_consume_missing_queue_is_exit_4(cli: Run) -> None:
    result = cli("consume", "cli-no-such-queue", "--idle-timeout", "1")
    assert result.code == EXIT_CHANNEL
    assert len(result.err_lines) == 1
    assert "404 NOT_FOUND - no queue 'cli-no-such-queue'" in result.err_lines[0]


def test_get_count_ack_modes_and_empty(cli: Run, amqp: BlockingConnection, queue: str) -> None:
    cli("publish", "-r", queue, "--lines", stdin=b"x\ny\n")
    peek = cli("get", queue, "-n", "5", "--ack-mode", "requeue", "--format", "json")
    records = _records(peek.out)
    assert [record["body"] for record in records] == ["x", "y"]
    assert records[0]["message_count"] == 1
    assert message_count(amqp, queue) == 2
    taken = cli("get", queue)
    assert taken.out == "x\n"
    assert message_count(amqp, queue) == 1
    assert cli("get", queue, "--ack-mode", "auto").out == "y\n"
    empty = cli("get", queue)
    assert empty.code == EXIT_OK and empty.out == ""
    assert f"queue {queue!r} is empty" in empty.err
