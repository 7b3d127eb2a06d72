"""Lazy loading, checked in fresh interpreters by inspecting ``sys.modules``.

``import amqp_core`` imports no event-loop framework and no adapter package; listing adapters
imports nothing either; asking for one adapter loads that adapter's entry point only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

FRAMEWORKS = ("asyncio", "uvloop", "tornado", "twisted", "gevent")
ADAPTER_MODULES = (
    "amqp_adapter_asyncio",
    "amqp_core.adapters.select_connection",
    "amqp_core.adapters.blocking_connection",
    "amqp_core.adapters.builtin_plugin",
)

PROBE = textwrap.dedent(
    """
    import json, sys

    WATCHED = %r

    def loaded():
        return sorted(m for m in WATCHED if m in sys.modules)

    steps = {}
    import amqp_core
    steps["import amqp_core"] = loaded()
    from amqp_core import plugins
    steps["import plugins"] = loaded()
    names = [info.name for info in plugins.installed_adapters()]
    steps["installed_adapters"] = loaded()
    plugins.get_adapter("select")
    steps["get_adapter select"] = loaded()
    plugins.get_connection_class("select")
    steps["get_connection_class select"] = loaded()
    plugins.get_adapter("asyncio")
    steps["get_adapter asyncio"] = loaded()
    print(json.dumps({"names": names, "steps": steps}))
    """
)


def probe() -> dict[str, Any]:
    script = PROBE % (FRAMEWORKS + ADAPTER_MODULES,)
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def test_loading_is_lazy() -> None:
    result = probe()
    steps = result["steps"]
    assert {"asyncio", "blocking", "select"} <= set(result["names"])
    assert steps["import amqp_core"] == []
    assert steps["import plugins"] == []
    assert steps["installed_adapters"] == []  # metadata only
    assert steps["get_adapter select"] == ["amqp_core.adapters.builtin_plugin"]
    assert steps["get_connection_class select"] == [
        "amqp_core.adapters.builtin_plugin", "amqp_core.adapters.select_connection",
    ]
    after_asyncio = set(steps["get_adapter asyncio"])
    assert "amqp_adapter_asyncio" in after_asyncio
    assert not after_asyncio & {"uvloop", "tornado", "twisted", "gevent"}
    assert "amqp_core.adapters.blocking_connection" not in after_asyncio
