"""``amqp-core`` without a broker: help, usage errors, refused connections, the error line.

Usage errors must be reported before anything connects: these tests point ``AMQP_URL`` at a
closed port, so a command that tried to connect would exit with 3 instead of 2.
"""

from __future__ import annotations

import json

import pytest
from cli_helpers import Run

from amqp_core import exceptions
from amqp_core.cli import (
    EXIT_CHANNEL,
    EXIT_CONNECTION,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    main,
)
from amqp_core.cli._errors import classify
from amqp_core.cli._messages import build_properties, message_record, parse_table
from amqp_core.plugins import installed_adapters

ERROR_PREFIX = "amqp-core: error: "


def _one_error_line(err_lines: list[str]) -> str:
    assert len(err_lines) == 1, err_lines
    assert err_lines[0].startswith(ERROR_PREFIX)
    assert "Traceback" not in err_lines[0]
    return err_lines[0][len(ERROR_PREFIX):]


def test_help_lists_every_command(offline_cli: Run) -> None:
    result = offline_cli("--help")
    assert result.code == EXIT_OK
    for command in ("publish", "consume", "get", "declare", "delete", "bind", "unbind",
                    "purge", "adapters", "bench", "check"):
        assert command in result.out
    assert "exit codes" in result.out


def test_publish_help_documents_headers_and_properties(offline_cli: Run) -> None:
    result = offline_cli("publish", "--help")
    assert result.code == EXIT_OK
    for option in ("--header", "--header-int", "--header-json", "--content-type",
                   "--delivery-mode", "--persistent", "--correlation-id", "--reply-to",
                   "--expiration", "--message-id", "--type", "--app-id", "--priority"):
        assert option in result.out


def test_version(offline_cli: Run) -> None:
    result = offline_cli("--version")
    assert result.code == EXIT_OK
    assert result.out.startswith("amqp-core ")


def test_no_command_is_a_usage_error(offline_cli: Run) -> None:
    result = offline_cli()
    assert result.code == EXIT_USAGE
    assert "required" in _one_error_line(result.err_lines)


def test_consume_without_queue(offline_cli: Run) -> None:
    result = offline_cli("consume")
    assert result.code == EXIT_USAGE
    line = _one_error_line(result.err_lines)
    assert "QUEUE" in line and "amqp-core consume --help" in line


def test_unknown_option(offline_cli: Run) -> None:
    result = offline_cli("get", "q", "--bogus")
    assert result.code == EXIT_USAGE
    assert "--bogus" in _one_error_line(result.err_lines)


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--header", "no-equals-sign", "expected KEY=VALUE"),
        ("--header", "=value", "expected KEY=VALUE"),
        ("--header-int", "n=five", "not an integer"),
        ("--header-json", "j={bad", "not JSON"),
    ],
)
def test_bad_header_syntax(offline_cli: Run, option: str, value: str, expected: str) -> None:
    result = offline_cli("publish", "-r", "q", "body", option, value)
    assert result.code == EXIT_USAGE
    line = _one_error_line(result.err_lines)
    assert expected in line and option in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["publish", "body"], "needs --exchange or --routing-key"),
        (["publish", "-r", "q", "b", "--priority", "300"], "--priority"),
        (["publish", "-r", "q", "b", "--delivery-mode", "3"], "--delivery-mode"),
        (["publish", "-r", "q", "b", "--expiration", "soon"], "--expiration"),
        (["publish", "-r", "q", "b", "--timestamp", "yesterday"], "--timestamp"),
        (["publish", "-r", "q", "b", "--persistent", "--delivery-mode", "1"], "--persistent"),
        (["publish", "-r", "q", "b", "--repeat", "0"], "--repeat"),
        (["publish", "-r", "q", "b", "--mandatory", "--no-confirm"], "--mandatory"),
        (["consume", "q", "--count", "-1"], "--count"),
        (["consume", "q", "--idle-timeout", "0"], "--idle-timeout"),
        (["consume", "q", "--prefetch", "70000"], "--prefetch"),
        (["consume", "q", "--ack-mode", "maybe"], "--ack-mode"),
        (["get", "q", "--count", "0"], "--count"),
        (["get", ""], "queue name must not be empty"),
        (["declare", "queue", "q", "--arg-int", "x-max-length=lots"], "--arg-int"),
        (["declare", "exchange", "e", "--arg", "oops"], "--arg"),
        (["declare", "widget", "w"], "invalid choice"),
        (["bind", "queue", "q"], "EXCHANGE"),
        (["bench", "-s", "publish,teleport"], "--scenarios"),
        (["bench", "--count", "0"], "--count"),
    ],
)
def test_bad_arguments_fail_before_connecting(
    offline_cli: Run, args: list[str], expected: str
) -> None:
    result = offline_cli(*args)
    assert result.code == EXIT_USAGE, result
    assert expected in _one_error_line(result.err_lines)


def test_bad_url_is_a_usage_error_and_never_echoes_the_password(offline_cli: Run) -> None:
    result = offline_cli("--url", "http://user:s3cret@host/", "check")
    assert result.code == EXIT_USAGE
    line = _one_error_line(result.err_lines)
    assert "--url" in line and "scheme" in line
    assert "s3cret" not in result.err


def test_bad_amqp_url_environment(offline_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://guest:pw@127.0.0.1:notaport/")
    result = offline_cli("check")
    assert result.code == EXIT_USAGE
    assert "AMQP_URL" in _one_error_line(result.err_lines)


def test_unknown_adapter_lists_the_installed_ones(offline_cli: Run) -> None:
    result = offline_cli("bench", "--adapter", "no-such-loop")
    assert result.code == EXIT_USAGE
    line = _one_error_line(result.err_lines)
    assert "no-such-loop" in line
    for info in installed_adapters():
        assert info.name in line


def test_refused_connection_is_one_line_exit_3(offline_cli: Run) -> None:
    result = offline_cli("declare", "queue", "q", "--passive")
    assert result.code == EXIT_CONNECTION
    line = _one_error_line(result.err_lines)
    assert line.startswith("cannot connect: ")
    assert line.endswith(")") and "(127.0.0.1:" in line


def test_traceback_on_request(offline_cli: Run) -> None:
    result = offline_cli("check", "--traceback")
    assert result.code == EXIT_CONNECTION
    assert "Traceback (most recent call last)" in result.err
    assert result.err_lines[-1].startswith(ERROR_PREFIX + "cannot connect: ")


def test_global_options_before_or_after_the_command(offline_cli: Run) -> None:
    before = offline_cli("--traceback", "check")
    after = offline_cli("check", "--traceback")
    assert before.code == after.code == EXIT_CONNECTION
    assert "Traceback" in before.err and "Traceback" in after.err


def test_verbose_logs_then_still_ends_with_the_error_line(offline_cli: Run) -> None:
    result = offline_cli("-v", "check")
    assert result.code == EXIT_CONNECTION
    assert len(result.err_lines) > 1
    assert result.err_lines[-1].startswith(ERROR_PREFIX)


def test_adapters_text_and_json(offline_cli: Run) -> None:
    names = [info.name for info in installed_adapters()]
    text = offline_cli("adapters")
    assert text.code == EXIT_OK
    assert text.out.splitlines()[0].split()[:2] == ["adapter", "distribution"]
    for name in names:
        assert any(line.startswith(name + " ") for line in text.out.splitlines())
    listed = json.loads(offline_cli("adapters", "--format", "json").out)
    assert [row["name"] for row in listed] == names
    by_name = {row["name"]: row for row in listed}
    assert by_name["select"]["distribution"] == "amqp-core"
    assert by_name["select"]["native_loop"].endswith("IOLoop")
    assert by_name["blocking"]["status"] == "ok"


def test_adapters_verify_imports_the_connection_classes(offline_cli: Run) -> None:
    listed = json.loads(offline_cli("adapters", "--verify", "--format", "json").out)
    by_name = {row["name"]: row for row in listed}
    assert by_name["select"]["status"] == "ok (imported)"
    assert by_name["select"]["connection_class"].endswith(":SelectConnection")


def test_main_reads_sys_argv_when_given_none(
    offline_cli: Run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["amqp-core", "--version"])
    assert main() == EXIT_OK
    assert capsys.readouterr().out.startswith("amqp-core ")


# ---------------------------------------------------------------- the pieces


def test_parse_table_kinds_and_order() -> None:
    table = parse_table("--header", [
        ("str", "a=1"), ("int", "b=2"), ("json", 'c={"d": [true, null, 1.5]}'),
        ("str", "a=x=y"), ("str", "empty="),
    ])
    assert table == {"a": "x=y", "b": 2, "c": {"d": [True, None, 1.5]}, "empty": ""}
    assert parse_table("--arg", []) is None


def test_build_properties() -> None:
    assert build_properties({}, None) is None
    properties = build_properties(
        {"content_type": "text/plain", "persistent": True, "priority": 5,
         "expiration": "60000", "timestamp": "1700000000", "type": "t", "app_id": "cli"},
        {"k": "v"},
    )
    assert properties is not None
    assert properties.delivery_mode == 2
    assert properties.timestamp == 1700000000
    assert properties.headers == {"k": "v"}
    assert build_properties({"delivery_mode": "transient"}, None).delivery_mode == 1  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="longer than 255"):
        build_properties({"message_id": "x" * 256}, None)


def test_message_record_base64_for_binary_bodies() -> None:
    class Method:
        exchange, routing_key, delivery_tag, redelivered = "", "q", 1, False

    record = message_record(Method(), None, b"\xff\x00")
    assert record["body_base64"] == "/wA=" and "body" not in record
    assert message_record(Method(), None, "é".encode())["body"] == "é"


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (exceptions.ProbableAuthenticationError("(403) ACCESS_REFUSED - Login was refused"),
         EXIT_CONNECTION, "authentication failed: 403 ACCESS_REFUSED - Login was refused"),
        (exceptions.ProbableAccessDeniedError("(530) NOT_ALLOWED - vhost x not found"),
         EXIT_CONNECTION, "access to the virtual host was refused: 530 NOT_ALLOWED"),
        (exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED - bye"),
         EXIT_CONNECTION, "the broker closed the connection: 320 CONNECTION_FORCED - bye"),
        (exceptions.StreamLostError("Transport indicated EOF"),
         EXIT_CONNECTION, "connection lost: Transport indicated EOF"),
        (exceptions.ChannelClosedByBroker(406, "PRECONDITION_FAILED - inequivalent arg"),
         EXIT_CHANNEL, "the broker closed the channel: 406 PRECONDITION_FAILED"),
        (exceptions.UnroutableError([object()]), EXIT_CHANNEL, "1 message(s) returned"),
        (exceptions.NackError([object(), object()]), EXIT_CHANNEL,
         "the broker nacked 2 message(s)"),
        (RuntimeError("boom\nsecond line"), EXIT_FAILURE, "RuntimeError: boom second line"),
    ],
)
def test_classify(error: BaseException, code: int, text: str) -> None:
    got_code, got_text = classify(error, "h:1")
    assert got_code == code
    assert got_text.startswith(text)
    assert got_text.endswith(" (h:1)")
    assert "\n" not in got_text


def test_classify_usage_errors_name_no_broker() -> None:
    assert classify(UsageError("bad"), "h:1") == (EXIT_USAGE, "bad")
