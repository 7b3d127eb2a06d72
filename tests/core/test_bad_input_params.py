"""Bad input to ConnectionParameters, URLParameters, PlainCredentials and BasicProperties.

Theory of operation: tables of ``(arguments, exception, message substring)``; every bad
value must raise a specific exception whose message names the parameter.  Parameters are
checked both through the constructor and through the property setter (a failed set must
leave the old value in place).  ``BasicProperties`` is a plain record, as in pika: its
values are checked when it is encoded, which ``basic_publish`` does before it queues any
byte (``tests/integration/test_bad_input.py`` checks that end).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from amqp_core import exceptions, spec
from amqp_core.credentials import PlainCredentials
from amqp_core.parameters import ConnectionParameters, URLParameters

LONG = "x" * 256

#: (parameter, value, exception, substring of the message)
PARAMETERS: list[tuple[str, Any, type[BaseException], str]] = [
    ("host", 1, TypeError, "host"),
    ("host", None, TypeError, "host"),
    ("host", "", ValueError, "host"),
    ("port", "http", TypeError, "port"),
    ("port", 1.5, TypeError, "port"),
    ("port", True, TypeError, "port"),
    ("port", 0, ValueError, "port"),
    ("port", 65536, ValueError, "port"),
    ("virtual_host", 1, TypeError, "virtual_host"),
    ("virtual_host", None, TypeError, "virtual_host"),
    ("virtual_host", LONG, ValueError, "virtual_host"),
    ("credentials", "guest", TypeError, "credentials"),
    ("credentials", ("guest", "guest"), TypeError, "credentials"),
    ("channel_max", "1", TypeError, "channel_max"),
    ("channel_max", 1.5, TypeError, "channel_max"),
    ("channel_max", 0, ValueError, "channel_max"),
    ("channel_max", 65536, ValueError, "channel_max"),
    ("frame_max", "x", TypeError, "frame_max"),
    ("frame_max", 100, ValueError, "frame_max"),
    ("frame_max", 2**31, ValueError, "frame_max"),
    ("heartbeat", "x", TypeError, "heartbeat"),
    ("heartbeat", 1.5, TypeError, "heartbeat"),
    ("heartbeat", -1, ValueError, "heartbeat"),
    ("heartbeat", 65536, ValueError, "heartbeat"),
    ("ssl_options", "x", TypeError, "ssl_options"),
    ("ssl_options", True, TypeError, "ssl_options"),
    ("connection_attempts", "3", TypeError, "connection_attempts"),
    ("connection_attempts", None, TypeError, "connection_attempts"),
    ("connection_attempts", 0, ValueError, "connection_attempts"),
    ("retry_delay", "x", TypeError, "retry_delay"),
    ("retry_delay", -1, ValueError, "retry_delay"),
    ("retry_delay", math.nan, ValueError, "retry_delay"),
    ("socket_timeout", "x", TypeError, "socket_timeout"),
    ("socket_timeout", 0, ValueError, "socket_timeout"),
    ("socket_timeout", -1, ValueError, "socket_timeout"),
    ("socket_timeout", math.inf, ValueError, "socket_timeout"),
    ("stack_timeout", "1", TypeError, "stack_timeout"),
    ("stack_timeout", 0, ValueError, "stack_timeout"),
    ("locale", 1, TypeError, "locale"),
    ("locale", None, TypeError, "locale"),
    ("locale", LONG, ValueError, "locale"),
    ("blocked_connection_timeout", "x", TypeError, "blocked_connection_timeout"),
    ("blocked_connection_timeout", -1, ValueError, "blocked_connection_timeout"),
    ("client_properties", [1], TypeError, "client_properties"),
    ("client_properties", "x", TypeError, "client_properties"),
    ("client_properties", {"x": object()}, TypeError, "client_properties"),
    ("client_properties", {1: "x"}, TypeError, "client_properties"),
    ("tcp_options", 1, TypeError, "tcp_options"),
    ("tcp_options", [1], TypeError, "tcp_options"),
    ("tcp_options", {"TCP_KEEPIDLE": "x"}, TypeError, "tcp_options"),
    ("tcp_options", {"NOPE": 1}, ValueError, "tcp_options"),
]


def _id(row: tuple[Any, ...]) -> str:
    return f"{row[0]}={row[1]!r}"[:40]


@pytest.mark.parametrize(("name", "value", "exception", "match"), PARAMETERS,
                         ids=[_id(row) for row in PARAMETERS])
def test_connection_parameters_constructor(name: str, value: Any,
                                           exception: type[BaseException], match: str) -> None:
    with pytest.raises(exception, match=match):
        ConnectionParameters(**{name: value})


@pytest.mark.parametrize(("name", "value", "exception", "match"), PARAMETERS,
                         ids=[_id(row) for row in PARAMETERS])
def test_connection_parameters_setter(name: str, value: Any,
                                      exception: type[BaseException], match: str) -> None:
    parameters = ConnectionParameters()
    before = getattr(parameters, name)
    with pytest.raises(exception, match=match):
        setattr(parameters, name, value)
    assert getattr(parameters, name) == before, "a refused value was stored"


def test_connection_parameters_unknown_keyword() -> None:
    with pytest.raises(TypeError, match="hostname"):
        ConnectionParameters(hostname="localhost")  # type: ignore[call-arg]


def test_pika_compatible_values_still_accepted() -> None:
    parameters = ConnectionParameters(port="5673", client_properties={  # type: ignore[arg-type]
        "connection_name": "x", "capabilities": {"basic.nack": True}, "n": 1})
    assert parameters.port == 5673
    assert parameters.client_properties is not None


#: (url, exception, substring of the message)
URLS: list[tuple[Any, type[BaseException], str]] = [
    (1, TypeError, "url"),
    (None, TypeError, "url"),
    (b"amqp://localhost/", TypeError, "url"),
    ("http://localhost/", ValueError, "scheme"),
    ("", ValueError, "scheme"),
    ("amqp://[::1/", ValueError, "url"),
    ("amqp://h:port/", ValueError, "port"),
    ("amqp://h:0/", ValueError, "port"),
    ("amqp://h:70000/", ValueError, "port"),
    ("amqp://h/?unknown=1", ValueError, "unknown"),
    ("amqp://h/?heartbeat=abc", ValueError, "heartbeat"),
    ("amqp://h/?heartbeat=-1", ValueError, "heartbeat"),
    ("amqp://h/?channel_max=0", ValueError, "channel_max"),
    ("amqp://h/?frame_max=1", ValueError, "frame_max"),
    ("amqp://h/?connection_attempts=0", ValueError, "connection_attempts"),
    ("amqp://h/?retry_delay=x", ValueError, "retry_delay"),
    ("amqp://h/?socket_timeout=-1", ValueError, "socket_timeout"),
    ("amqp://h/?stack_timeout=0", ValueError, "stack_timeout"),
    ("amqp://h/?blocked_connection_timeout=-2", ValueError, "blocked_connection_timeout"),
    ("amqp://h/?client_properties=[1]", ValueError, "client_properties"),
    ("amqp://h/?tcp_options=1", ValueError, "tcp_options"),
    ("amqp://h/?ssl_options=x", ValueError, "ssl_options"),
    ("amqp://h/?auth_mechanism=x", ValueError, "auth_mechanism"),
    ("amqp://h/?cacertfile=/nonexistent", ValueError, "cacertfile"),
]


@pytest.mark.parametrize(("url", "exception", "match"), URLS, ids=[repr(r[0])[:40] for r in URLS])
def test_url_parameters(url: Any, exception: type[BaseException], match: str) -> None:
    with pytest.raises(exception, match=match):
        URLParameters(url)


#: (args, kwargs, exception, substring of the message)
CREDENTIALS: list[tuple[tuple[Any, ...], dict[str, Any], type[BaseException], str]] = [
    ((1, "p"), {}, TypeError, "username"),
    ((None, "p"), {}, TypeError, "username"),
    ((b"u", "p"), {}, TypeError, "username"),
    (("u", None), {}, TypeError, "password"),
    (("u", b"p"), {}, TypeError, "password"),
    (("u", 1), {}, TypeError, "password"),
    (("u\0", "p"), {}, ValueError, "username"),
    (("u", "p\0"), {}, ValueError, "password"),
    (("u", "p"), {"erase_on_connect": "yes"}, TypeError, "erase_on_connect"),
    (("u", "p"), {"erase_on_connect": None}, TypeError, "erase_on_connect"),
]


@pytest.mark.parametrize(("args", "kwargs", "exception", "match"), CREDENTIALS,
                         ids=[f"{r[0]!r}{r[1]!r}"[:40] for r in CREDENTIALS])
def test_plain_credentials(args: tuple[Any, ...], kwargs: dict[str, Any],
                           exception: type[BaseException], match: str) -> None:
    with pytest.raises(exception, match=match):
        PlainCredentials(*args, **kwargs)


#: (property, value, exception, substring of the message)
PROPERTIES: list[tuple[str, Any, Any, str]] = [
    *[(name, 1, TypeError, name) for name in (
        "content_type", "content_encoding", "correlation_id", "reply_to", "expiration",
        "message_id", "type", "user_id", "app_id", "cluster_id")],
    ("expiration", 60, TypeError, "expiration"),
    ("message_id", LONG, exceptions.ShortStringTooLong, "message_id"),
    ("delivery_mode", "2", TypeError, "delivery_mode"),
    ("delivery_mode", 256, ValueError, "delivery_mode"),
    ("priority", "1", TypeError, "priority"),
    ("priority", -1, ValueError, "priority"),
    ("priority", 256, ValueError, "priority"),
    ("timestamp", "now", TypeError, "timestamp"),
    ("timestamp", 1.5, TypeError, "timestamp"),
    ("timestamp", -1, ValueError, "timestamp"),
    ("headers", [1], TypeError, "headers"),
    ("headers", "x", TypeError, "headers"),
    ("headers", {"x": object()}, exceptions.UnsupportedAMQPFieldException, "x"),
    ("headers", {1: "x"}, exceptions.UnsupportedAMQPFieldException, "key"),
]


@pytest.mark.parametrize(("name", "value", "exception", "match"), PROPERTIES,
                         ids=[_id(row) for row in PROPERTIES])
def test_basic_properties_refused_when_encoded(name: str, value: Any, exception: Any,
                                               match: str) -> None:
    properties = spec.BasicProperties(**{name: value})
    with pytest.raises(exception, match=match):
        properties.encode()


def test_basic_properties_unknown_keyword() -> None:
    with pytest.raises(TypeError, match="nope"):
        spec.BasicProperties(nope=1)  # type: ignore[call-arg]
