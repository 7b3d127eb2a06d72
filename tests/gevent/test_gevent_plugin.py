"""The ``gevent`` adapter as a plugin: described without importing gevent, loaded by name.

Checked in a fresh interpreter (bounded in time), since this test process may have imported
gevent for other reasons.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from amqp_core import plugins

    out = {}
    info = {i.name: i for i in plugins.installed_adapters()}["gevent"]
    out["distribution"] = info.distribution
    description = plugins.get_adapter("gevent")
    out["path"] = description.connection_class_path
    out["hint"] = description.install_hint
    out["gevent_after_describe"] = "gevent" in sys.modules
    cls = plugins.get_connection_class("gevent")
    out["class"] = cls.__module__ + "." + cls.__qualname__
    out["gevent_after_load"] = "gevent" in sys.modules
    import amqp_adapter_gevent
    out["same"] = cls is amqp_adapter_gevent.GeventConnection
    print(json.dumps(out))
    """
)


def test_described_lazily_and_loaded_by_name() -> None:
    completed = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                               timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    out = json.loads(completed.stdout)
    assert out == {
        "distribution": "amqp-adapter-gevent",
        "path": "amqp_adapter_gevent.connection:GeventConnection",
        "hint": "pip install amqp-adapter-gevent",
        "gevent_after_describe": False,
        "class": "amqp_adapter_gevent.connection.GeventConnection",
        "gevent_after_load": True,
        "same": True,
    }
