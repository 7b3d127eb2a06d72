"""``BaseConnection``: the asynchronous connection bound to one event loop.

Theory of operation: an adapter subclasses :class:`BaseConnection` and
implements one method, :meth:`BaseConnection._create_event_loop`, which turns
the user's ``custom_ioloop`` (or None) into an object implementing
:class:`amqp_core.io.contract.EventLoop` and the native loop exposed as
``ioloop``.  Everything else (the callback API, the driver, the connection
workflow) is shared.

With ``internal_connection_workflow=True`` (the default) the connection runs
the workflow over its own parameters; ``create_connection`` runs it over
several parameter sets, building one connection object per try.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import exceptions
from .._connection_api import Connection
from ..io.contract import EventLoop
from ..parameters import Parameters
from .utils import connection_workflow as workflow_module


class BaseConnection(Connection):
    """An asynchronous connection bound to a loop (subclassed per adapter).

    :param parameters: connection parameters (defaults when None)
    :param on_open_callback: ``callback(connection)``
    :param on_open_error_callback: ``callback(connection, exception)``
    :param on_close_callback: ``callback(connection, exception)``
    :param custom_ioloop: the adapter's native loop, or None for a default one
    :param internal_connection_workflow: connect by itself (True) or wait to be
        driven by ``create_connection`` (False)
    """

    def __init__(
        self,
        parameters: Parameters | None = None,
        on_open_callback: Callable[[Any], None] | None = None,
        on_open_error_callback: Callable[[Any, BaseException], None] | None = None,
        on_close_callback: Callable[[Any, BaseException], None] | None = None,
        custom_ioloop: Any = None,
        internal_connection_workflow: bool = True,
    ) -> None:
        if not isinstance(internal_connection_workflow, bool):
            raise TypeError("internal_connection_workflow must be bool")
        native, loop = self._create_event_loop(custom_ioloop)
        self._native_loop = native
        super().__init__(
            parameters, on_open_callback, on_open_error_callback, on_close_callback, loop
        )
        self._workflow: workflow_module.AMQPConnectionWorkflow | None = None
        if internal_connection_workflow:
            self._workflow = workflow_module.AMQPConnectionWorkflow()
            self._workflow.set_io_services(loop)
            self._workflow.start(
                [self.params],
                lambda: workflow_module.AMQPConnector(lambda _params: self, loop),
                native,
                self._on_internal_workflow_done,
            )

    @classmethod
    def _create_event_loop(cls, custom_ioloop: Any) -> tuple[Any, EventLoop]:
        """Return ``(native_loop, contract_loop)`` for ``custom_ioloop``."""
        raise NotImplementedError

    @property
    def ioloop(self) -> Any:
        """The adapter's native event loop."""
        return self._native_loop

    @property
    def event_loop(self) -> EventLoop:
        """The loop as the adapter contract sees it."""
        return self._loop

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the connection's loop thread; callable from any thread."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        self._loop.call_soon_threadsafe(callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        """Run ``callback`` after ``delay`` seconds on the connection's loop."""
        return self._loop.call_later(delay, callback)

    # ------------------------------------------------------------ workflow

    @classmethod
    def create_connection(
        cls,
        connection_configs: Sequence[Parameters],
        on_done: Callable[[Any], None],
        custom_ioloop: Any = None,
        workflow: workflow_module.AbstractAMQPConnectionWorkflow | None = None,
    ) -> workflow_module.AbstractAMQPConnectionWorkflow:
        """Try each configuration in turn; ``on_done(connection_or_exception)``.

        :returns: the workflow (call ``abort()`` on it to give up)
        """
        if not callable(on_done):
            raise TypeError("on_done must be callable")
        native, loop = cls._create_event_loop(custom_ioloop)

        def factory(params: Parameters) -> BaseConnection:
            return cls(parameters=params, custom_ioloop=native,
                       internal_connection_workflow=False)

        def done(result: Any) -> None:
            if isinstance(result, BaseConnection):
                result._on_open_succeeded()
            on_done(result)

        if workflow is None:
            workflow = workflow_module.AMQPConnectionWorkflow()
        if isinstance(workflow, workflow_module.AMQPConnectionWorkflow):
            workflow.set_io_services(loop)
        workflow.start(
            connection_configs, lambda: workflow_module.AMQPConnector(factory, loop), native, done
        )
        return workflow

    def _on_internal_workflow_done(self, result: Any) -> None:
        self._workflow = None
        if not isinstance(result, BaseException):
            self._on_open_succeeded()
            return
        self._on_open_failed(_user_facing_error(result, self.params))

    def _abort_opening(self, error: Exception) -> None:
        if self._workflow is not None:
            workflow, self._workflow = self._workflow, None
            workflow.cancel()
        self._abort_attempt()
        self._on_open_failed(error)


def _user_facing_error(error: BaseException, params: Parameters) -> BaseException:
    """What the open-error callback gets: the most specific error there is."""
    if isinstance(error, workflow_module.AMQPConnectionWorkflowAborted):
        return exceptions.ConnectionOpenAborted("connection workflow aborted")
    if isinstance(error, workflow_module.AMQPConnectionWorkflowFailed) and error.exceptions:
        last = error.exceptions[-1]
        if isinstance(last, workflow_module.AMQPConnectorAMQPHandshakeError) and isinstance(
            last.exception, exceptions.AMQPConnectionError
        ):
            return last.exception
        return exceptions.AMQPConnectionError(error, host=params.host, port=params.port)
    return error
