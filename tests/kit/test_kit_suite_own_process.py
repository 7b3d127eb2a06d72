"""The kit for adapters that need a process of their own (Twisted's reactor, gevent's hub).

Theory of operation: ``conftest.py`` deselects those adapters from the in-process run and
starts one child pytest per adapter (``test_kit_suite.py`` with ``AMQP_KIT_ADAPTERS=<name>``,
sharing this session's broker) as soon as the first test of this directory runs, so the
children work while the other kit tests run; this module, collected last, waits (bounded) for
each child and requires a clean summary.  The parameters are the installed adapters whose
harness asks for its own process: an adapter that is not installed is simply not a parameter.
"""

from __future__ import annotations

import re

import pytest
from conftest import CHILD_TIMEOUT, OWN_PROCESS, Child


@pytest.mark.timeout(CHILD_TIMEOUT + 30)
@pytest.mark.parametrize("adapter", OWN_PROCESS)
def test_kit_in_its_own_process(adapter: str, own_process_children: dict[str, Child]) -> None:
    code, output = own_process_children[adapter].wait()
    lines = output.splitlines()
    failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    tail = "\n".join([*failures, "...", *lines[-30:]])
    summary = re.findall(r"(\d+) (passed|failed|errors?)", lines[-1] if lines else "")
    counts = {kind.rstrip("s"): int(n) for n, kind in summary}
    assert code == 0, f"the kit failed for {adapter} (exit {code}):\n{tail}"
    assert counts.get("passed", 0) >= 40 and not counts.get("failed") and not counts.get("error"), (
        f"unexpected summary for {adapter}:\n{tail}")
