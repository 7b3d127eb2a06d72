"""Bad input from the caller is refused with a specific exception before anything is sent.

Theory of operation: one table (:data:`CASES`) of ``(method, arguments, exception,
message substring)`` drives every channel method of both APIs: the callback ``Channel``
(through the in-process loop adapters: select, and asyncio / tornado when installed; each
on one shared connection to the session broker) and ``BlockingChannel``.  Valid values
fill the arguments a case does not name (:data:`DEFAULTS`), so each case makes exactly one
argument wrong.  :class:`Outbound` counts the bytes the protocol core hands to the
transport plus those still queued in it: the count must not move during a refused call.
Then the states: closed channels (``ChannelWrongStateError``), closed connections
(``ConnectionWrongStateError``), channel numbers out of range and a reused consumer tag.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from amqp_core import exceptions, spec
from amqp_core.adapters.blocking_connection import BlockingConnection
from amqp_core.parameters import URLParameters
from amqp_core.plugins import installed_adapters
from amqp_core.testing.client import KitClient, unique_name
from amqp_core.testing.harness import make_harness

pytestmark = pytest.mark.timeout(120)


def _noop(*_args: Any) -> None:
    """A valid callback."""


@dataclasses.dataclass(frozen=True)
class Case:
    """One refused call: ``channel.<method>(**DEFAULTS[method] | kwargs)``.

    :param api: ``"both"``, ``"callback"`` (Channel only) or ``"blocking"`` (BlockingChannel)
    """

    method: str
    kwargs: dict[str, Any]
    exception: type[BaseException] | tuple[type[BaseException], ...]
    match: str
    api: str = "both"

    def id(self) -> str:
        shown = ",".join(f"{k}={v!r}"[:28] for k, v in self.kwargs.items())
        return f"{self.method}({shown})"


#: Valid values for the arguments a case does not make wrong (both APIs).
DEFAULTS: dict[str, dict[str, Any]] = {
    "basic_publish": {"exchange": "", "routing_key": "kit-bad-input", "body": b"x"},
    "basic_consume": {"queue": "kit-bad-input", "on_message_callback": _noop},
    "basic_get": {"queue": "kit-bad-input"},
    "basic_cancel": {"consumer_tag": "kit-bad-input"},
    "queue_declare": {"queue": "kit-bad-input"},
    "queue_bind": {"queue": "kit-bad-input", "exchange": "amq.direct"},
    "queue_unbind": {"queue": "kit-bad-input", "exchange": "amq.direct"},
    "queue_purge": {"queue": "kit-bad-input"},
    "queue_delete": {"queue": "kit-bad-input"},
    "exchange_declare": {"exchange": "kit-bad-input"},
    "exchange_bind": {"destination": "kit-bad-input", "source": "amq.direct"},
    "exchange_unbind": {"destination": "kit-bad-input", "source": "amq.direct"},
    "exchange_delete": {"exchange": "kit-bad-input"},
}
#: The callback API's extra required arguments.
CALLBACK_DEFAULTS: dict[str, dict[str, Any]] = {
    "basic_get": {"callback": _noop},
    "confirm_delivery": {"ack_nack_callback": _noop},
}

LONG = "x" * 256
#: A short string over 255 bytes: pika's ShortStringTooLong (or a ValueError).
TOO_LONG = (ValueError, exceptions.ShortStringTooLong)
#: A field-table value of no AMQP type: pika's UnsupportedAMQPFieldException (or a TypeError).
NOT_ENCODABLE = (TypeError, exceptions.UnsupportedAMQPFieldException)
NOT_STR = [1, b"bytes", None]


def _cases() -> list[Case]:
    cases: list[Case] = []
    add = cases.append
    # bodies: str is encoded (pika), bytes-likes are accepted, nothing else
    for body in (1, 1.5, {"a": 1}, None, ["x"], object()):
        add(Case("basic_publish", {"body": body}, TypeError, "body"))
    for name in ("exchange", "routing_key"):
        for value in (1, None, b"x"):
            add(Case("basic_publish", {name: value}, TypeError, name))
        add(Case("basic_publish", {name: LONG}, TOO_LONG, name))
    add(Case("basic_publish", {"properties": {"content_type": "x"}}, TypeError, "properties"))
    bad_properties: list[tuple[str, Any]] = [
        ("content_type", 5), ("delivery_mode", "2"), ("delivery_mode", 256), ("priority", -1),
        ("headers", [1]), ("timestamp", "now"), ("message_id", LONG), ("expiration", 60),
        ("app_id", 1)]
    for field, value in bad_properties:
        add(Case("basic_publish", {"properties": spec.BasicProperties(**{field: value})},
                 (TypeError, *TOO_LONG), field))
    for flag in ("mandatory",):
        add(Case("basic_publish", {flag: "yes"}, TypeError, flag))
    # consumers
    for value in (1, None, b"q"):
        add(Case("basic_consume", {"queue": value}, TypeError, "queue"))
    add(Case("basic_consume", {"queue": LONG}, TOO_LONG, "queue"))
    add(Case("basic_consume", {"on_message_callback": "f"}, TypeError, "on_message_callback"))
    add(Case("basic_consume", {"on_message_callback": None}, TypeError, "on_message_callback"))
    add(Case("basic_consume", {"consumer_tag": 5}, TypeError, "consumer_tag"))
    add(Case("basic_consume", {"consumer_tag": LONG}, TOO_LONG, "consumer_tag"))
    add(Case("basic_consume", {"arguments": [("x", 1)]}, TypeError, "arguments"))
    add(Case("basic_consume", {"arguments": {"x": object()}}, NOT_ENCODABLE, "x"))
    for flag in ("auto_ack", "exclusive"):
        add(Case("basic_consume", {flag: "yes"}, TypeError, flag))
    add(Case("basic_consume", {"callback": "f"}, TypeError, "callback", api="callback"))
    for value in (1, None):
        add(Case("basic_cancel", {"consumer_tag": value}, TypeError, "consumer_tag"))
    add(Case("basic_cancel", {"callback": 1}, TypeError, "callback", api="callback"))
    # acks
    bad_tags: list[tuple[Any, type[BaseException]]] = [
        ("1", TypeError), (1.0, TypeError), (None, TypeError), (True, TypeError),
        (-1, ValueError), (2**64, ValueError)]
    for method in ("basic_ack", "basic_nack", "basic_reject"):
        for value, error in bad_tags:
            add(Case(method, {"delivery_tag": value}, error, "delivery_tag"))
    add(Case("basic_ack", {"multiple": "yes"}, TypeError, "multiple"))
    add(Case("basic_nack", {"multiple": "yes"}, TypeError, "multiple"))
    add(Case("basic_nack", {"requeue": "yes"}, TypeError, "requeue"))
    add(Case("basic_reject", {"requeue": "yes"}, TypeError, "requeue"))
    # qos, get, recover
    for name, big in (("prefetch_count", 65536), ("prefetch_size", 2**32)):
        bad_sizes: list[tuple[Any, type[BaseException]]] = [
            ("1", TypeError), (1.5, TypeError), (None, TypeError), (-1, ValueError),
            (big, ValueError)]
        for value, error in bad_sizes:
            add(Case("basic_qos", {name: value}, error, name))
    add(Case("basic_qos", {"global_qos": "yes"}, TypeError, "global_qos"))
    add(Case("basic_qos", {"callback": 1}, TypeError, "callback", api="callback"))
    for value in (1, None):
        add(Case("basic_get", {"queue": value}, TypeError, "queue"))
    add(Case("basic_get", {"queue": LONG}, TOO_LONG, "queue"))
    add(Case("basic_get", {"auto_ack": "yes"}, TypeError, "auto_ack"))
    add(Case("basic_get", {"callback": None}, TypeError, "callback", api="callback"))
    add(Case("basic_get", {"callback": "f"}, TypeError, "callback", api="callback"))
    add(Case("basic_recover", {"requeue": "yes"}, TypeError, "requeue"))
    add(Case("basic_recover", {"callback": 1}, TypeError, "callback", api="callback"))
    # confirms, tx, flow
    add(Case("confirm_delivery", {"ack_nack_callback": None}, TypeError, "ack_nack_callback",
             api="callback"))
    add(Case("confirm_delivery", {"ack_nack_callback": 1}, TypeError, "ack_nack_callback",
             api="callback"))
    add(Case("confirm_delivery", {"callback": 1}, TypeError, "callback", api="callback"))
    for method in ("tx_select", "tx_commit", "tx_rollback"):
        add(Case(method, {"callback": 1}, TypeError, "callback", api="callback"))
    add(Case("flow", {"active": "yes"}, TypeError, "active"))
    add(Case("flow", {"active": True, "callback": 1}, TypeError, "callback", api="callback"))
    add(Case("close", {"reply_code": "200"}, TypeError, "reply_code"))
    add(Case("close", {"reply_text": 1}, TypeError, "reply_text"))
    # queues
    for method in ("queue_declare", "queue_bind", "queue_unbind", "queue_purge", "queue_delete"):
        for value in (1, b"q"):
            add(Case(method, {"queue": value}, TypeError, "queue"))
        add(Case(method, {"queue": LONG}, TOO_LONG, "queue"))
        add(Case(method, {"callback": 1}, TypeError, "callback", api="callback"))
    add(Case("queue_declare", {"queue": None}, TypeError, "queue"))
    for flag in ("passive", "durable", "exclusive", "auto_delete"):
        add(Case("queue_declare", {flag: "yes"}, TypeError, flag))
    for flag in ("if_unused", "if_empty"):
        add(Case("queue_delete", {flag: "yes"}, TypeError, flag))
    for method in ("queue_declare", "queue_bind", "queue_unbind"):
        add(Case(method, {"arguments": "x"}, TypeError, "arguments"))
        add(Case(method, {"arguments": {"x-max-length": object()}}, NOT_ENCODABLE,
                 "x-max-length"))
    for method in ("queue_bind", "queue_unbind"):
        add(Case(method, {"exchange": 1}, TypeError, "exchange"))
        add(Case(method, {"exchange": LONG}, TOO_LONG, "exchange"))
        add(Case(method, {"routing_key": 1}, TypeError, "routing_key"))
        add(Case(method, {"routing_key": LONG}, TOO_LONG, "routing_key"))
    add(Case("queue_bind", {"exchange": None}, TypeError, "exchange"))
    # exchanges
    for method, name in (("exchange_declare", "exchange"), ("exchange_delete", "exchange"),
                         ("exchange_bind", "destination"), ("exchange_bind", "source"),
                         ("exchange_unbind", "destination"), ("exchange_unbind", "source")):
        add(Case(method, {name: 1}, TypeError, name))
        add(Case(method, {name: LONG}, TOO_LONG, name))
    for method in ("exchange_declare", "exchange_delete", "exchange_bind", "exchange_unbind"):
        add(Case(method, {"callback": 1}, TypeError, "callback", api="callback"))
    add(Case("exchange_declare", {"exchange": None}, TypeError, "exchange"))
    add(Case("exchange_declare", {"exchange_type": 5}, TypeError, "exchange_type"))
    add(Case("exchange_declare", {"exchange_type": None}, TypeError, "exchange_type"))
    # named after the wire field: "Exchange.Declare.type: 'xxx...'"
    add(Case("exchange_declare", {"exchange_type": LONG}, TOO_LONG, "type"))
    for flag in ("passive", "durable", "auto_delete", "internal"):
        add(Case("exchange_declare", {flag: "yes"}, TypeError, flag))
    add(Case("exchange_delete", {"if_unused": "yes"}, TypeError, "if_unused"))
    for method in ("exchange_declare", "exchange_bind", "exchange_unbind"):
        add(Case(method, {"arguments": 1}, TypeError, "arguments"))
    for method in ("exchange_bind", "exchange_unbind"):
        add(Case(method, {"routing_key": 1}, TypeError, "routing_key"))
        add(Case(method, {"routing_key": LONG}, TOO_LONG, "routing_key"))
    return cases


CASES = _cases()
CALLBACK_CASES = [case for case in CASES if case.api != "blocking"]
BLOCKING_CASES = [case for case in CASES if case.api != "callback"]
#: In-process loop adapters (gevent and Twisted change the process: their kit runs apart).
LOOP_ADAPTERS = [name for name in ("select", "asyncio", "tornado")
                 if name == "select" or name in {info.name for info in installed_adapters()}]


def _call_kwargs(case: Case, api: str) -> dict[str, Any]:
    kwargs = dict(DEFAULTS.get(case.method, {}))
    if api == "callback":
        kwargs.update(CALLBACK_DEFAULTS.get(case.method, {}))
    kwargs.update(case.kwargs)
    return kwargs


class Outbound:
    """Counts every byte the protocol core queued: handed to the transport or still queued.

    :param core: a :class:`~amqp_core.protocol.connection.CoreConnection`
    """

    def __init__(self, core: Any) -> None:
        self.core = core
        self.taken = 0
        take = core.data_to_send

        def counting() -> bytes:
            data: bytes = take()
            self.taken += len(data)
            return data

        core.data_to_send = counting

    @property
    def total(self) -> int:
        """Bytes produced so far."""
        return self.taken + int(self.core.bytes_to_send)

    @contextlib.contextmanager
    def nothing_sent(self) -> Iterator[None]:
        """Assert that the block produces no bytes."""
        before = self.total
        yield
        assert self.total == before, f"{self.total - before} bytes were queued or sent"


class CallbackSession:
    """One connection of a loop adapter to the session broker, and a reusable channel."""

    def __init__(self, adapter: str, url: str) -> None:
        self.client = KitClient(make_harness(adapter))
        params = URLParameters(url)
        params.connection_attempts = 1
        self.params = params
        self.connection = self.client.connect(params)
        self.outbound = Outbound(self.connection._core)
        self._channel: Any = None

    def channel(self) -> Any:
        """An open channel (a new one when the previous one closed)."""
        if self._channel is None or not self._channel.is_open:
            self._channel = self.client.channel(self.connection)
        return self._channel

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            self.client.harness.close()


class BlockingSession:
    """One ``BlockingConnection`` to the session broker, and a reusable channel."""

    def __init__(self, url: str) -> None:
        params = URLParameters(url)
        params.connection_attempts = 1
        self.params = params
        self.connection = BlockingConnection(params)
        self.outbound = Outbound(self.connection._core)
        self._channel: Any = None

    def channel(self) -> Any:
        if self._channel is None or not self._channel.is_open:
            self._channel = self.connection.channel()
        return self._channel

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


@pytest.fixture(scope="module", params=LOOP_ADAPTERS)
def callback_session(request: pytest.FixtureRequest, broker: Any) -> Iterator[CallbackSession]:
    session = CallbackSession(request.param, broker.url)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="module")
def blocking_session(broker: Any) -> Iterator[BlockingSession]:
    session = BlockingSession(broker.url)
    try:
        yield session
    finally:
        session.close()


def _refused(session: Any, call: Callable[[], Any], exception: Any, match: str) -> BaseException:
    with session.outbound.nothing_sent(), pytest.raises(exception) as info:
        call()
    error: BaseException = info.value
    assert match in str(error), f"{error!r} does not name {match!r}"
    return error


# ---------------------------------------------------------------- the table


@pytest.mark.parametrize("case", CALLBACK_CASES, ids=[case.id() for case in CALLBACK_CASES])
def test_channel_refuses(case: Case, callback_session: CallbackSession) -> None:
    channel = callback_session.channel()
    method = getattr(channel, case.method)
    _refused(callback_session, lambda: method(**_call_kwargs(case, "callback")), case.exception,
             case.match)
    assert channel.is_open and callback_session.connection.is_open


@pytest.mark.parametrize("case", BLOCKING_CASES, ids=[case.id() for case in BLOCKING_CASES])
def test_blocking_channel_refuses(case: Case, blocking_session: BlockingSession) -> None:
    channel = blocking_session.channel()
    method = getattr(channel, case.method)
    _refused(blocking_session, lambda: method(**_call_kwargs(case, "blocking")), case.exception,
             case.match)
    assert channel.is_open and blocking_session.connection.is_open


def test_str_body_is_sent_utf8(blocking_session: BlockingSession) -> None:
    channel = blocking_session.channel()
    queue = channel.queue_declare(unique_name("kit-bad-input"), exclusive=True).method.queue
    channel.basic_publish("", queue, "héllo")
    for _ in range(100):
        method, _properties, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            break
        blocking_session.connection.sleep(0.02)
    assert body == "héllo".encode()


# ---------------------------------------------------------------- states


#: Calls on a closed channel (both APIs): method, keyword arguments.
STATE_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("basic_publish", {}), ("basic_ack", {"delivery_tag": 1}), ("basic_nack", {"delivery_tag": 1}),
    ("basic_reject", {"delivery_tag": 1}), ("basic_qos", {"prefetch_count": 1}),
    ("basic_consume", {}), ("basic_get", {}), ("basic_recover", {}),
    ("queue_declare", {}), ("queue_bind", {}), ("queue_unbind", {}), ("queue_purge", {}),
    ("queue_delete", {}), ("exchange_declare", {}), ("exchange_bind", {}),
    ("exchange_unbind", {}), ("exchange_delete", {}), ("tx_select", {}), ("tx_commit", {}),
    ("tx_rollback", {}), ("flow", {"active": True}), ("basic_cancel", {}),
    ("confirm_delivery", {}), ("close", {}),
]
#: With a callback where the callback API needs one for the request to expect a reply.
_REPLY_WANTED = {"queue_declare", "queue_bind", "queue_unbind", "queue_purge", "queue_delete",
                 "exchange_declare", "exchange_bind", "exchange_unbind", "exchange_delete"}


def _state_kwargs(method: str, extra: dict[str, Any], api: str) -> dict[str, Any]:
    kwargs = dict(DEFAULTS.get(method, {}))
    if api == "callback":
        kwargs.update(CALLBACK_DEFAULTS.get(method, {}))
        if method in _REPLY_WANTED:
            kwargs["callback"] = _noop
    kwargs.update(extra)
    return kwargs


@pytest.mark.parametrize(("method", "extra"), STATE_CALLS, ids=[m for m, _ in STATE_CALLS])
def test_closed_channel_refuses(method: str, extra: dict[str, Any],
                                callback_session: CallbackSession) -> None:
    client = callback_session.client
    channel = client.channel(callback_session.connection)
    channel.close()
    client.wait(lambda: channel.is_closed)
    _refused(callback_session, lambda: getattr(channel, method)(
        **_state_kwargs(method, extra, "callback")), exceptions.ChannelWrongStateError, "")


#: pika's BlockingChannel.basic_cancel of an unknown tag only logs (tested below)
BLOCKING_STATE_CALLS = [(m, extra) for m, extra in STATE_CALLS if m != "basic_cancel"]


@pytest.mark.parametrize(("method", "extra"), BLOCKING_STATE_CALLS,
                         ids=[m for m, _ in BLOCKING_STATE_CALLS])
def test_blocking_closed_channel_refuses(method: str, extra: dict[str, Any],
                                         blocking_session: BlockingSession) -> None:
    channel = blocking_session.connection.channel()
    channel.close()
    _refused(blocking_session, lambda: getattr(channel, method)(
        **_state_kwargs(method, extra, "blocking")), exceptions.ChannelWrongStateError, "")


def test_blocking_cancel_on_a_closed_channel_only_logs(
        blocking_session: BlockingSession, caplog: pytest.LogCaptureFixture) -> None:
    channel = blocking_session.connection.channel()
    channel.close()
    with blocking_session.outbound.nothing_sent(), caplog.at_level("WARNING"):
        assert channel.basic_cancel("no-such-consumer") == []
    assert "no-such-consumer" in caplog.text


def test_closing_channel_refuses_calls(callback_session: CallbackSession) -> None:
    client = callback_session.client
    channel = client.channel(callback_session.connection)
    channel.close()
    assert channel.is_closing
    _refused(callback_session, lambda: channel.basic_publish("", "q", b"x"),
             exceptions.ChannelWrongStateError, "")
    _refused(callback_session, channel.close, exceptions.ChannelWrongStateError, "")
    client.wait(lambda: channel.is_closed)


def test_closed_connection_refuses(broker: Any) -> None:
    session = CallbackSession("select", broker.url)
    try:
        connection = session.connection
        channel = session.channel()
        session.client.close_connection(connection)
        for call in (connection.channel, connection.close,
                     lambda: connection.update_secret("s", "r")):
            _refused(session, call, exceptions.ConnectionWrongStateError, "")
        _refused(session, lambda: channel.basic_publish("", "q", b"x"),
                 exceptions.ChannelWrongStateError, "")
    finally:
        session.close()


def test_blocking_closed_connection_refuses(broker: Any) -> None:
    session = BlockingSession(broker.url)
    connection = session.connection
    channel = session.channel()
    connection.close()
    for call in (connection.channel, connection.close):
        _refused(session, call, exceptions.ConnectionWrongStateError, "")
    _refused(session, lambda: channel.basic_publish("", "q", b"x"),
             exceptions.ChannelWrongStateError, "")
    _refused(session, lambda: channel.queue_declare("q"), exceptions.ChannelWrongStateError, "")


NUMBERS: list[tuple[Any, type[BaseException], str]] = [
    (-1, exceptions.InvalidChannelNumber, "-1"),
    (0, exceptions.InvalidChannelNumber, "0"),
    (65536, exceptions.InvalidChannelNumber, "65536"),
    (2048, exceptions.InvalidChannelNumber, "2048"),  # over the broker's channel_max (2047)
    ("1", TypeError, "channel_number"),
    (1.0, TypeError, "channel_number"),
    (True, TypeError, "channel_number"),
]


@pytest.mark.parametrize(("number", "exception", "match"), NUMBERS)
def test_channel_number_out_of_range(number: Any, exception: type[BaseException], match: str,
                                     callback_session: CallbackSession) -> None:
    assert callback_session.connection.channel_max < 2048
    _refused(callback_session, lambda: callback_session.connection.channel(number), exception,
             match)


@pytest.mark.parametrize(("number", "exception", "match"), NUMBERS)
def test_blocking_channel_number_out_of_range(number: Any, exception: type[BaseException],
                                              match: str,
                                              blocking_session: BlockingSession) -> None:
    _refused(blocking_session, lambda: blocking_session.connection.channel(number), exception,
             match)


def test_channel_number_in_use(callback_session: CallbackSession) -> None:
    channel = callback_session.channel()
    _refused(callback_session, lambda: callback_session.connection.channel(
        channel.channel_number), exceptions.InvalidChannelNumber, str(channel.channel_number))


def test_blocking_channel_number_in_use(blocking_session: BlockingSession) -> None:
    channel = blocking_session.channel()
    _refused(blocking_session, lambda: blocking_session.connection.channel(
        channel.channel_number), exceptions.InvalidChannelNumber, str(channel.channel_number))


def test_reused_consumer_tag(callback_session: CallbackSession) -> None:
    client = callback_session.client
    channel = callback_session.channel()
    queue = unique_name("kit-bad-input")
    client.call(channel.queue_declare, queue, exclusive=True)
    tag = unique_name("ctag")
    client.call(channel.basic_consume, queue, _noop, consumer_tag=tag)
    _refused(callback_session, lambda: channel.basic_consume(queue, _noop, consumer_tag=tag),
             exceptions.DuplicateConsumerTag, tag)
    client.call(channel.basic_cancel, tag)


def test_blocking_reused_consumer_tag(blocking_session: BlockingSession) -> None:
    channel = blocking_session.channel()
    queue = channel.queue_declare(unique_name("kit-bad-input"), exclusive=True).method.queue
    tag = channel.basic_consume(queue, _noop, consumer_tag=unique_name("ctag"))
    _refused(blocking_session, lambda: channel.basic_consume(queue, _noop, consumer_tag=tag),
             exceptions.DuplicateConsumerTag, tag)
    channel.basic_cancel(tag)
