"""Argument checks and coercions the core's commands share with the channel APIs.

Theory of operation: each check raises ``TypeError`` naming the parameter before anything is
encoded, so a refused call sends nothing.  Flags accept ``bool`` and ``int`` (pika's users pass
0 and 1); bodies accept ``bytes``, ``bytearray``, ``memoryview`` and ``str`` (UTF-8, as pika).
"""

from __future__ import annotations

from typing import Any

from .._codec import encode_short_string
from .frames import FRAME_END

__all__ = ["coerce_body", "encode_publish_tail", "require_flag"]


def encode_publish_tail(
    exchange: str, routing_key: str, mandatory: bool, immediate: bool
) -> bytes:
    """Basic.Publish arguments after ticket, plus nothing else (frame-end comes with the header)."""
    if not isinstance(exchange, str):
        raise TypeError(f"exchange must be str, not {type(exchange).__name__}")
    if not isinstance(routing_key, str):
        raise TypeError(f"routing_key must be str, not {type(routing_key).__name__}")
    bits = (1 if mandatory else 0) | (2 if immediate else 0)
    return (
        encode_short_string(exchange, "exchange")
        + encode_short_string(routing_key, "routing_key")
        + bytes((bits,))
        + FRAME_END
    )


def require_flag(value: Any, name: str) -> None:
    """Refuse a flag that is neither a bool nor an int (pika's users pass 0 and 1 too).

    :raises TypeError: naming ``name``
    """
    if not isinstance(value, int):
        raise TypeError(f"{name} must be bool, not {type(value).__name__}")


def coerce_body(body: Any) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, bytes):
        return bytes(body)
    raise TypeError(f"body must be bytes or str, not {type(body).__name__}")
