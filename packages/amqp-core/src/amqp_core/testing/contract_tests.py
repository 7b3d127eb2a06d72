"""The whole conformance kit in one import: ``from amqp_core.testing.contract_tests import *``.

Theory of operation: this module only re-exports the kit's test functions, so
pytest collects all of them in the importing module, each parametrized over the
selected adapters by the kit's plugin (``-p amqp_core.testing``):

* :mod:`~amqp_core.testing.loop_tests` -- soon-callbacks, timers, the thread-safe callback;
* :mod:`~amqp_core.testing.stream_tests` -- streams, TLS, large writes, close vs abort;
* :mod:`~amqp_core.testing.protocol_tests` -- the adapter's connection class against a scripted
  AMQP peer (no broker needed);
* :mod:`~amqp_core.testing.scenarios` and :mod:`~amqp_core.testing.blocking_scenarios` -- live
  scenarios against a broker (skipped without one: ``--amqp-url`` or ``--amqp-private-broker``);
* :mod:`~amqp_core.testing.stress_scenarios` -- a 32-thread ``add_callback_threadsafe`` hammer and
  open/close leak cycles (live, marked ``slow``);
* :mod:`~amqp_core.testing.misbehaving_peer_tests` -- a peer that breaks the protocol (bad
  frames, truncated tables, unopened channels, huge sizes, garbage instead of Start);
* :mod:`~amqp_core.testing.fault_scenarios` -- live scenarios under network faults (a silent
  peer, a lost or cut stream, failed connects) through a fault-injecting proxy.
"""

from __future__ import annotations

from .blocking_scenarios import *  # noqa: F403
from .blocking_scenarios import __all__ as _blocking_all
from .fault_scenarios import *  # noqa: F403
from .fault_scenarios import __all__ as _fault_all
from .loop_tests import *  # noqa: F403
from .loop_tests import __all__ as _loop_all
from .misbehaving_peer_tests import *  # noqa: F403
from .misbehaving_peer_tests import __all__ as _misbehaving_all
from .protocol_tests import *  # noqa: F403
from .protocol_tests import __all__ as _protocol_all
from .scenarios import *  # noqa: F403
from .scenarios import __all__ as _live_all
from .stream_tests import *  # noqa: F403
from .stream_tests import __all__ as _stream_all
from .stress_scenarios import *  # noqa: F403
from .stress_scenarios import __all__ as _stress_all

__all__ = [
    name
    for name in (*_loop_all, *_stream_all, *_protocol_all, *_live_all, *_blocking_all,
                 *_stress_all, *_fault_all, *_misbehaving_all)
    if name.startswith("test_")
]
