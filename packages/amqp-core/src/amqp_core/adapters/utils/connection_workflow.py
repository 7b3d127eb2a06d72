"""The connection workflow: parameter sets x DNS addresses x attempts, as pika does it.

Theory of operation: :class:`AMQPConnectionWorkflow` walks the connection
configurations in order; for each it resolves the host (every address DNS
returns is tried in turn) and asks an :class:`AMQPConnector` to bring one
connection up on one address: TCP connect within ``socket_timeout``, TLS, and
the AMQP handshake, all within ``stack_timeout``.  A full pass over every
configuration is one attempt; the number of attempts and the pause between
them come from the LAST configuration (``connection_attempts``,
``retry_delay``), as in pika.  Every failed try's exception is recorded and
handed over in :class:`AMQPConnectionWorkflowFailed`.

Failures that retrying cannot fix end the workflow at once: a broker-refused
login, an unknown vhost, a closed-by-broker handshake.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from ... import exceptions
from ..._core_factory import FINAL_HANDSHAKE_ERRORS
from ...io.contract import EventLoop, TimerHandle
from ...parameters import Parameters

LOGGER = logging.getLogger(__name__)

__all__ = [
    "AMQPConnectionWorkflow",
    "AMQPConnectionWorkflowAborted",
    "AMQPConnectionWorkflowFailed",
    "AMQPConnectionWorkflowWrongState",
    "AMQPConnector",
    "AMQPConnectorAMQPHandshakeError",
    "AMQPConnectorAborted",
    "AMQPConnectorException",
    "AMQPConnectorPhaseErrorBase",
    "AMQPConnectorSocketConnectError",
    "AMQPConnectorStackTimeout",
    "AMQPConnectorTransportSetupError",
    "AMQPConnectorWrongState",
    "AbstractAMQPConnectionWorkflow",
]


class AMQPConnectorException(Exception):
    """Base of connector errors."""


class AMQPConnectorStackTimeout(AMQPConnectorException):
    """The whole stack (TCP + TLS + AMQP) did not come up within stack_timeout."""


class AMQPConnectorAborted(AMQPConnectorException):
    """``abort()`` was called."""


class AMQPConnectorWrongState(AMQPConnectorException):
    """A method was called in the wrong state."""


class AMQPConnectorPhaseErrorBase(AMQPConnectorException):
    """A phase failed; ``exception`` is the cause, ``host``/``port`` say where.

    :param exception: the underlying error
    :param host: the configured host name
    :param port: the configured port
    :param address: the resolved socket address this attempt used (one of the
        addresses DNS returned for ``host``), when known
    """

    def __init__(self, exception: BaseException, *args: Any,
                 host: str | None = None, port: int | None = None,
                 address: tuple[Any, ...] | None = None) -> None:
        self.exception = exception
        self.host = host
        self.port = port
        self.address = address
        super().__init__(*args)

    def __repr__(self) -> str:
        where = f"host={self.host} port={self.port}"
        if self.address is not None:
            where += f" address={self.address!r}"
        return f"{self.__class__.__name__}: {self.exception!r}; {where}"


class AMQPConnectorSocketConnectError(AMQPConnectorPhaseErrorBase):
    """TCP connect failed (refused, unreachable, timed out)."""


class AMQPConnectorTransportSetupError(AMQPConnectorPhaseErrorBase):
    """The transport (TLS) could not be set up."""


class AMQPConnectorAMQPHandshakeError(AMQPConnectorPhaseErrorBase):
    """The AMQP handshake failed."""


class AMQPConnectionWorkflowAborted(AMQPConnectorException):
    """The workflow was aborted."""


class AMQPConnectionWorkflowWrongState(AMQPConnectorException):
    """A workflow operation was requested in the wrong state (pika's class)."""


class AMQPConnectionWorkflowFailed(AMQPConnectorException):
    """Every attempt failed; ``exceptions`` lists them in order.

    :param exceptions: the errors of each try
    """

    def __init__(self, exceptions: list[BaseException], *args: Any) -> None:
        self.exceptions = tuple(exceptions)
        super().__init__(exceptions, *args)

    def __repr__(self) -> str:
        last = self.exceptions[-1] if self.exceptions else None
        return (
            f"{self.__class__.__name__}: {len(self.exceptions)} exceptions in all; "
            f"last exception - {last!r}; first exception - "
            f"{self.exceptions[0] if self.exceptions else None!r}"
        )


ConnectionFactory = Callable[[Parameters], Any]
OnWorkflowDone = Callable[[Any], None]


class AMQPConnector:
    """Brings one connection up on one resolved address.

    :param conn_factory: ``conn_factory(params)`` returns a connection object
        (ours) that has not started yet
    :param loop: the adapter's event loop
    """

    def __init__(self, conn_factory: ConnectionFactory, loop: EventLoop) -> None:
        self._conn_factory = conn_factory
        self._loop = loop
        self._connection: Any = None
        self._on_done: Callable[[Any], None] | None = None

    def start(self, addr_record: tuple[Any, ...], conn_params: Parameters,
              on_done: Callable[[Any], None]) -> None:
        """Connect to ``addr_record`` (a getaddrinfo entry); ``on_done(conn_or_exc)``."""
        if self._on_done is not None:
            raise AMQPConnectorWrongState("AMQPConnector.start() called twice")
        self._on_done = on_done
        family, _socktype, _proto, _canonname, sockaddr = addr_record
        self._connection = self._conn_factory(conn_params)

        def attempt_done(error: Exception | None) -> None:
            # the connection classifies its own failure by phase (see _connection_api)
            done, self._on_done = self._on_done, None
            if done is not None:
                done(self._connection if error is None else error)

        self._connection._start_attempt(sockaddr, family, attempt_done)

    def abort(self) -> None:
        """Give up; ``on_done`` gets :class:`AMQPConnectorAborted`."""
        done = self.cancel()
        if done is not None:
            done(AMQPConnectorAborted())

    def cancel(self) -> Callable[[Any], None] | None:
        """Give up without reporting anything; returns the ``on_done`` that was pending."""
        done, self._on_done = self._on_done, None
        if self._connection is not None:
            self._connection._abort_attempt()
        return done


class AbstractAMQPConnectionWorkflow:
    """The interface a workflow offers (pika's)."""

    def start(self, connection_configs: Sequence[Parameters],
              connector_factory: Callable[[], AMQPConnector], native_loop: Any,
              on_done: OnWorkflowDone) -> None:
        """Start; ``on_done(connection_or_exception)`` once."""
        raise NotImplementedError

    def abort(self) -> None:
        """Stop; ``on_done`` gets :class:`AMQPConnectionWorkflowAborted`."""
        raise NotImplementedError




class AMQPConnectionWorkflow(AbstractAMQPConnectionWorkflow):
    """Tries every configuration and address, ``connection_attempts`` times.

    :param _until_first_amqp_attempt: stop after the first try that reached
        the AMQP handshake (pika's switch, used by single-config adapters)
    """

    def __init__(self, _until_first_amqp_attempt: bool = False) -> None:
        self._until_first_amqp_attempt = _until_first_amqp_attempt
        self._loop: EventLoop | None = None
        self._configs: list[Parameters] = []
        self._connector_factory: Callable[[], AMQPConnector] | None = None
        self._on_done: OnWorkflowDone | None = None
        self._errors: list[BaseException] = []
        self._attempts_left = 0
        self._config_index = 0
        self._addresses: list[tuple[Any, ...]] = []
        self._connector: AMQPConnector | None = None
        self._pending: TimerHandle | None = None
        self._started = False
        self._done = False  # completion reported, or abort() called

    def set_io_services(self, loop: EventLoop) -> None:
        """Give the workflow its loop (pika's name for this step)."""
        self._loop = loop

    def start(self, connection_configs: Sequence[Parameters],
              connector_factory: Callable[[], AMQPConnector], native_loop: Any,
              on_done: OnWorkflowDone) -> None:
        """Start the workflow."""
        if self._started:
            raise AMQPConnectorWrongState("workflow already started")
        configs = list(connection_configs)
        if not configs:
            raise ValueError("connection_configs must not be empty")
        for config in configs:
            if not isinstance(config, Parameters):
                raise TypeError(
                    f"connection_configs must hold Parameters, not {type(config).__name__}"
                )
        if self._loop is None:
            raise AMQPConnectorWrongState("set_io_services() must be called before start()")
        self._configs = configs
        self._connector_factory = connector_factory
        self._on_done = on_done
        self._started = True
        self._attempts_left = configs[-1].connection_attempts
        self._pending = self._loop.call_soon(self._start_cycle)

    def abort(self) -> None:
        """Stop; ``on_done`` gets :class:`AMQPConnectionWorkflowAborted` from the loop.

        :raises AMQPConnectorWrongState: before :meth:`start`, or after completion was
            reported (as in pika)
        """
        # Fix (pika compatibility): abort() used to be silently ignored in the wrong state,
        # and called on_done synchronously, from inside abort(); pika raises, and reports
        # the abort from the loop, so the caller never re-enters its own callback.
        if not self._started:
            raise AMQPConnectorWrongState("Cannot abort before starting.")
        if self._done:
            if self._on_done is None:
                raise AMQPConnectorWrongState("Cannot abort after completion was reported")
            return  # already aborting
        self._done = True
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._connector is not None:
            connector, self._connector = self._connector, None
            connector.cancel()
        assert self._loop is not None
        self._loop.call_soon(lambda: self._report(AMQPConnectionWorkflowAborted()))

    def cancel(self) -> None:
        """Stop at once and report nothing (the owner reports the outcome itself)."""
        self._on_done = None
        if self._started and not self._done:
            self.abort()

    # ------------------------------------------------------------ internals

    def _finish(self, result: Any) -> None:
        if self._done:
            return  # aborted meanwhile: the abort is what gets reported
        self._done = True
        self._report(result)

    def _report(self, result: Any) -> None:
        done, self._on_done = self._on_done, None
        if done is not None:
            done(result)

    def _start_cycle(self) -> None:
        self._pending = None
        self._attempts_left -= 1
        self._config_index = 0
        self._try_config()

    def _try_config(self) -> None:
        assert self._loop is not None
        if self._config_index >= len(self._configs):
            self._cycle_failed()
            return
        params = self._configs[self._config_index]
        self._pending = self._loop.getaddrinfo(
            params.host, params.port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP, 0,
            self._on_resolved,
        )

    def _on_resolved(self, result: Any) -> None:
        self._pending = None
        if self._done or self._on_done is None:
            return
        params = self._configs[self._config_index]
        if isinstance(result, BaseException):
            self._errors.append(
                exceptions.AMQPConnectionError(
                    f"Could not resolve {params.host}: {result!r}",
                    host=params.host, port=params.port,
                )
            )
            self._config_index += 1
            self._try_config()
            return
        self._addresses = list(result)
        self._try_address()

    def _try_address(self) -> None:
        if not self._addresses:
            self._config_index += 1
            self._try_config()
            return
        record = self._addresses.pop(0)
        assert self._connector_factory is not None
        self._connector = self._connector_factory()
        self._connector.start(record, self._configs[self._config_index], self._on_connector_done)

    def _on_connector_done(self, result: Any) -> None:
        self._connector = None
        if self._done or self._on_done is None:
            return
        if not isinstance(result, BaseException):
            self._finish(result)
            return
        self._errors.append(result)
        LOGGER.warning("Connection attempt failed: %r", result)
        cause = getattr(result, "exception", None)
        reached_amqp = isinstance(result, AMQPConnectorAMQPHandshakeError)
        until_first = reached_amqp and self._until_first_amqp_attempt
        if isinstance(cause, FINAL_HANDSHAKE_ERRORS) or until_first:
            self._finish(AMQPConnectionWorkflowFailed(self._errors))
            return
        self._try_address()

    def _cycle_failed(self) -> None:
        assert self._loop is not None
        if self._attempts_left <= 0:
            self._finish(AMQPConnectionWorkflowFailed(self._errors))
            return
        delay = self._configs[-1].retry_delay
        self._pending = self._loop.call_later(delay, self._start_cycle)
