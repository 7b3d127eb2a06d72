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
live in :mod:`amqp_core.spec`, not here.
"""

from __future__ import annotations

from typing import ClassVar, Self

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
