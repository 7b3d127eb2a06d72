"""Run amqp_core's conformance kit against this adapter.

The kit is an opt-in pytest plugin.  It finds the ``asyncfd`` adapter by name
(its entry point) and would drive it with its generic harness, since
``AsyncfdEventLoop`` implements ``run_until_stopped`` / ``stop_soon``; the
harness below is registered anyway, to show how an adapter whose loop does not
do that plugs in.
"""

from __future__ import annotations

import asyncio
from typing import Any

from amqp_core.testing.harness import LoopHarness

pytest_plugins = ["amqp_core.testing"]


class AsyncfdHarness(LoopHarness):
    """Runs a fresh asyncio loop per test, through the native loop's own API."""

    def new_native_loop(self) -> Any:
        return asyncio.new_event_loop()

    def run_native(self) -> None:
        self.native.run_forever()

    def stop_native_threadsafe(self) -> None:
        self.native.call_soon_threadsafe(self.native.stop)

    def close_native(self) -> None:
        loop = self.native
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def pytest_amqp_core_harnesses(config: Any) -> dict[str, Any]:
    """Tell the kit how to run this adapter's loop."""
    return {"asyncfd": AsyncfdHarness}
