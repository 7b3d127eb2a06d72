"""Twisted's reactor is process-global: its suite (``suite/``) runs in a process of its own.

Theory of operation: in the main test process this directory only holds tests that spawn
processes (``test_twisted_suite.py`` runs ``python -m pytest tests/twisted/suite`` with the
session broker's description in the environment; the example and clean-install tests run
scripts).  ``suite/`` is collected only when ``AMQP_TWISTED_SUITE=1`` is set, i.e. in that
child process, so the main process never imports the reactor.
"""

from __future__ import annotations

import os

#: Set in the child process that runs the reactor-driven suite.
SUITE_ENV = "AMQP_TWISTED_SUITE"

collect_ignore = [] if os.environ.get(SUITE_ENV) == "1" else ["suite"]
