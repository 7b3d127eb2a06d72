"""The whole conformance kit in one import: ``from amqp_core.testing.contract_tests import *``.

Theory of operation: this module only re-exports the kit's test functions, so
pytest collects all of them in the importing module, each parametrized over the
selected adapters by the kit's plugin (``-p amqp_core.testing``):

* :mod:`~amqp_core.testing.loop_tests` -- soon-callbacks, timers, the thread-safe callback;
* :mod:`~amqp_core.testing.stream_tests` -- streams, TLS, large writes, close vs abort.
"""

from __future__ import annotations

from .loop_tests import *  # noqa: F403
from .loop_tests import __all__ as _loop_all
from .stream_tests import *  # noqa: F403
from .stream_tests import __all__ as _stream_all

__all__ = [name for name in (*_loop_all, *_stream_all) if name.startswith("test_")]
