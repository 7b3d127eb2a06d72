"""TornadoConnection benchmark: ours next to pika's, same broker, same run.

Usage::

    python benchmarks/tornado_bench.py             # full counts (a few minutes)
    python benchmarks/tornado_bench.py --quick     # small counts (under a minute)
    AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/%2F python benchmarks/tornado_bench.py

Theory of operation: the scenarios are :mod:`select_bench`'s, unchanged (publish N x 64 B until
the broker holds them, confirmed publish with a window, consume with a prefetch and one ack per
message, round-trip latency p50/p99, and the client's CPU time per message beside each
throughput); only the connection differs.  :class:`TornadoRun` replaces
``Run.execute`` so that each run gets a fresh tornado ``IOLoop`` and either
:class:`amqp_adapter_tornado.TornadoConnection` (ours) or
``pika.adapters.tornado_connection.TornadoConnection`` (pika's) on it; the scenario classes are
mixed in with it.  ``ioloop.call_later``, ``ioloop.stop`` and ``ioloop.remove_timeout`` that the
scenarios use are tornado's own.  Each figure is the best of ``--repeats`` runs, every run bounded
by ``--timeout`` seconds.  Figures, never assertions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import broker, describe_machine
from _scenarios import parse_args, print_broker, print_results
from select_bench import (
    BenchError,
    ConfirmRun,
    ConsumeRun,
    PublishRun,
    RoundTripRun,
    Run,
    run_scenarios,
)
from tornado.ioloop import IOLoop

import amqp_core
from amqp_adapter_tornado import TornadoConnection


def _pika_tornado_connection() -> type:
    from pika.adapters.tornado_connection import TornadoConnection as PikaTornadoConnection

    connection_class: type = PikaTornadoConnection
    return connection_class


class TornadoRun(Run):
    """``Run.execute`` on a fresh tornado IOLoop with the library's TornadoConnection."""

    def execute(self) -> Any:
        lib = self.lib
        connection_class = TornadoConnection if lib is amqp_core else _pika_tornado_connection()
        ioloop = IOLoop(make_current=False)
        try:
            self.connection = connection_class(
                lib.URLParameters(self.url),
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
                custom_ioloop=ioloop,
            )
            timer = ioloop.call_later(self.timeout, self._on_timeout)
            ioloop.start()
            ioloop.remove_timeout(timer)
        finally:
            ioloop.close(all_fds=True)
        if self.error is not None:
            raise BenchError(f"{lib.__name__}: {self.error!r}")
        return self.result


class TornadoPublishRun(TornadoRun, PublishRun):
    pass


class TornadoConfirmRun(TornadoRun, ConfirmRun):
    pass


class TornadoConsumeRun(TornadoRun, ConsumeRun):
    pass


class TornadoRoundTripRun(TornadoRun, RoundTripRun):
    pass


RUNS: dict[str, type[Run]] = {
    "a": TornadoPublishRun, "b": TornadoConfirmRun, "c": TornadoConsumeRun,
    "d": TornadoRoundTripRun,
}


def main(argv: list[str] | None = None) -> int:
    import tornado

    args = parse_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]), argv)
    print(f"{describe_machine()}, tornado {tornado.version}")
    with broker(args.url) as info:
        print_broker(info, args)
        rows = run_scenarios(args, info.url, RUNS)
    print_results("TornadoConnection", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
