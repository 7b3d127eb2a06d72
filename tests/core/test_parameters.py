"""Connection parameters, URL parsing, SSLOptions and TCP socket options.

Expected defaults are pika 1.3.2's, written out by hand.
"""

from __future__ import annotations

import copy
import socket
import ssl
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from amqp_core.credentials import ExternalCredentials, PlainCredentials
from amqp_core.parameters import (
    ConnectionParameters,
    Parameters,
    SSLOptions,
    URLParameters,
)
from amqp_core.tcp_socket_opts import apply_tcp_options, set_nodelay, validate_tcp_options

SECRET = "s3cr3t-Pa55"

# ---------------------------------------------------------------------------
# defaults

EXPECTED_DEFAULTS: dict[str, Any] = {
    "blocked_connection_timeout": None,
    "channel_max": 65535,
    "client_properties": None,
    "connection_attempts": 1,
    "credentials": PlainCredentials("guest", "guest"),
    "frame_max": 131072,
    "heartbeat": None,
    "host": "localhost",
    "locale": "en_US",
    "port": 5672,
    "retry_delay": 2.0,
    "socket_timeout": 10.0,
    "stack_timeout": 15.0,
    "ssl_options": None,
    "virtual_host": "/",
    "tcp_options": None,
}

EXPECTED_CONSTANTS: dict[str, Any] = {
    "DEFAULT_USERNAME": "guest",
    "DEFAULT_PASSWORD": "guest",
    "DEFAULT_BLOCKED_CONNECTION_TIMEOUT": None,
    "DEFAULT_CHANNEL_MAX": 65535,
    "DEFAULT_CLIENT_PROPERTIES": None,
    "DEFAULT_CREDENTIALS": PlainCredentials("guest", "guest"),
    "DEFAULT_CONNECTION_ATTEMPTS": 1,
    "DEFAULT_FRAME_MAX": 131072,
    "DEFAULT_HEARTBEAT_TIMEOUT": None,
    "DEFAULT_HOST": "localhost",
    "DEFAULT_LOCALE": "en_US",
    "DEFAULT_PORT": 5672,
    "DEFAULT_RETRY_DELAY": 2.0,
    "DEFAULT_SOCKET_TIMEOUT": 10.0,
    "DEFAULT_STACK_TIMEOUT": 15.0,
    "DEFAULT_SSL": False,
    "DEFAULT_SSL_OPTIONS": None,
    "DEFAULT_SSL_PORT": 5671,
    "DEFAULT_VIRTUAL_HOST": "/",
    "DEFAULT_TCP_OPTIONS": None,
}


@pytest.mark.parametrize("cls", [Parameters, ConnectionParameters])
@pytest.mark.parametrize(("name", "expected"), EXPECTED_DEFAULTS.items())
def test_default(cls: type[Parameters], name: str, expected: Any) -> None:
    value = getattr(cls(), name)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(("name", "expected"), EXPECTED_CONSTANTS.items())
def test_default_constants(name: str, expected: Any) -> None:
    assert getattr(Parameters, name) == expected
    assert getattr(ConnectionParameters, name) == expected
    assert getattr(URLParameters, name) == expected


def test_url_defaults_match() -> None:
    params = URLParameters("amqp://")
    for name, expected in EXPECTED_DEFAULTS.items():
        assert getattr(params, name) == expected, name


def test_default_credentials_are_a_copy() -> None:
    params = ConnectionParameters()
    assert params.credentials is not Parameters.DEFAULT_CREDENTIALS


def test_slots_reject_unknown_attributes() -> None:
    params = ConnectionParameters()
    with pytest.raises(AttributeError):
        params.hostname = "x"  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------
# keyword arguments


def _heartbeat_cb(connection: object, proposal: int) -> int:
    return proposal // 2


def test_every_keyword_argument() -> None:
    ssl_opts = SSLOptions(ssl.create_default_context(), "broker.example")
    creds = PlainCredentials("alice", "pw")
    params = ConnectionParameters(
        host="rabbit.example",
        port=1234,
        virtual_host="vh",
        credentials=creds,
        channel_max=10,
        frame_max=8192,
        heartbeat=_heartbeat_cb,
        ssl_options=ssl_opts,
        connection_attempts=3,
        retry_delay=0.5,
        socket_timeout=1,
        stack_timeout=2,
        locale="de_DE",
        blocked_connection_timeout=30,
        client_properties={"connection_name": "test"},
        tcp_options={"TCP_KEEPIDLE": 10},
    )
    assert params.host == "rabbit.example"
    assert params.port == 1234
    assert params.virtual_host == "vh"
    assert params.credentials == creds
    assert params.credentials is not creds  # copied, like pika
    assert params.channel_max == 10
    assert params.frame_max == 8192
    assert params.heartbeat is _heartbeat_cb
    assert params.ssl_options is ssl_opts
    assert params.connection_attempts == 3
    assert params.retry_delay == 0.5
    assert params.socket_timeout == 1.0 and isinstance(params.socket_timeout, float)
    assert params.stack_timeout == 2.0 and isinstance(params.stack_timeout, float)
    assert params.locale == "de_DE"
    assert params.blocked_connection_timeout == 30
    assert params.client_properties == {"connection_name": "test"}
    assert params.tcp_options == {"TCP_KEEPIDLE": 10}


def test_port_defaults_follow_ssl_options() -> None:
    ssl_opts = SSLOptions(ssl.create_default_context())
    assert ConnectionParameters(ssl_options=ssl_opts).port == 5671
    assert ConnectionParameters(ssl_options=ssl_opts, port=5000).port == 5000
    assert ConnectionParameters(ssl_options=None).port == 5672
    assert ConnectionParameters(port=5671).port == 5671


def test_none_disables_optional_values() -> None:
    params = ConnectionParameters(
        heartbeat=None, socket_timeout=None, stack_timeout=None, blocked_connection_timeout=None
    )
    assert params.heartbeat is None
    assert params.socket_timeout is None
    assert params.stack_timeout is None
    assert params.blocked_connection_timeout is None


def test_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="backpressure_detection"):
        ConnectionParameters(backpressure_detection=True)  # type: ignore[call-arg]


def test_client_properties_are_copied() -> None:
    props: dict[str, Any] = {"capabilities": {"x": True}}
    params = ConnectionParameters(client_properties=props)
    props["capabilities"]["x"] = False
    assert params.client_properties == {"capabilities": {"x": True}}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("frame_max", 4096),
        ("frame_max", 131072),
        ("channel_max", 1),
        ("channel_max", 65535),
        ("heartbeat", 0),
        ("heartbeat", 65535),
        ("heartbeat", _heartbeat_cb),
        ("port", 1),
        ("port", 65535),
        ("retry_delay", 0),
        ("blocked_connection_timeout", 0),
        ("virtual_host", ""),
        ("virtual_host", "x" * 255),
        ("tcp_options", {}),
        ("tcp_options", {"TCP_USER_TIMEOUT": 0}),
    ],
)
def test_edge_values_accepted(name: str, value: Any) -> None:
    params = ConnectionParameters(**{name: value})
    assert getattr(params, name) == value


def test_port_accepts_a_decimal_string_like_pika() -> None:
    assert ConnectionParameters(port="5673").port == 5673  # type: ignore[arg-type]


# (property, bad value, exception type)
INVALID: list[tuple[str, Any, type[Exception]]] = [
    ("blocked_connection_timeout", "1", TypeError),
    ("blocked_connection_timeout", -1, ValueError),
    ("blocked_connection_timeout", float("nan"), ValueError),
    ("channel_max", 0, ValueError),
    ("channel_max", 65536, ValueError),
    ("channel_max", 1.5, TypeError),
    ("channel_max", True, TypeError),
    ("client_properties", [("a", 1)], TypeError),
    ("connection_attempts", 0, ValueError),
    ("connection_attempts", "3", TypeError),
    ("credentials", ("guest", "guest"), TypeError),
    ("credentials", None, TypeError),
    ("frame_max", 4095, ValueError),
    ("frame_max", 131073, ValueError),
    ("frame_max", "131072", TypeError),
    ("heartbeat", -1, ValueError),
    ("heartbeat", 65536, ValueError),
    ("heartbeat", 1.5, TypeError),
    ("heartbeat", "60", TypeError),
    ("heartbeat", False, TypeError),
    ("host", None, TypeError),
    ("host", b"localhost", TypeError),
    ("host", "", ValueError),
    ("locale", None, TypeError),
    ("locale", "x" * 256, ValueError),
    ("port", 0, ValueError),
    ("port", 65536, ValueError),
    ("port", -1, ValueError),
    ("port", "abc", TypeError),
    ("port", 5672.0, TypeError),
    ("port", None, TypeError),
    ("port", True, TypeError),
    ("retry_delay", None, TypeError),
    ("retry_delay", "2", TypeError),
    ("retry_delay", -0.1, ValueError),
    ("socket_timeout", 0, ValueError),
    ("socket_timeout", -1, ValueError),
    ("socket_timeout", float("inf"), ValueError),
    ("socket_timeout", "10", TypeError),
    ("stack_timeout", 0, ValueError),
    ("stack_timeout", "15", TypeError),
    ("ssl_options", ssl.create_default_context(), TypeError),
    ("ssl_options", {"ca_certs": "x"}, TypeError),
    ("virtual_host", None, TypeError),
    ("virtual_host", b"/", TypeError),
    ("virtual_host", "é" * 128, ValueError),
    ("tcp_options", [("TCP_KEEPIDLE", 1)], TypeError),
    ("tcp_options", {"TCP_NODELAY": 1}, ValueError),
    ("tcp_options", {"TCP_KEEPIDLE": "60"}, TypeError),
    ("tcp_options", {"TCP_KEEPIDLE": 0}, ValueError),
]


@pytest.mark.parametrize(("name", "value", "error"), INVALID)
def test_invalid_values_name_the_parameter(name: str, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        ConnectionParameters(**{name: value})
    assert name in str(info.value)
    params = ConnectionParameters()
    before = getattr(params, name)
    with pytest.raises(error):
        setattr(params, name, value)
    assert getattr(params, name) == before  # a failed set changes nothing


def test_tcp_option_error_names_the_key() -> None:
    with pytest.raises(ValueError, match="TCP_NODELAY"):
        ConnectionParameters(tcp_options={"TCP_NODELAY": 1})


# ---------------------------------------------------------------------------
# equality and repr


def test_equality_over_every_property() -> None:
    assert ConnectionParameters() == ConnectionParameters()
    assert not (ConnectionParameters() != ConnectionParameters())
    assert ConnectionParameters() == Parameters()
    ssl_opts = SSLOptions(ssl.create_default_context())
    changes: dict[str, Any] = {
        "blocked_connection_timeout": 5,
        "channel_max": 2,
        "client_properties": {"a": 1},
        "connection_attempts": 2,
        "credentials": PlainCredentials("guest", "other"),
        "frame_max": 4096,
        "heartbeat": 10,
        "host": "example",
        "locale": "fr_FR",
        "port": 1,
        "retry_delay": 1,
        "socket_timeout": 1,
        "stack_timeout": 1,
        "ssl_options": ssl_opts,
        "virtual_host": "v",
        "tcp_options": {"TCP_KEEPCNT": 3},
    }
    assert set(changes) == set(EXPECTED_DEFAULTS)
    for name, value in changes.items():
        assert ConnectionParameters(**{name: value}) != ConnectionParameters(), name
        assert ConnectionParameters(**{name: value}) == ConnectionParameters(**{name: value})


def test_equality_with_other_types() -> None:
    params = ConnectionParameters()
    assert params != "localhost"
    assert params.__eq__(object()) is NotImplemented
    with pytest.raises(TypeError):
        hash(params)


def test_url_and_keyword_parameters_compare_equal() -> None:
    assert URLParameters("amqp://guest:guest@localhost:5672/%2F") == ConnectionParameters()
    assert URLParameters("amqp://localhost") == ConnectionParameters()


def test_repr() -> None:
    assert repr(ConnectionParameters()) == (
        "<ConnectionParameters host=localhost port=5672 virtual_host=/ ssl=False>"
    )
    params = ConnectionParameters(
        host="h",
        credentials=PlainCredentials("u", SECRET),
        ssl_options=SSLOptions(ssl.create_default_context()),
    )
    assert repr(params) == "<ConnectionParameters host=h port=5671 virtual_host=/ ssl=True>"
    assert str(params) == repr(params)
    assert SECRET not in repr(params)


def test_url_repr_and_str_hide_the_password() -> None:
    params = URLParameters(f"amqp://user:{SECRET}@host:1234/vh?heartbeat=5")
    assert repr(params) == "<URLParameters host=host port=1234 virtual_host=vh ssl=False>"
    for text in (repr(params), str(params), repr(params.credentials), str(params.credentials)):
        assert SECRET not in text


@pytest.mark.parametrize(
    "url",
    [
        f"amqp://user:{SECRET}@host/?heartbeat=x",
        f"amqp://user:{SECRET}@host/?nosuchkey=1",
        f"amqp://user:{SECRET}@host:99999/",
        f"amqp://user:{SECRET}/x@host/",  # unencoded '/' in the password
        f"amqps://user:{SECRET}@host/?cacertfile=/nonexistent/ca.pem",
        f"amqp://user:{SECRET}@host/a/b",
        f"http://user:{SECRET}@host/",
        f"amqp://user:{SECRET}@[::1/",
        f"amqp://user:{SECRET}@host/?ssl_options={{'password':'{SECRET}','bogus':1}}",
    ],
)
def test_url_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(ValueError) as info:
        URLParameters(url)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


# ---------------------------------------------------------------------------
# SSLOptions


def test_ssl_options() -> None:
    context = ssl.create_default_context()
    opts = SSLOptions(context)
    assert opts.context is context
    assert opts.server_hostname is None
    assert SSLOptions(context, "sni.example").server_hostname == "sni.example"
    assert opts == SSLOptions(context)
    assert opts != SSLOptions(context, "x")
    assert opts != SSLOptions(ssl.create_default_context())
    assert repr(SSLOptions(context, "x")) == (
        "<SSLOptions server_hostname='x' verify_mode=CERT_REQUIRED>"
    )
    for clone in (copy.copy(opts), copy.deepcopy(opts)):
        assert clone == opts and clone.context is context
    assert copy.deepcopy(ConnectionParameters(ssl_options=opts)).ssl_options == opts


@pytest.mark.parametrize("bad", [None, {"cafile": "x"}, "context"])
def test_ssl_options_context_type(bad: Any) -> None:
    with pytest.raises(TypeError, match="context"):
        SSLOptions(bad)


@pytest.mark.parametrize(("bad", "error"), [(b"h", TypeError), (1, TypeError), ("", ValueError)])
def test_ssl_options_server_hostname_type(bad: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="server_hostname"):
        SSLOptions(ssl.create_default_context(), bad)


# ---------------------------------------------------------------------------
# URLParameters: authority, path, scheme

URL_CASES: list[tuple[str, dict[str, Any]]] = [
    ("amqp://", {"host": "localhost", "port": 5672, "virtual_host": "/"}),
    ("amqp://h", {"host": "h", "port": 5672, "virtual_host": "/"}),
    ("amqp://h/", {"virtual_host": "/"}),
    ("amqp://h/%2F", {"virtual_host": "/"}),
    ("amqp://h/%2f", {"virtual_host": "/"}),
    ("amqp://h/vhost", {"virtual_host": "vhost"}),
    ("amqp://h/a%2Fb", {"virtual_host": "a/b"}),
    ("amqp://h/%C3%A9t%C3%A9%20x", {"virtual_host": "été x"}),
    ("amqp://h:1234", {"port": 1234}),
    ("AMQP://H.Example.COM:1", {"host": "h.example.com", "port": 1}),
    ("amqp://[::1]:5673/", {"host": "::1", "port": 5673}),
    ("amqp://127.0.0.1", {"host": "127.0.0.1"}),
    ("amqp://u:p@h", {"credentials": PlainCredentials("u", "p")}),
    ("amqp://u@h", {"credentials": PlainCredentials("u", "")}),
    ("amqp://:@h", {"credentials": PlainCredentials("", "")}),
    ("amqp://us%40er:p%3A%2F%40%25+x@h", {"credentials": PlainCredentials("us@er", "p:/@%+x")}),
    ("amqp://%C3%BC:%E2%82%AC@h", {"credentials": PlainCredentials("ü", "€")}),
    ("amqp://u:p:q@h", {"credentials": PlainCredentials("u", "p:q")}),
    ("amqps://h", {"port": 5671}),
    ("amqps://h:5000", {"port": 5000}),
]


@pytest.mark.parametrize(("url", "expected"), URL_CASES)
def test_url_parsing(url: str, expected: dict[str, Any]) -> None:
    params = URLParameters(url)
    for name, value in expected.items():
        assert getattr(params, name) == value, name


# no NUL (rejected by design) and no lone surrogates (not encodable as UTF-8, so not in a URL)
_NO_NUL = st.text(
    st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(
    username=_NO_NUL,
    password=_NO_NUL,
    vhost=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60).filter(
        lambda v: len(v.encode()) <= 255
    ),
)
def test_url_percent_encoding_round_trips(username: str, password: str, vhost: str) -> None:
    url = f"amqp://{quote(username, safe='')}:{quote(password, safe='')}@h/{quote(vhost, safe='')}"
    params = URLParameters(url)
    assert params.credentials == PlainCredentials(username, password)
    assert params.virtual_host == vhost


def test_amqp_has_no_tls_and_amqps_has_a_verifying_context() -> None:
    assert URLParameters("amqp://h").ssl_options is None
    opts = URLParameters("amqps://h").ssl_options
    assert opts is not None
    assert opts.server_hostname is None
    assert opts.context.verify_mode is ssl.CERT_REQUIRED
    assert opts.context.check_hostname is True


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://h/", "scheme"),
        ("h:5672", "scheme"),
        ("amqp://h:0/", "port"),
        ("amqp://h:99999/", "port"),
        ("amqp://h:abc/", "port"),
        ("amqp://h/a/b", "virtual_host"),
        ("amqp://h/vhost/", "virtual_host"),
        ("amqp://[::1/", "url"),
    ],
)
def test_url_malformed(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        URLParameters(url)


def test_url_must_be_str() -> None:
    with pytest.raises(TypeError, match="url"):
        URLParameters(b"amqp://h")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# URLParameters: query keys

QUERY_CASES: list[tuple[str, str, Any]] = [
    ("blocked_connection_timeout=12.5", "blocked_connection_timeout", 12.5),
    ("channel_max=7", "channel_max", 7),
    ("client_properties={'connection_name':'x'}", "client_properties", {"connection_name": "x"}),
    ("connection_attempts=4", "connection_attempts", 4),
    ("frame_max=8192", "frame_max", 8192),
    ("heartbeat=0", "heartbeat", 0),
    ("heartbeat=600", "heartbeat", 600),
    ("locale=de_DE", "locale", "de_DE"),
    ("retry_delay=0.25", "retry_delay", 0.25),
    ("socket_timeout=3", "socket_timeout", 3.0),
    ("stack_timeout=4.5", "stack_timeout", 4.5),
    (
        "tcp_options={'TCP_KEEPIDLE':60,'TCP_KEEPINTVL':5,'TCP_KEEPCNT':3,'TCP_USER_TIMEOUT':1000}",
        "tcp_options",
        {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3, "TCP_USER_TIMEOUT": 1000},
    ),
    ("tcp_options=None", "tcp_options", None),
    ("ssl_options=None", "ssl_options", None),
    ("auth_mechanism=external", "credentials", ExternalCredentials()),
    ("auth_mechanism=EXTERNAL", "credentials", ExternalCredentials()),
    ("auth_mechanism=plain", "credentials", PlainCredentials("u", "p")),
]


@pytest.mark.parametrize(("query", "name", "expected"), QUERY_CASES)
def test_url_query_keys(query: str, name: str, expected: Any) -> None:
    params = URLParameters(f"amqp://u:p@h/%2F?{query}")
    assert getattr(params, name) == expected


def test_url_plain_auth_mechanism_without_userinfo_uses_guest() -> None:
    assert URLParameters("amqp://h?auth_mechanism=plain").credentials == PlainCredentials(
        "guest", "guest"
    )


def test_url_many_keys_together() -> None:
    params = URLParameters(
        "amqp://h/?heartbeat=5&channel_max=9&frame_max=4096&socket_timeout=1&locale=x"
    )
    assert (params.heartbeat, params.channel_max, params.frame_max) == (5, 9, 4096)
    assert (params.socket_timeout, params.locale) == (1.0, "x")


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ("nosuchkey=1", "nosuchkey"),
        ("backpressure_detection=t", "backpressure_detection"),  # gone in pika 1.x too
        ("heartbeat=abc", "heartbeat"),
        ("heartbeat=-1", "heartbeat"),
        ("heartbeat=", "heartbeat"),
        ("heartbeat=1&heartbeat=2", "heartbeat"),
        ("channel_max=0", "channel_max"),
        ("channel_max=1.5", "channel_max"),
        ("frame_max=100", "frame_max"),
        ("connection_attempts=0", "connection_attempts"),
        ("retry_delay=soon", "retry_delay"),
        ("socket_timeout=0", "socket_timeout"),
        ("socket_timeout=nan", "socket_timeout"),
        ("stack_timeout=x", "stack_timeout"),
        ("blocked_connection_timeout=-5", "blocked_connection_timeout"),
        ("client_properties=[1,2]", "client_properties"),
        ("client_properties={oops", "client_properties"),
        ("tcp_options={'TCP_FOO':1}", "TCP_FOO"),
        ("tcp_options=5", "tcp_options"),
        ("tcp_options=__import__('os')", "tcp_options"),
        ("auth_mechanism=amqplain", "auth_mechanism"),
        ("ssl_options=[1]", "ssl_options"),
        ("ssl_options={'cert_reqs':0}", "cert_reqs"),
        ("ssl_options={'cafile':1}", "cafile"),
        ("ssl_options={'keyfile':'k.pem'}", "keyfile"),
        ("ssl_options={'ciphers':'NO-SUCH-CIPHER'}", "ciphers"),
        ("ssl_options={'cafile':'/nonexistent/ca.pem'}", "ssl_options"),
        ("cacertfile=/x.pem", "cacertfile"),  # TLS key on amqp://
        ("verify=verify_none", "verify"),
        ("server_name_indication=x", "server_name_indication"),
    ],
)
def test_url_invalid_query_names_the_key(query: str, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        URLParameters(f"amqp://h/?{query}")


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ("ssl_options=None", "ssl_options"),
        ("verify=maybe", "verify"),
        ("server_name_indication=disable", "server_name_indication"),
        ("keyfile=/k.pem", "keyfile"),
        ("cacertfile=", "cacertfile"),
        ("cacertfile=/nonexistent/ca.pem", "cacertfile"),
        ("certfile=/nonexistent/c.pem", "certfile"),
        ("ssl_options={}&cacertfile=/x.pem", "cacertfile"),
    ],
)
def test_url_invalid_tls_query_names_the_key(query: str, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        URLParameters(f"amqps://h/?{query}")


# ---------------------------------------------------------------------------
# URLParameters: TLS from the query, with throwaway certificates


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ca = trustme.CA()
    server = ca.issue_cert("localhost")
    client = ca.issue_cert("client.example")
    folder = tmp_path_factory.mktemp("pki")
    paths = {
        "ca": folder / "ca.pem",
        "cert": folder / "client-cert.pem",
        "key": folder / "client-key.pem",
        "combined": folder / "client-combined.pem",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    client.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    client.private_key_pem.write_to_path(str(paths["key"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["combined"]))
    return {"ca": ca, "server": server, "paths": paths}


def _ca_subjects(context: ssl.SSLContext) -> list[Any]:
    return [cert["subject"] for cert in context.get_ca_certs()]


def _handshake(pki: dict[str, Any], params: Parameters) -> tuple[Any, Any]:
    """Do one real TLS handshake on 127.0.0.1 with a server that requires a
    client certificate signed by the test CA; return (server's view of the
    client cert, client's view of the server cert).
    """
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pki["server"].configure_cert(server_ctx)
    pki["ca"].configure_trust(server_ctx)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    seen: dict[str, Any] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                conn.settimeout(10)
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    seen["client_cert"] = tls.getpeercert()
                    tls.sendall(b"ok")
            except (OSError, ssl.SSLError) as exc:  # reported by the assertion below
                seen["error"] = exc

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        opts = params.ssl_options
        assert opts is not None
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with opts.context.wrap_socket(
                raw, server_hostname=opts.server_hostname or params.host
            ) as tls:
                server_cert = tls.getpeercert()
                assert tls.recv(2) == b"ok"
        thread.join(10)
        assert not thread.is_alive()
    assert "error" not in seen, seen.get("error")
    return seen["client_cert"], server_cert


def test_rabbitmq_tls_keys_build_a_working_context(pki: dict[str, Any]) -> None:
    paths = pki["paths"]
    params = URLParameters(
        f"amqps://127.0.0.1/?cacertfile={paths['ca']}&certfile={paths['cert']}"
        f"&keyfile={paths['key']}&verify=verify_peer&server_name_indication=localhost"
    )
    opts = params.ssl_options
    assert opts is not None
    assert opts.server_hostname == "localhost"
    assert opts.context.verify_mode is ssl.CERT_REQUIRED and opts.context.check_hostname
    # Only the given CA is trusted, not the system store.
    assert len(opts.context.get_ca_certs()) == 1
    client_cert, server_cert = _handshake(pki, params)
    assert ("commonName", "client.example") not in client_cert["subject"]  # trustme: SAN only
    assert any(value == "client.example" for _kind, value in client_cert["subjectAltName"])
    assert any(value == "localhost" for _kind, value in server_cert["subjectAltName"])


def test_certfile_may_hold_the_key(pki: dict[str, Any]) -> None:
    paths = pki["paths"]
    params = URLParameters(
        f"amqps://localhost/?cacertfile={paths['ca']}&certfile={paths['combined']}"
    )
    _handshake(pki, params)


def test_verify_none(pki: dict[str, Any]) -> None:
    paths = pki["paths"]
    params = URLParameters(
        f"amqps://127.0.0.1/?verify=verify_none&certfile={paths['cert']}&keyfile={paths['key']}"
    )
    opts = params.ssl_options
    assert opts is not None
    assert opts.context.verify_mode is ssl.CERT_NONE
    assert opts.context.check_hostname is False
    _handshake(pki, params)  # the server's certificate is not checked


def test_pika_ssl_options_dict(pki: dict[str, Any]) -> None:
    paths = pki["paths"]
    for ca_key in ("ca_certs", "cafile"):
        params = URLParameters(
            f"amqp://127.0.0.1:5671/?ssl_options={{'{ca_key}':'{paths['ca']}',"
            f"'certfile':'{paths['cert']}','keyfile':'{paths['key']}',"
            "'server_hostname':'localhost'}"
        )
        opts = params.ssl_options
        assert opts is not None
        assert opts.server_hostname == "localhost"
        assert params.port == 5671
        assert _ca_subjects(opts.context) == [
            cert["subject"] for cert in _load_ca(Path(paths["ca"])).get_ca_certs()
        ]
        _handshake(pki, params)


def test_pika_ssl_options_dict_with_cadata_and_ciphers(pki: dict[str, Any]) -> None:
    paths = pki["paths"]
    literal = repr(
        {
            "cadata": Path(paths["ca"]).read_text(),
            "ciphers": "ECDHE+AESGCM",
            "certfile": str(paths["combined"]),
        }
    )
    params = URLParameters(f"amqps://localhost/?ssl_options={quote(literal, safe='')}")
    assert params.ssl_options is not None
    _handshake(pki, params)


def test_pika_ssl_options_empty_dict_uses_system_trust() -> None:
    opts = URLParameters("amqps://h/?ssl_options={}").ssl_options
    assert opts is not None
    assert opts.context.verify_mode is ssl.CERT_REQUIRED


def _load_ca(path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(path))
    return context


# ---------------------------------------------------------------------------
# TCP socket options on a real socket


@pytest.fixture
def tcp_socket() -> Any:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        yield sock


def test_apply_keepalive_options(tcp_socket: socket.socket) -> None:
    assert tcp_socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    options = {"TCP_KEEPIDLE": 61, "TCP_KEEPINTVL": 7, "TCP_KEEPCNT": 4}
    apply_tcp_options(tcp_socket, options)
    assert tcp_socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    if hasattr(socket, "TCP_KEEPIDLE"):
        assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 61
    assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 7
    assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="Linux only")
def test_apply_user_timeout_without_keepalive(tcp_socket: socket.socket) -> None:
    apply_tcp_options(tcp_socket, {"TCP_USER_TIMEOUT": 1500})
    assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 1500
    assert tcp_socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


@pytest.mark.parametrize("options", [None, {}])
def test_apply_nothing(tcp_socket: socket.socket, options: dict[str, int] | None) -> None:
    apply_tcp_options(tcp_socket, options)
    assert tcp_socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


def test_apply_unknown_key(tcp_socket: socket.socket) -> None:
    with pytest.raises(ValueError, match="TCP_QUICKACK"):
        apply_tcp_options(tcp_socket, {"TCP_KEEPIDLE": 5, "TCP_QUICKACK": 1})
    with pytest.raises(TypeError, match="TCP_KEEPCNT"):
        apply_tcp_options(tcp_socket, {"TCP_KEEPCNT": 1.5})  # type: ignore[dict-item]


@pytest.mark.skipif(not hasattr(socket, "TCP_KEEPCNT"), reason="needs TCP_KEEPCNT")
def test_apply_value_the_kernel_rejects(tcp_socket: socket.socket) -> None:
    with pytest.raises(ValueError, match="TCP_KEEPCNT"):
        apply_tcp_options(tcp_socket, {"TCP_KEEPCNT": 10**6})


def test_validate_returns_a_copy() -> None:
    options = {"TCP_KEEPIDLE": 5}
    checked = validate_tcp_options(options)
    assert checked == options and checked is not options
    assert validate_tcp_options(None) is None


def test_set_nodelay(tcp_socket: socket.socket) -> None:
    assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    set_nodelay(tcp_socket)
    assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX")
def test_set_nodelay_ignores_unix_sockets() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        set_nodelay(left)  # no error
