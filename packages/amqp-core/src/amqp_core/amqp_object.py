"""Base classes of the generated AMQP classes, methods and content properties.

Theory of operation: :mod:`amqp_core.spec` (generated) defines one subclass of
:class:`Class` per AMQP class, one nested subclass of :class:`Method` per
method and :class:`~amqp_core.spec.BasicProperties` (a :class:`Properties`).
Every generated class uses ``__slots__`` and lists its wire fields, in wire
order, in the class attribute ``_FIELDS``; this module implements what is the
same for all of them over that tuple:

* equality: same class and equal field values (the content attached to a
  method is not compared);
* ``repr`` in pika's shape: ``<Basic.Deliver(['consumer_tag=ctag', ...])>``,
  fields sorted by name, fields whose value is ``None`` left out, and just
  ``<NAME>`` when nothing is left;
* the content helpers of :class:`Method` (``_set_content``,
  ``get_properties``, ``get_body``) that the connection uses to hand a method
  frame, its properties and its body to the application as one object.

Encoding and decoding are generated per class (unrolled per field), so they
live in :mod:`amqp_core.spec`; the private helpers at the end of this module are
what that generated code shares: one-octet byte strings, the slow paths of string
encoding, and ``_explain``, which runs only after a failed encode to raise the
``TypeError``/``ValueError``/``ShortStringTooLong`` that names the bad field.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import ClassVar, Self

from .exceptions import InvalidFieldTypeException, InvalidFrameError, ShortStringTooLong

__all__ = ["AMQPObject", "Buffer", "Class", "Method", "Properties"]

#: What ``decode`` accepts: any contiguous byte buffer indexed by octet.
Buffer = bytes | bytearray | memoryview


class AMQPObject:
    """Base of every AMQP class, method and properties object.

    Subclasses set :attr:`NAME`, :attr:`INDEX` and ``_FIELDS``.
    """

    __slots__ = ()

    #: The AMQP name, such as ``"Basic.Deliver"``.
    NAME: ClassVar[str] = "AMQPObject"
    #: The numeric identifier (class id, or ``class_id << 16 | method_id``).
    INDEX: ClassVar[int | None] = None
    #: The names of the fields, in wire order.
    _FIELDS: ClassVar[tuple[str, ...]] = ()
    #: The wire type of each field (``"shortstr"``, ``"bit"`` ...), parallel to ``_FIELDS``.
    _KINDS: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        items = []
        for name in sorted(self._FIELDS):
            value = getattr(self, name, None)
            if value is not None:
                items.append(f"{name}={value}")
        if not items:
            return f"<{self.NAME}>"
        return f"<{self.NAME}({items!r})>"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        for name in self._FIELDS:
            if getattr(self, name, None) != getattr(other, name, None):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value


class Class(AMQPObject):
    """Base of the AMQP classes (``Connection``, ``Basic`` ...)."""

    __slots__ = ()

    NAME: ClassVar[str] = "Unextended Class"
    INDEX: ClassVar[int]  # the class id; set by every generated subclass


class Method(AMQPObject):
    """Base of the AMQP methods (``Basic.Deliver``, ``Queue.DeclareOk`` ...).

    A method that carries content (``Basic.Publish``, ``Basic.Return``,
    ``Basic.Deliver``, ``Basic.GetOk``) can have its properties and body
    attached with :meth:`_set_content`.
    """

    __slots__ = ("_body", "_properties")

    NAME: ClassVar[str] = "Unextended Method"
    INDEX: ClassVar[int]  # class_id << 16 | method_id; set by every generated subclass
    #: Whether the peer answers this method with a reply method.
    synchronous: ClassVar[bool] = False

    def _set_content(self, properties: Properties | None, body: bytes | None) -> None:
        """Attach the content (properties and body) that came with this method.

        :param properties: the content header's properties
        :param body: the content body
        """
        self._properties = properties
        self._body = body

    def get_properties(self) -> Properties | None:
        """Return the properties attached with :meth:`_set_content`.

        :returns: the properties, or ``None`` when no content was attached
        """
        return getattr(self, "_properties", None)

    def get_body(self) -> bytes | None:
        """Return the body attached with :meth:`_set_content`.

        :returns: the body, or ``None`` when no content was attached
        """
        return getattr(self, "_body", None)

    def encode(self) -> list[bytes]:
        """Encode the method's arguments (without the class and method ids).

        :returns: byte strings to be concatenated
        """
        raise NotImplementedError

    def decode(self, encoded: Buffer, offset: int = 0) -> Self:
        """Fill this method's fields from its encoded arguments.

        :param encoded: buffer holding the arguments
        :param offset: where the arguments start in ``encoded``
        :returns: ``self``
        """
        raise NotImplementedError


class Properties(AMQPObject):
    """Base of content properties (``BasicProperties``)."""

    __slots__ = ()

    NAME: ClassVar[str] = "Unextended Properties"
    INDEX: ClassVar[int]  # the class id; set by every generated subclass
    #: The AMQP class these properties belong to.
    CLASS: ClassVar[type[Class] | None] = None

    def encode(self) -> list[bytes]:
        """Encode the property flags and the properties that are set.

        :returns: byte strings to be concatenated
        """
        raise NotImplementedError

    def decode(self, encoded: Buffer, offset: int = 0) -> Self:
        """Fill the properties from their encoded form (flags first).

        :param encoded: buffer holding the property flags and values
        :param offset: where the property flags start in ``encoded``
        :returns: ``self``
        """
        raise NotImplementedError


# ------------------------------------------------- support for the generated spec module

#: One-octet byte strings, indexed by value (string lengths and bit octets).
_OCTET: tuple[bytes, ...] = tuple(bytes((n,)) for n in range(256))

#: Fastest text decoder per buffer type (``str()`` serves memoryview and the rest).
_TEXT: dict[type, Callable[..., str]] = {bytes: bytes.decode, bytearray: bytearray.decode}

#: What a failed encode raises before ``_explain`` names the culprit.
_ENCODE_ERRORS = (struct.error, TypeError, AttributeError, IndexError, ValueError, OverflowError)

#: What truncated or malformed input raises inside a decode (turned into InvalidFrameError).
_MALFORMED = (struct.error, IndexError, ValueError, InvalidFieldTypeException)

#: Largest value of each integer wire type (all are unsigned).
_INT_MAX = {
    "octet": 0xFF,
    "short": 0xFFFF,
    "long": 0xFFFFFFFF,
    "longlong": 0xFFFFFFFFFFFFFFFF,
    "timestamp": 0xFFFFFFFFFFFFFFFF,
}


def _shortstr(value: object) -> bytes:
    """Slow path of short-string encoding: str subclasses and bytes."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise TypeError("not a string")  # _explain names the field


def _longstr(value: object) -> bytes:
    """Slow path of long-string encoding: bytes, bytearray and str subclasses."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError("not a string")  # _explain names the field


def _type_error(label: str, expected: str, value: object) -> TypeError:
    return TypeError(f"{label} must be {expected}, not {type(value).__name__}")


def _explain(obj: AMQPObject) -> None:
    """Raise the error that names the first field that cannot be encoded.

    Returns normally when every field looks valid (the caller re-raises).

    :raises TypeError: a field of the wrong type
    :raises ValueError: an integer out of range, or a string that is not encodable
    :raises ShortStringTooLong: a short string over 255 bytes
    """
    optional = isinstance(obj, Properties)
    for name, kind in zip(obj._FIELDS, obj._KINDS, strict=True):
        value = getattr(obj, name, None)
        if value is None and (optional or kind == "table"):
            continue
        label = f"{obj.NAME}.{name}"
        if kind in _INT_MAX:
            if not isinstance(value, int):
                raise _type_error(label, "int", value)
            if not 0 <= value <= _INT_MAX[kind]:
                raise ValueError(f"{label} must be in range 0..{_INT_MAX[kind]}, not {value}")
        elif kind == "shortstr":
            if not isinstance(value, str | bytes | bytearray):
                raise _type_error(label, "str", value)
            try:
                raw = _shortstr(value)
            except UnicodeEncodeError as exc:
                raise ValueError(f"{label} cannot be encoded as UTF-8: {exc}") from exc
            if len(raw) > 255:
                raise ShortStringTooLong(f"{label}: {value!r}")
        elif kind == "longstr":
            if not isinstance(value, str | bytes | bytearray):
                raise _type_error(label, "str or bytes", value)
            try:
                raw = _longstr(value)
            except UnicodeEncodeError as exc:
                raise ValueError(f"{label} cannot be encoded as UTF-8: {exc}") from exc
            if len(raw) > 0xFFFFFFFF:
                raise ValueError(f"{label} is longer than 4 GiB")
        elif kind == "table":
            if not isinstance(value, Mapping):
                raise _type_error(label, "a mapping or None", value)


def _truncated(obj: AMQPObject) -> InvalidFrameError:
    return InvalidFrameError(f"{obj.NAME}: truncated")


def _malformed(obj: AMQPObject, exc: Exception) -> InvalidFrameError:
    return InvalidFrameError(f"{obj.NAME}: malformed ({type(exc).__name__}: {exc})")
