"""Name resolution off the loop's thread, for loops without their own resolver.

Theory of operation
-------------------
``socket.getaddrinfo`` blocks, so :func:`threaded_getaddrinfo` runs it in a
small shared pool of *daemon* worker threads (a hung DNS lookup never keeps the
process from exiting, which the non-daemon workers of
``concurrent.futures.ThreadPoolExecutor`` would) and hands the result -- the
list, or the exception -- back through the loop's ``call_soon_threadsafe``.

The pool starts lazily, grows to :data:`MAX_WORKERS` threads only while jobs
are waiting, and its threads then live for the whole process, blocked on a
queue.  Cancelling the returned handle before delivery suppresses the callback
(and skips the lookup if it has not started); the flag is read on the loop's
thread, so a cancel made on the loop's thread always wins.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from collections.abc import Callable
from typing import Any, Final

from amqp_core.io.contract import Callback, OnResolved

__all__ = ["MAX_WORKERS", "ResolveHandle", "threaded_getaddrinfo"]

LOGGER = logging.getLogger(__name__)

#: Upper bound on resolver threads shared by every loop in the process.
MAX_WORKERS: Final = 4

_jobs: queue.SimpleQueue[ResolveHandle] = queue.SimpleQueue()
_lock = threading.Lock()
_workers = 0
_idle = 0


class ResolveHandle:
    """One pending lookup; :meth:`cancel` suppresses its delivery."""

    __slots__ = ("_args", "_call_soon_threadsafe", "_cancelled", "_on_done")

    def __init__(
        self,
        call_soon_threadsafe: Callable[[Callback], object],
        args: tuple[Any, ...],
        on_done: OnResolved,
    ) -> None:
        self._call_soon_threadsafe = call_soon_threadsafe
        self._args = args
        self._on_done: OnResolved | None = on_done
        self._cancelled = False

    def cancel(self) -> None:
        """Do not deliver the result (no-op once delivered)."""
        self._cancelled = True
        self._on_done = None

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    def _run(self) -> None:
        """Worker side: resolve and post the delivery to the loop."""
        if self._cancelled:
            return
        result: list[tuple[Any, ...]] | BaseException
        try:
            result = socket.getaddrinfo(*self._args)
        except Exception as exc:  # delivered, not raised
            result = exc

        def deliver() -> None:
            on_done = self._on_done
            self._on_done = None
            if on_done is not None and not self._cancelled:
                on_done(result)

        try:
            self._call_soon_threadsafe(deliver)
        except Exception:  # the loop is gone: nobody is waiting any more
            LOGGER.debug("getaddrinfo result for %r dropped: loop closed", self._args[0],
                         exc_info=True)


def _worker() -> None:
    global _idle
    while True:
        job = _jobs.get()
        with _lock:
            _idle -= 1
        try:
            job._run()
        except BaseException:  # pragma: no cover - _run catches what it can
            LOGGER.exception("resolver job failed")
        finally:
            with _lock:
                _idle += 1


def _submit(job: ResolveHandle) -> None:
    global _workers, _idle
    with _lock:
        start = _idle == 0 and _workers < MAX_WORKERS
        if start:
            _workers += 1
            _idle += 1
    if start:
        threading.Thread(target=_worker, name="amqp-core-resolver", daemon=True).start()
    _jobs.put(job)


def _reset_after_fork() -> None:
    """The child of a fork has none of the parent's worker threads: start afresh."""
    global _jobs, _lock, _workers, _idle
    _jobs = queue.SimpleQueue()
    _lock = threading.Lock()
    _workers = 0
    _idle = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def threaded_getaddrinfo(
    call_soon_threadsafe: Callable[[Callback], object],
    host: str | None,
    port: int | str | None,
    family: int,
    socktype: int,
    proto: int,
    flags: int,
    on_done: OnResolved,
) -> ResolveHandle:
    """Run ``socket.getaddrinfo`` in a worker thread and deliver through the loop.

    :param call_soon_threadsafe: the loop's thread-safe scheduling function.
    :param host: host name or address (as for ``socket.getaddrinfo``).
    :param port: port number or service name.
    :param family: address family (``socket.AF_UNSPEC`` for any).
    :param socktype: socket type (e.g. ``socket.SOCK_STREAM``), or 0.
    :param proto: protocol, or 0.
    :param flags: ``AI_*`` flags, or 0.
    :param on_done: called on the loop's thread with the list of
        ``(family, type, proto, canonname, sockaddr)`` or the exception.
    :returns: a handle whose ``cancel()`` suppresses the delivery.
    :raises TypeError: if a callable argument is not callable.
    """
    if not callable(call_soon_threadsafe):
        raise TypeError(
            f"call_soon_threadsafe must be a callable, but got {call_soon_threadsafe!r}"
        )
    if not callable(on_done):
        raise TypeError(f"on_done must be a callable, but got {on_done!r}")
    job = ResolveHandle(
        call_soon_threadsafe, (host, port, family, socktype, proto, flags), on_done
    )
    _submit(job)
    return job
