"""Messages on the command line: ``KEY=VALUE`` tables, properties, and printing deliveries.

Theory of operation: the command line gives field tables (message headers,
queue and binding arguments) as repeated ``KEY=VALUE`` options in three
flavours -- text (``--header``), integer (``--header-int``) and JSON
(``--header-json``, for booleans, floats, lists, nested tables and null) --
and :func:`parse_table` merges them in the order given.  :func:`build_properties`
turns the property options into a :class:`~amqp_core.spec.BasicProperties`,
checking ranges before anything reaches the protocol core.

On the way out a message is a JSON-ready dict (:func:`message_record`): the
body as text when it is valid UTF-8, else base64 under ``body_base64``; the
present properties only; values JSON cannot hold (bytes, datetimes, decimals)
converted by :func:`json_default`.  ``lines`` output is the body alone,
decoded as UTF-8 with invalid bytes escaped.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from ..spec import BasicProperties
from ._errors import UsageError

__all__ = [
    "PROPERTY_NAMES",
    "body_text",
    "build_properties",
    "json_default",
    "message_record",
    "parse_delivery_mode",
    "parse_table",
    "properties_record",
]

#: The Basic properties, in the order the protocol lists them.
PROPERTY_NAMES: Final = (
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)

_SHORTSTR_MAX: Final = 255


def _split_pair(option: str, item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UsageError(f"bad {option} {item!r}: expected KEY=VALUE")
    return key, value


def parse_table(option: str, items: Iterable[tuple[str, str]]) -> dict[str, Any] | None:
    """Build a field table from ``(kind, "KEY=VALUE")`` pairs, later keys winning.

    :param option: the option family, for messages (``"--header"``, ``"--arg"``)
    :param items: ``kind`` is ``"str"``, ``"int"`` or ``"json"``
    :returns: the table, or None when ``items`` is empty
    :raises UsageError: an item is not ``KEY=VALUE`` or its value does not parse
    """
    table: dict[str, Any] = {}
    for kind, item in items:
        flag = option if kind == "str" else f"{option}-{kind}"
        key, raw = _split_pair(flag, item)
        if kind == "str":
            table[key] = raw
        elif kind == "int":
            try:
                table[key] = int(raw, 10)
            except ValueError:
                raise UsageError(f"bad {flag} {item!r}: {raw!r} is not an integer") from None
        elif kind == "json":
            try:
                table[key] = json.loads(raw)
            except json.JSONDecodeError as error:
                raise UsageError(f"bad {flag} {item!r}: not JSON ({error.msg})") from None
        else:  # pragma: no cover - the parser only makes the three kinds
            raise ValueError(f"unknown table item kind {kind!r}")
    return table or None


def parse_delivery_mode(text: str) -> int:
    """``1``/``transient`` or ``2``/``persistent`` as the protocol's delivery mode.

    :raises UsageError: anything else
    """
    value = text.strip().lower()
    if value in ("1", "transient"):
        return 1
    if value in ("2", "persistent"):
        return 2
    raise UsageError(
        f"bad --delivery-mode {text!r}: expected 1, 2, transient or persistent"
    )


def _timestamp(text: str) -> int:
    if text == "now":
        return int(time.time())
    try:
        value = int(text, 10)
    except ValueError:
        raise UsageError(
            f"bad --timestamp {text!r}: expected 'now' or seconds since the epoch"
        ) from None
    if not 0 <= value < 2**64:
        raise UsageError(f"bad --timestamp {text!r}: out of range")
    return value


def build_properties(
    options: Mapping[str, Any], headers: Mapping[str, Any] | None
) -> BasicProperties | None:
    """The message properties the command line asks for, or None when it asks for none.

    :param options: the parsed option values by property name (None: absent);
        ``persistent`` (bool) is a shortcut for ``delivery_mode=2``, ``timestamp``
        is ``"now"`` or an integer string
    :param headers: the header table, or None
    :raises UsageError: a value is out of range or the options contradict each other
    """
    values: dict[str, Any] = {}
    for name in PROPERTY_NAMES:
        value = options.get(name)
        if value is None or name == "headers":
            continue
        if isinstance(value, str) and len(value.encode("utf-8")) > _SHORTSTR_MAX:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"bad {flag}: longer than {_SHORTSTR_MAX} bytes")
        values[name] = value
    if "delivery_mode" in values:
        values["delivery_mode"] = parse_delivery_mode(str(values["delivery_mode"]))
    if options.get("persistent"):
        if values.get("delivery_mode", 2) != 2:
            raise UsageError("--persistent contradicts --delivery-mode 1")
        values["delivery_mode"] = 2
    priority = values.get("priority")
    if priority is not None and not 0 <= priority <= 255:
        raise UsageError(f"bad --priority {priority}: expected 0..255")
    if "timestamp" in values:
        values["timestamp"] = _timestamp(str(values["timestamp"]))
    expiration = values.get("expiration")
    if expiration is not None and not expiration.isdigit():
        raise UsageError(
            f"bad --expiration {expiration!r}: expected a number of milliseconds"
        )
    if headers:
        values["headers"] = dict(headers)
    if not values:
        return None
    return BasicProperties(**values)


def json_default(value: Any) -> Any:
    """Make AMQP field values JSON-ready (for ``json.dumps(default=...)``)."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return repr(value)


def properties_record(properties: BasicProperties | None) -> dict[str, Any]:
    """The present properties of a message, by name."""
    if properties is None:
        return {}
    record: dict[str, Any] = {}
    for name in PROPERTY_NAMES:
        value = getattr(properties, name, None)
        if value is not None:
            record[name] = value
    return record


def body_text(body: bytes) -> str:
    """The body as text: UTF-8, invalid bytes written as ``\\xNN`` escapes."""
    return body.decode("utf-8", "backslashreplace")


def message_record(
    method: Any, properties: BasicProperties | None, body: bytes, **extra: Any
) -> dict[str, Any]:
    """A delivered (or fetched) message as a JSON-ready dict.

    :param method: ``Basic.Deliver`` or ``Basic.GetOk``
    :param properties: its properties
    :param body: its body
    :param extra: more keys to include (``queue=...``)
    """
    record: dict[str, Any] = {
        "exchange": method.exchange,
        "routing_key": method.routing_key,
        "delivery_tag": method.delivery_tag,
        "redelivered": bool(method.redelivered),
    }
    message_count = getattr(method, "message_count", None)
    if message_count is not None:
        record["message_count"] = message_count
    record.update(extra)
    record["properties"] = properties_record(properties)
    try:
        record["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        record["body_base64"] = base64.b64encode(body).decode("ascii")
    return record

