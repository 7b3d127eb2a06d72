"""Adapters: ``SelectConnection``, ``BaseConnection``, ``BlockingConnection``.

Imported lazily so that ``import amqp_core.adapters.utils`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BaseConnection", "BlockingConnection", "SelectConnection"]


def __getattr__(name: str) -> Any:
    if name == "SelectConnection":
        from .select_connection import SelectConnection

        return SelectConnection
    if name == "BaseConnection":
        from .base_connection import BaseConnection

        return BaseConnection
    if name == "BlockingConnection":
        from .blocking_connection import BlockingConnection

        return BlockingConnection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
