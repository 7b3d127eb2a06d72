"""SASL credentials: what the client answers when the broker asks who it is.

Theory of operation: during the handshake the broker's ``Connection.Start``
lists the SASL mechanisms it accepts (a space-separated string such as
``b"PLAIN AMQPLAIN"``).  The connection walks its credentials object through
:meth:`response_for`; a credentials class whose mechanism is on the list
returns ``(mechanism_name, response_bytes)`` for ``Connection.StartOk``,
otherwise ``(None, None)`` and the connection reports an authentication
error.  Once the broker has accepted the login the connection calls
:meth:`erase_credentials`, which forgets the secret when the application asked
for that (``erase_on_connect=True``).

The public surface mirrors pika's ``pika.credentials`` (``TYPE``,
``response_for``, ``erase_credentials``, equality, ``VALID_TYPES``).  Two rules
are ours: names and passwords are validated when the object is made, and the
password never appears in ``repr``, ``str``, an error message or a log line.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

__all__ = [
    "VALID_TYPES",
    "Credentials",
    "ExternalCredentials",
    "PlainCredentials",
    "StartMethod",
]

LOGGER = logging.getLogger(__name__)


class StartMethod(Protocol):
    """What :meth:`Credentials.response_for` reads from ``Connection.Start``."""

    @property
    def mechanisms(self) -> bytes | str:
        """Space-separated SASL mechanism names offered by the broker."""


@runtime_checkable
class Credentials(Protocol):
    """The shape every credentials class has (pika's informal interface)."""

    TYPE: str
    erase_on_connect: bool

    def response_for(self, start_method: StartMethod) -> tuple[str | None, bytes | None]:
        """Return ``(mechanism, response)`` or ``(None, None)``."""

    def erase_credentials(self) -> None:
        """Forget secrets once the connection no longer needs them."""


def _offers(start_method: StartMethod, mechanism: str) -> bool:
    """Tell whether the broker's mechanism list contains ``mechanism``."""
    offered = start_method.mechanisms
    if isinstance(offered, str):
        offered = offered.encode("utf-8")
    return mechanism.encode("ascii") in offered.split()


def _check_secret_part(value: object, name: str) -> str:
    """Validate a username or password without ever echoing a password."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, but got {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{name} must not contain a NUL character (SASL PLAIN forbids it)")
    return value


class PlainCredentials:
    """Username and password for the SASL ``PLAIN`` mechanism (RabbitMQ's default).

    :param username: the user to log in as
    :param password: that user's password; never shown by ``repr`` or logs
    :param erase_on_connect: forget both once the connection is open
    :raises TypeError: when ``username`` or ``password`` is not a ``str``
    :raises ValueError: when either contains a NUL character
    """

    TYPE = "PLAIN"

    __slots__ = ("erase_on_connect", "password", "username")

    def __init__(self, username: str, password: str, erase_on_connect: bool = False) -> None:
        self.username: str | None = _check_secret_part(username, "username")
        self.password: str | None = _check_secret_part(password, "password")
        if not isinstance(erase_on_connect, bool):
            raise TypeError(f"erase_on_connect must be a bool, but got {erase_on_connect!r}")
        self.erase_on_connect = erase_on_connect

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} username={self.username!r}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PlainCredentials):
            return (
                self.username == other.username
                and self.password == other.password
                and self.erase_on_connect == other.erase_on_connect
            )
        return NotImplemented

    def response_for(self, start_method: StartMethod) -> tuple[str | None, bytes | None]:
        """Build the ``PLAIN`` response if the broker offers that mechanism.

        :param start_method: the broker's ``Connection.Start`` (anything with
            ``mechanisms``)
        :returns: ``("PLAIN", b"\\0username\\0password")`` (UTF-8), or
            ``(None, None)`` when the broker does not offer ``PLAIN``
        :raises ValueError: when the credentials were already erased
        """
        if not _offers(start_method, self.TYPE):
            return None, None
        if self.username is None or self.password is None:
            raise ValueError(
                "these PlainCredentials were erased after a previous connection "
                "(erase_on_connect=True); create new credentials to connect again"
            )
        response = b"\0" + self.username.encode("utf-8") + b"\0" + self.password.encode("utf-8")
        return self.TYPE, response

    def erase_credentials(self) -> None:
        """Forget username and password when ``erase_on_connect`` is set."""
        if self.erase_on_connect:
            LOGGER.info("Erasing stored credential values")
            self.username = None
            self.password = None


class ExternalCredentials:
    """The SASL ``EXTERNAL`` mechanism: the broker identifies the client itself,
    usually by its TLS client certificate.
    """

    TYPE = "EXTERNAL"

    __slots__ = ("erase_on_connect",)

    def __init__(self) -> None:
        self.erase_on_connect = False

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ExternalCredentials):
            return self.erase_on_connect == other.erase_on_connect
        return NotImplemented

    def response_for(self, start_method: StartMethod) -> tuple[str | None, bytes | None]:
        """Answer ``EXTERNAL`` with an empty response if the broker offers it.

        :param start_method: the broker's ``Connection.Start``
        :returns: ``("EXTERNAL", b"")`` or ``(None, None)``
        """
        if not _offers(start_method, self.TYPE):
            return None, None
        return self.TYPE, b""

    def erase_credentials(self) -> None:
        """Nothing to erase: this mechanism holds no secret."""
        LOGGER.debug("Not supported by this Credentials type")


#: Classes accepted by ``Parameters.credentials``; append a custom class here
#: (as with pika) to make the parameters accept it.
VALID_TYPES: list[type] = [PlainCredentials, ExternalCredentials]
