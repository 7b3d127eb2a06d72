"""PlainCredentials / ExternalCredentials: pika's public behaviour, validation, secrecy."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import pytest

from amqp_core import credentials
from amqp_core.credentials import ExternalCredentials, PlainCredentials

SECRET = "s3cr3t-Pa55"


@dataclass
class Start:
    """Stand-in for Connection.Start: only ``mechanisms`` is read."""

    mechanisms: bytes | str


def test_types_and_valid_types() -> None:
    assert PlainCredentials.TYPE == "PLAIN"
    assert ExternalCredentials.TYPE == "EXTERNAL"
    assert credentials.VALID_TYPES == [PlainCredentials, ExternalCredentials]
    assert isinstance(PlainCredentials("u", "p"), credentials.Credentials)
    assert isinstance(ExternalCredentials(), credentials.Credentials)


@pytest.mark.parametrize("mechanisms", [b"PLAIN AMQPLAIN", "AMQPLAIN PLAIN", b"PLAIN", " PLAIN "])
def test_plain_response_when_offered(mechanisms: bytes | str) -> None:
    creds = PlainCredentials("guest", "secret")
    assert creds.response_for(Start(mechanisms)) == ("PLAIN", b"\0guest\0secret")


def test_plain_response_is_utf8() -> None:
    creds = PlainCredentials("jürgen", "pässwörd")
    mech, response = creds.response_for(Start(b"PLAIN"))
    assert mech == "PLAIN"
    assert response == b"\0" + "jürgen".encode() + b"\0" + "pässwörd".encode()


@pytest.mark.parametrize("mechanisms", [b"AMQPLAIN", b"EXTERNAL", "", b"PLAINX", b"plain"])
def test_plain_not_offered(mechanisms: bytes | str) -> None:
    assert PlainCredentials("u", "p").response_for(Start(mechanisms)) == (None, None)


def test_external_response() -> None:
    creds = ExternalCredentials()
    assert creds.response_for(Start(b"PLAIN EXTERNAL")) == ("EXTERNAL", b"")
    assert creds.response_for(Start("EXTERNAL")) == ("EXTERNAL", b"")
    assert creds.response_for(Start(b"PLAIN AMQPLAIN")) == (None, None)
    assert creds.erase_on_connect is False


def test_erase_credentials_only_when_asked() -> None:
    kept = PlainCredentials("u", "p")
    kept.erase_credentials()
    assert (kept.username, kept.password) == ("u", "p")

    erased = PlainCredentials("u", "p", erase_on_connect=True)
    erased.erase_credentials()
    assert erased.username is None
    assert erased.password is None
    with pytest.raises(ValueError, match="erased"):
        erased.response_for(Start(b"PLAIN"))
    # Not offered still answers (None, None), as before the erase.
    assert erased.response_for(Start(b"EXTERNAL")) == (None, None)


def test_external_erase_is_a_no_op() -> None:
    creds = ExternalCredentials()
    creds.erase_credentials()
    assert creds == ExternalCredentials()


def test_equality() -> None:
    assert PlainCredentials("u", "p") == PlainCredentials("u", "p")
    assert not (PlainCredentials("u", "p") != PlainCredentials("u", "p"))
    assert PlainCredentials("u", "p") != PlainCredentials("u", "q")
    assert PlainCredentials("u", "p") != PlainCredentials("v", "p")
    assert PlainCredentials("u", "p") != PlainCredentials("u", "p", erase_on_connect=True)
    assert ExternalCredentials() == ExternalCredentials()
    assert PlainCredentials("u", "p") != ExternalCredentials()
    assert ExternalCredentials() != PlainCredentials("u", "p")
    assert PlainCredentials("u", "p") != ("u", "p")
    assert PlainCredentials("u", "p").__eq__(object()) is NotImplemented
    assert ExternalCredentials().__eq__(object()) is NotImplemented


@pytest.mark.parametrize(
    ("username", "password", "bad"),
    [
        (b"u", "p", "username"),
        (None, "p", "username"),
        (1, "p", "username"),
        ("u", b"p", "password"),
        ("u", None, "password"),
        ("u", 12345, "password"),
    ],
)
def test_type_validation_names_the_parameter(username: object, password: object, bad: str) -> None:
    with pytest.raises(TypeError, match=bad):
        PlainCredentials(username, password)  # type: ignore[arg-type]


def test_type_error_does_not_echo_the_password() -> None:
    with pytest.raises(TypeError) as info:
        PlainCredentials("u", SECRET.encode())  # type: ignore[arg-type]
    assert SECRET not in str(info.value)


def test_nul_rejected_without_echo() -> None:
    with pytest.raises(ValueError, match="username"):
        PlainCredentials("a\0b", "p")
    with pytest.raises(ValueError, match="password") as info:
        PlainCredentials("u", SECRET + "\0")
    assert SECRET not in str(info.value)


def test_erase_on_connect_must_be_bool() -> None:
    with pytest.raises(TypeError, match="erase_on_connect"):
        PlainCredentials("u", "p", erase_on_connect="yes")  # type: ignore[arg-type]


def test_repr_and_str_hide_the_password() -> None:
    creds = PlainCredentials("guest", SECRET)
    assert repr(creds) == "<PlainCredentials username='guest'>"
    assert SECRET not in str(creds)
    assert SECRET not in repr([creds])
    assert repr(ExternalCredentials()) == "<ExternalCredentials>"


def test_logs_never_show_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    creds = PlainCredentials("guest", SECRET, erase_on_connect=True)
    creds.response_for(Start(b"PLAIN"))
    creds.erase_credentials()
    ExternalCredentials().erase_credentials()
    assert caplog.records  # something was logged ...
    assert SECRET not in caplog.text  # ... but never the secret


def test_deepcopy() -> None:
    creds = PlainCredentials("u", "p", erase_on_connect=True)
    clone = copy.deepcopy(creds)
    assert clone == creds
    assert clone is not creds
    assert copy.deepcopy(ExternalCredentials()) == ExternalCredentials()
