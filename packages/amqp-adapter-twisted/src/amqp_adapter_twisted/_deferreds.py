"""The generic wrapper: callback-API methods become Deferred-returning methods.

Theory of operation
-------------------
amqp_core has one user-facing API, the callback one
(:class:`amqp_core.channel.Channel` and the connection).  The Deferred API is
derived from it, never re-declared method by method:

* A table maps a method name to a :class:`Completion`: the keyword its
  completion callback goes in (``callback`` for most, ``on_open_callback`` for
  ``channel``), an optional ``wrap(owner, result)`` that turns the callback's
  argument into the Deferred's result (run when the reply arrives, even for a
  caller who gave up, so clean-up always happens), and an optional
  ``discard(result)`` for a reply nobody waits for any more.
* :func:`install` adds one method per entry to a :class:`DeferredOwner`
  subclass.  The method creates a Deferred, passes a resolver in that keyword,
  calls the callback method with the caller's other arguments and returns the
  Deferred, which fires with what the callback received (``frame.Method`` for
  most: ``(yield ch.queue_declare("q")).method.queue``).  The generated
  method's signature and docstring are the callback method's, less the
  completion keyword.
* A call that raises (bad argument, wrong state) returns a failed Deferred
  (as pika's Twisted adapter does); on an owner that has closed it fails with
  the close reason.
* Every Deferred waiting for a reply belongs to its owner; when the channel or
  connection closes, :meth:`DeferredOwner._fail_pending` errbacks them all
  with the specific close reason (``ChannelClosedByBroker``,
  ``StreamLostError`` ...).
* ``Deferred.cancel()`` by a caller only cancels that Deferred (errback with
  ``CancelledError``); the reply still arrives in order and is discarded, so
  the channel's request queue stays consistent.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred, fail

__all__ = ["Completion", "DeferredOwner", "install"]


class Completion(NamedTuple):
    """How one callback method becomes a Deferred-returning method.

    :param callback_kwarg: the keyword the completion callback goes in
    :param wrap: ``wrap(owner, result)`` turns the callback's argument into the result
    :param discard: ``discard(result)`` for a reply whose Deferred was cancelled
    """

    callback_kwarg: str = "callback"
    wrap: Callable[[Any, Any], Any] | None = None
    discard: Callable[[Any], None] | None = None


class DeferredOwner:
    """Shared machinery: Deferreds owned by a channel or connection, failed when it closes.

    A subclass names the callback object's attribute in ``_TARGET`` and
    initialises ``_pending`` (a set) and ``_failure`` (None until closed).
    """

    _TARGET = ""
    _pending: set[Deferred[Any]]
    _failure: BaseException | None

    def _new_deferred(self) -> Deferred[Any]:
        deferred: Deferred[Any] = Deferred()
        self._pending.add(deferred)
        return deferred

    def _settle(self, deferred: Deferred[Any], value: Any) -> bool:
        """Fire ``deferred`` with ``value``; False if it had been cancelled meanwhile."""
        self._pending.discard(deferred)
        if deferred.called:
            return False
        deferred.callback(value)
        return True

    def _fail_pending(self, error: BaseException) -> None:
        pending, self._pending = self._pending, set()
        for deferred in pending:
            if not deferred.called:
                deferred.errback(error)

    def _call_deferred(
        self, name: str, how: Completion, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Deferred[Any]:
        if self._failure is not None:
            return fail(self._failure)
        if how.callback_kwarg in kwargs:
            return fail(TypeError(
                f"{name}() takes no {how.callback_kwarg!r} argument here: the returned Deferred "
                f"fires with the reply (use .{self._TARGET}.{name}() for the callback API)"
            ))
        deferred = self._new_deferred()
        wrap, discard = how.wrap, how.discard

        def resolve(*results: Any) -> None:
            value = results[0] if len(results) == 1 else results
            if wrap is not None:
                value = wrap(self, value)
            if not self._settle(deferred, value) and discard is not None:
                discard(value)

        kwargs[how.callback_kwarg] = resolve
        try:
            getattr(getattr(self, self._TARGET), name)(*args, **kwargs)
        except Exception:
            self._pending.discard(deferred)
            return fail()
        return deferred


def _deferred_method(name: str, how: Completion) -> Callable[..., Deferred[Any]]:
    def method(self: DeferredOwner, *args: Any, **kwargs: Any) -> Deferred[Any]:
        return self._call_deferred(name, how, args, kwargs)

    return method


def install(cls: type[DeferredOwner], table: Mapping[str, Completion], source: type) -> None:
    """Add one Deferred-returning method per table entry to ``cls`` (the generic wrapper).

    :param cls: the owner class to extend
    :param table: method name -> :class:`Completion`
    :param source: the callback-API class the methods come from (for signatures and docs)
    """
    for name, how in table.items():
        original = getattr(source, name)
        method = _deferred_method(name, how)
        method.__name__ = name
        method.__qualname__ = f"{cls.__name__}.{name}"
        method.__doc__ = (
            f"Deferred-returning :meth:`{source.__module__}.{source.__name__}.{name}`: the same "
            f"arguments but ``{how.callback_kwarg}``; the Deferred fires with what that callback "
            "would receive, or errbacks with the error (the close reason if the owner "
            "closes first).\n\n" + inspect.cleandoc(original.__doc__ or "")
        )
        signature = inspect.signature(original)
        method.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[p for p in signature.parameters.values() if p.name != how.callback_kwarg],
            return_annotation="Deferred",
        )
        setattr(cls, name, method)
