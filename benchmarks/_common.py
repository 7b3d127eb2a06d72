"""Helpers shared by the side-by-side benchmarks: broker, timing, tables.

Theory of operation: a benchmark measures our client and a peer (pika,
pamqp) in the same process, the same run and against the same broker, so the
ratio between them is meaningful even on a busy machine where the absolute
figures are not.  Timings use :func:`time.perf_counter`; CPU-bound figures
take the best of several repeats (the least disturbed one).

The broker is the one at ``AMQP_URL`` when that variable is set (or
``--url`` is given); otherwise a private node is started with
:class:`amqp_core.testing.broker.PrivateBroker` (127.0.0.1 only, its own
ports and directory) and stopped when the benchmark ends.

These scripts print figures; they never assert anything.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SRC = ROOT / "packages" / "amqp-core" / "src"

try:
    import amqp_core  # noqa: F401
except ImportError:  # not installed in this interpreter: use the source tree
    sys.path.insert(0, str(_SRC))


@dataclass(frozen=True)
class BrokerInfo:
    """Where the benchmark's broker listens."""

    url: str
    host: str
    port: int
    private: bool


@contextlib.contextmanager
def broker(url: str | None = None) -> Iterator[BrokerInfo]:
    """Yield the broker to measure against: ``url``, ``AMQP_URL``, or a private node.

    :param url: an ``amqp://`` URL; None to look at ``AMQP_URL`` and fall back to a
        private node started (and stopped) here
    """
    url = url or os.environ.get("AMQP_URL")
    if url:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        yield BrokerInfo(url, parts.hostname or "127.0.0.1", parts.port or 5672, False)
        return
    from amqp_core.testing.broker import PrivateBroker, ensure_installed

    ensure_installed()
    print("# starting a private RabbitMQ node (set AMQP_URL to use a running one) ...",
          file=sys.stderr, flush=True)
    with PrivateBroker() as node:
        yield BrokerInfo(node.url, node.host, node.port, True)


def best_of(repeats: int, run: Callable[[], float]) -> float:
    """Call ``run`` ``repeats`` times (it returns seconds) and return the fastest."""
    return min(run() for _ in range(repeats))


#: the clock :func:`timed` reads: wall time by default; ``time.process_time`` (this process's
#: CPU time) is steadier on a machine whose cores are shared with other work
CLOCK: Callable[[], float] = time.perf_counter


def timed(function: Callable[[], object]) -> float:
    """Seconds one call of ``function`` takes, on :data:`CLOCK`."""
    clock = CLOCK
    start = clock()
    function()
    return clock() - start


def ratio(ours: float | None, theirs: float | None, *, lower_is_better: bool = False) -> str:
    """``ours/theirs`` as ``1.23x`` (inverted when lower is better), or ``-``."""
    if not ours or not theirs:
        return "-"
    value = theirs / ours if lower_is_better else ours / theirs
    return f"{value:.2f}x"


def fmt_rate(value: float | None) -> str:
    """An operations-per-second figure, grouped by thousands."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a plain-text table (first column left-aligned, the rest right-aligned)."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = [str(cells[0]).ljust(widths[0])]
        out += [str(cell).rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(out)

    print()
    print(title)
    print(line(header))
    print("  ".join("-" * width for width in widths))
    for row in rows:
        print(line(row))
    sys.stdout.flush()


def describe_machine() -> str:
    """One line naming the interpreter, machine and library versions."""
    import pika

    try:
        import pamqp

        pamqp_version = pamqp.__version__
    except ImportError:  # pragma: no cover - pamqp is optional
        pamqp_version = "absent"
    from amqp_core import __version__

    return (
        f"# Python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.machine()}, {os.cpu_count()} CPUs; amqp_core {__version__}, "
        f"pika {pika.__version__}, pamqp {pamqp_version}"
    )
