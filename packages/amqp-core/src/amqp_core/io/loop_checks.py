"""Pieces that every pika-style I/O loop needs alike: argument checks and a soon-callback handle.

Theory of operation: a loop with pika's IOLoop API (``add_handler(fd, handler,
events)``, ``call_soon``, ``add_callback`` ...) checks its arguments the same
way whatever it runs on, and raises the same ``TypeError`` / ``ValueError``
naming the parameter.  Those checks, and :class:`SoonHandle` (the cancellable
handle of a callback queued to run "soon"), live here once, for the select
IOLoop of the core and for adapter packages' loops.  Only the event mask
differs from loop to loop (pika's poll values, or gevent's), so
:func:`check_events` takes the mask the loop allows and the names its error
message gives them.
"""

from __future__ import annotations

from .contract import Callback

__all__ = ["SoonHandle", "check_callable", "check_events", "check_fd"]


class SoonHandle:
    """A cancellable soon-callback: calling the handle runs the callback at most once.

    :param callback: the callback (called without arguments)
    """

    __slots__ = ("callback",)

    def __init__(self, callback: Callback) -> None:
        #: The callback; None once it ran or was cancelled.
        self.callback: Callback | None = callback

    def cancel(self) -> None:
        """Cancel the callback if it has not run yet."""
        self.callback = None

    def __call__(self) -> None:
        callback = self.callback
        if callback is not None:
            self.callback = None
            callback()


def check_callable(name: str, value: object) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``value`` is callable.

    :param name: the parameter's name, for the message
    :param value: the argument
    :raises TypeError: if ``value`` is not callable
    """
    if not callable(value):
        raise TypeError(f"{name} must be a callable, but got {value!r}")


def check_fd(fd: object) -> int:
    """Return ``fd`` if it is a non-negative int file descriptor (not a bool).

    :param fd: the argument
    :raises TypeError: if ``fd`` is not an int
    :raises ValueError: if ``fd`` is negative
    """
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"fd must be an int file descriptor, but got {fd!r}")
    if fd < 0:
        raise ValueError(f"fd must be non-negative, but got {fd!r}")
    return fd


def check_events(
    events: object, allowed_mask: int, *, names: str = "READ/WRITE/ERROR",
    allowed: str | None = None,
) -> int:
    """Return ``events`` if it is an int (not a bool) mask within ``allowed_mask``.

    :param events: the argument
    :param allowed_mask: the bits the loop accepts
    :param names: the loop's names for those bits, as the ``TypeError`` gives them
    :param allowed: the same as the ``ValueError`` gives them; None for ``names``
    :raises TypeError: if ``events`` is not an int
    :raises ValueError: if ``events`` has a bit outside ``allowed_mask``
    """
    if isinstance(events, bool) or not isinstance(events, int):
        raise TypeError(f"events must be an int mask of {names}, but got {events!r}")
    if events & ~allowed_mask:
        raise ValueError(f"events must be a mask of {allowed or names}, but got {events!r}")
    return events
