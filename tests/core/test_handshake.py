"""The handshake's negotiation rules, without a connection (protocol/handshake.py)."""

from __future__ import annotations

from typing import Any

import pytest

from amqp_core import spec
from amqp_core.credentials import PlainCredentials
from amqp_core.exceptions import (
    IncompatibleProtocolError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    RemoteProtocolError,
)
from amqp_core.protocol.handshake import Handshake, handshake_error, negotiate
from amqp_core.protocol.states import ConnectionState


def make(**overrides: Any) -> Handshake:
    settings: dict[str, Any] = {
        "credentials": PlainCredentials("u", "p"), "virtual_host": "/v",
        "client_properties": {"product": "x"}, "channel_max": 2047, "frame_max": 131072,
        "heartbeat": None, "locale": "en_US",
    }
    settings.update(overrides)
    return Handshake(**settings)


def start(major: int = 0, minor: int = 9, mechanisms: bytes = b"PLAIN AMQPLAIN") -> Any:
    return spec.Connection.Start(version_major=major, version_minor=minor,
                                 server_properties={}, mechanisms=mechanisms, locales=b"en_US")


@pytest.mark.parametrize(("client", "server", "expected"), [
    (0, 0, 0), (0, 10, 10), (10, 0, 10), (10, 20, 10), (30, 20, 20), (None, 5, 5),
])
def test_zero_means_no_limit_else_the_smaller(client: Any, server: Any, expected: int) -> None:
    assert negotiate(client, server) == expected


def test_start_ok_carries_mechanism_response_properties_and_locale() -> None:
    reply = make().start_ok(start())
    assert isinstance(reply, spec.Connection.StartOk)
    assert (reply.mechanism, reply.response, reply.locale) == ("PLAIN", b"\x00u\x00p", "en_US")
    assert reply.client_properties == {"product": "x"}


def test_secure_ok_repeats_the_response() -> None:
    handshake = make()
    handshake.start_ok(start())
    reply = handshake.secure_ok()
    assert isinstance(reply, spec.Connection.SecureOk) and reply.response == b"\x00u\x00p"


def test_no_common_mechanism_is_none_and_another_version_is_540() -> None:
    assert make().start_ok(start(mechanisms=b"EXTERNAL")) is None
    with pytest.raises(RemoteProtocolError) as info:
        make().start_ok(start(major=1, minor=0))
    assert info.value.reply_code == spec.NOT_IMPLEMENTED


def test_tune_negotiates_and_answers_tune_ok_then_open() -> None:
    tuned = make().tune(spec.Connection.Tune(channel_max=0, frame_max=65536, heartbeat=60))
    assert (tuned.channel_max, tuned.frame_max, tuned.heartbeat) == (2047, 65536, 60)
    assert (tuned.tune_ok.channel_max, tuned.tune_ok.frame_max, tuned.tune_ok.heartbeat) == (
        2047, 65536, 60)
    assert tuned.open.virtual_host == "/v"


@pytest.mark.parametrize(("setting", "expected"), [(None, 60), (0, 0), (5, 5),
                                                   (lambda proposal: proposal // 2, 30)])
def test_heartbeat_setting(setting: Any, expected: int) -> None:
    tune = spec.Connection.Tune(channel_max=0, frame_max=0, heartbeat=60)
    assert make(heartbeat=setting).tune(tune).heartbeat == expected


def test_bad_heartbeat_callable_and_tiny_frame_max_are_refused() -> None:
    tune = spec.Connection.Tune(channel_max=0, frame_max=0, heartbeat=60)
    with pytest.raises(TypeError, match="heartbeat callable"):
        make(heartbeat=lambda proposal: "soon").tune(tune)
    with pytest.raises(RemoteProtocolError) as info:
        make().tune(spec.Connection.Tune(channel_max=0, frame_max=1024, heartbeat=0))
    assert info.value.reply_code == spec.NOT_ALLOWED


@pytest.mark.parametrize(("state", "kind"), [
    (ConnectionState.AWAIT_TUNE, ProbableAuthenticationError),
    (ConnectionState.AWAIT_OPEN_OK, ProbableAccessDeniedError),
    (ConnectionState.AWAIT_START, IncompatibleProtocolError),
])
def test_a_close_during_the_handshake_names_the_stage(state: ConnectionState, kind: type) -> None:
    error = handshake_error(state, 530, "NOT_ALLOWED - vhost /v not found")
    assert type(error) is kind and "(530) NOT_ALLOWED" in str(error)
