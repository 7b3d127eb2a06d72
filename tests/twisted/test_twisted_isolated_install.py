"""The Twisted adapter installs alone: amqp-core + amqp-adapter-twisted wheels in a clean venv.

Reuses the clean-venv helpers of ``tests/plugins/test_plugins_isolated_install.py``: both
wheels are built from the workspace (not editable) and installed into a fresh ``python -m
venv`` (Twisted and pluggy from the package index); a script run there checks that no other
adapter or framework came along, discovers the adapter through the plugin API and completes
a confirmed publish / consume round trip with the test broker over ``TwistedProtocolConnection``
under ``task.react``.  Every subprocess is bounded in time.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from test_plugins_isolated_install import UV, clean_env, run

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("amqp-core", "amqp-adapter-twisted")

SCRIPT = textwrap.dedent(
    """
    import importlib.metadata, importlib.util, json, os, sys, uuid

    import amqp_core
    from amqp_core import plugins

    out = {"amqp_core_file": amqp_core.__file__}
    others = ("tornado", "gevent", "uvloop", "pika", "amqp_adapter_asyncio")
    out["frameworks"] = [m for m in others if importlib.util.find_spec(m) is not None]
    out["distributions"] = sorted(d.metadata["Name"] for d in importlib.metadata.distributions())
    out["adapters"] = {i.name: i.distribution for i in plugins.installed_adapters()}
    out["reactor_imported_by_listing"] = "twisted.internet.reactor" in sys.modules
    connection_class = plugins.get_connection_class("twisted")
    out["connection_class"] = connection_class.__module__ + "." + connection_class.__name__
    out["reactor_imported_by_lookup"] = "twisted.internet.reactor" in sys.modules

    from twisted.internet import defer, task
    from twisted.internet.protocol import ClientCreator
    from amqp_adapter_twisted import TwistedProtocolConnection

    async def round_trip(reactor):
        params = amqp_core.URLParameters(os.environ["AMQP_TEST_URL"])
        creator = ClientCreator(reactor, TwistedProtocolConnection, params)
        conn = await creator.connectTCP(params.host, params.port)
        await conn.ready
        ch = await conn.channel()
        queue = "isolated-" + uuid.uuid4().hex
        await ch.queue_declare(queue, exclusive=True)
        await ch.confirm_delivery()
        await ch.basic_publish("", queue, b"from a clean venv")
        messages, _tag = await ch.basic_consume(queue)
        message = await messages.get()
        ch.basic_ack(message.method.delivery_tag)
        await conn.close()
        out["body"] = message.body.decode()

    def main(reactor):
        return defer.ensureDeferred(round_trip(reactor)).addTimeout(30, reactor)

    task.react(lambda reactor: main(reactor).addCallback(lambda _: print(json.dumps(out))))
    """
)


def build_wheels(out: Path, pip_python: Path | None) -> list[Path]:
    """Build the two wheels with ``uv build``, or with ``pip wheel`` of ``pip_python``."""
    for package in PACKAGES:
        source = str(ROOT / "packages" / package)
        if UV is not None:
            run([UV, "build", "--wheel", "--out-dir", str(out), source], 180,
                env=clean_env(), cwd=ROOT)
        else:
            assert pip_python is not None
            run([str(pip_python), "-m", "pip", "wheel", "--no-deps", "-w", str(out), source],
                180, env=clean_env())
    wheels = sorted(out.glob("*.whl"))
    assert len(wheels) == 2, wheels
    return wheels


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_twisted_adapter_installs_alone(tmp_path: Path, broker: Any) -> None:
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    if UV is not None:
        run([sys.executable, "-m", "venv", "--without-pip", str(venv)], 120, env=clean_env())
        wheels = build_wheels(tmp_path / "wheels", None)
        run([UV, "pip", "install", "--python", str(python), *map(str, wheels)], 300,
            env=clean_env())
    else:
        run([sys.executable, "-m", "venv", str(venv)], 120, env=clean_env())
        wheels = build_wheels(tmp_path / "wheels", python)
        run([str(python), "-m", "pip", "install", *map(str, wheels)], 300, env=clean_env())
    assert {w.name.split("-")[0] for w in wheels} == {"amqp_core", "amqp_adapter_twisted"}

    env = clean_env()
    env["AMQP_TEST_URL"] = broker.url
    output = run([str(python), "-c", SCRIPT], 90, env=env, cwd=tmp_path)
    result = json.loads(output.strip().splitlines()[-1])

    assert Path(result["amqp_core_file"]).is_relative_to(venv)  # the wheel, not the workspace
    assert result["frameworks"] == []
    assert {"amqp-core", "amqp-adapter-twisted", "pluggy", "Twisted"} <= {
        name if name != "twisted" else "Twisted" for name in result["distributions"]
    }
    assert result["adapters"] == {
        "blocking": "amqp-core", "select": "amqp-core", "twisted": "amqp-adapter-twisted",
    }
    assert result["reactor_imported_by_listing"] is False
    assert result["reactor_imported_by_lookup"] is False  # only using it installs the reactor
    assert result["connection_class"] == "amqp_adapter_twisted.connection.TwistedConnection"
    assert result["body"] == "from a clean venv"
