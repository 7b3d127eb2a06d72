"""``amqp-core``: a command-line client for RabbitMQ built on amqp_core.

Theory of operation
-------------------
:func:`main` parses the command line (:mod:`._parser`), builds a
:class:`~._commands.Context` (the arguments, the standard streams as they are
at call time, the environment) and runs the handler of the chosen command
(:data:`~._commands.COMMANDS`, plus :func:`~._bench.bench`).  A handler
returns the exit code or raises; :func:`main` is the only place that catches,
and it reports one line, ``amqp-core: error: <what> (<host>:<port>)``, with
the exit code :func:`~._errors.classify` gives (2 usage, 3 connection, 4
channel, 1 other, 130 Ctrl-C).  ``--traceback`` prints the traceback first.

The library logs through the ``amqp_core`` logger; without ``-v`` the command
keeps it quiet (a ``NullHandler``, so Python's last-resort handler does not
print its warnings next to the one-line error), with ``-v``/``-vv`` it logs
INFO/DEBUG to stderr for the duration of the call.

Only the standard library is used (``argparse``), so the ``cli`` extra of
amqp-core adds no dependency.  ``python -m amqp_core.cli`` runs the same
:func:`main` as the ``amqp-core`` console script.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import TextIO

from ._errors import (
    EXIT_CHANNEL,
    EXIT_CONNECTION,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    UsageError,
    classify,
)

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_CHANNEL",
    "EXIT_CONNECTION",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "UsageError",
    "main",
]

#: Exit code after the reader of our output went away (``| head``): 128 + SIGPIPE.
EXIT_BROKEN_PIPE = 141


@contextlib.contextmanager
def _logging(verbosity: int, stream: TextIO) -> Iterator[None]:
    logger = logging.getLogger("amqp_core")
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())
    if not verbosity:
        yield
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous = logger.level
    logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush is quiet."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``amqp-core`` command.

    :param argv: the arguments after the program name (default: ``sys.argv[1:]``)
    :returns: the exit code (0 ok, 1 failure, 2 usage, 3 connection, 4 channel, 130 Ctrl-C)
    """
    from ._bench import bench
    from ._commands import COMMANDS, Context
    from ._parser import build_parser

    out, err, stdin = sys.stdout, sys.stderr, sys.stdin
    arguments = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in arguments
    context: Context | None = None
    try:
        try:
            args = build_parser().parse_args(arguments)
        except SystemExit as exit_request:  # --help, --version
            code = exit_request.code
            return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
        show_traceback = bool(args.traceback)
        context = Context(args=args, out=out, err=err, stdin=stdin, environ=dict(os.environ))
        handler = bench if args.command == "bench" else COMMANDS[args.command]
        with _logging(args.verbose, err):
            return handler(context)
    except KeyboardInterrupt:
        err.write("amqp-core: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as error:  # every error becomes one line and a code
        if show_traceback:
            traceback.print_exception(error, file=err)
        code, text = classify(error, context.target if context is not None else None)
        err.write(f"amqp-core: error: {text}\n")
        err.flush()
        return code
