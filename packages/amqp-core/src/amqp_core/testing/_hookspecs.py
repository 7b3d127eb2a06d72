"""The pytest hook the conformance kit adds: how a project hands the kit its loop harnesses.

Theory of operation: the kit's plugin (:mod:`amqp_core.testing.plugin`) adds
this module's hook specifications with ``pytest_addhooks``.  A conftest (or a
pytest plugin) of an adapter's project implements the hook to tell the kit
how to run its loop; the kit calls it, scoped to the test's directory, each
time it lists adapters or builds a harness.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from .harness import HarnessFactory


def pytest_amqp_core_harnesses(
    config: pytest.Config,
) -> Mapping[str, HarnessFactory] | None:
    """Return ``{adapter name: harness factory}`` for adapters the kit should run.

    A factory is called with the adapter's name and returns a
    :class:`~amqp_core.testing.harness.LoopHarness` (a ``LoopHarness``
    subclass is such a factory).  A name returned here is added to the
    adapters the kit runs by default, even if no entry point declares it.
    Later results do not replace earlier ones.

    :param config: the pytest config
    """
