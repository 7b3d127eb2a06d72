"""GeventConnection benchmark: ours (amqp-adapter-gevent) next to pika's, same broker, same run.

Usage::

    python benchmarks/gevent_bench.py             # full counts (a few minutes)
    python benchmarks/gevent_bench.py --quick     # small counts (under a minute)
    python benchmarks/gevent_bench.py --monkey    # the same after gevent.monkey.patch_all()
    AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/%2F python benchmarks/gevent_bench.py

Theory of operation: the scenarios are :mod:`select_bench`'s, unchanged (publish N x 64 B until
the broker holds them, confirmed publish with a window, consume + ack each with a prefetch,
publish -> deliver round trips), run on each library's ``GeventConnection`` instead of its
``SelectConnection``: a scenario's ``lib`` is a small namespace whose ``SelectConnection`` is the
gevent connection class.  ``ioloop.start()`` blocks the main greenlet while the hub runs the
connection, for both clients.  With ``--monkey`` the process is monkey-patched before anything
else is imported.  Figures, never assertions.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--monkey" in sys.argv:
    from gevent import monkey

    monkey.patch_all()

import argparse
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gevent
import pika
from _common import broker, describe_machine
from _scenarios import parse_args, print_broker, print_results
from pika.adapters.gevent_connection import GeventConnection as PikaGeventConnection
from select_bench import run_scenarios

import amqp_core
from amqp_adapter_gevent import GeventConnection


def _lib(name: str, module: Any, connection_class: type) -> Any:
    """A stand-in for the library module: its URLParameters, its gevent connection class."""
    return types.SimpleNamespace(
        __name__=name, URLParameters=module.URLParameters, SelectConnection=connection_class
    )


LIBS: dict[str, Any] = {
    "ours": _lib("amqp_core", amqp_core, GeventConnection),
    "pika": _lib("pika", pika, PikaGeventConnection),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--monkey", action="store_true",
                        help="run after gevent.monkey.patch_all() (done before any import)")
    args = parse_args(parser, argv)
    from gevent import monkey

    mode = "monkey-patched" if monkey.is_module_patched("socket") else "not monkey-patched"

    print(describe_machine() + f"; gevent {gevent.__version__} ({mode})")
    with broker(args.url) as info:
        print_broker(info, args)
        rows = run_scenarios(args, info.url, libs=LIBS)
    print_results(f"GeventConnection ({mode})", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
