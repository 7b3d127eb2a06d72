"""amqp-adapter-gevent installs alone: amqp-core + amqp-adapter-gevent wheels in a clean venv.

Reuses the clean-venv helpers of ``tests/plugins/test_plugins_isolated_install.py`` (``run``,
``clean_env``, ``UV``; loaded by path, the test folders are not packages).  The two wheels are
built from the workspace, installed into a fresh virtualenv (gevent and pluggy come from the
package index), and a script run there checks that gevent is the only framework present,
discovers the adapter by name and completes a confirmed publish / consume round trip with the
test broker, with and without monkey-patching (one process each).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("amqp-core", "amqp-adapter-gevent")


def _load_helpers() -> ModuleType:
    path = ROOT / "tests" / "plugins" / "test_plugins_isolated_install.py"
    spec = importlib.util.spec_from_file_location("_isolated_install_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _load_helpers()

SCRIPT = textwrap.dedent(
    """
    import sys
    if sys.argv[1] == "monkey":
        from gevent import monkey
        monkey.patch_all()
    import importlib.metadata, importlib.util, json, os, uuid

    import gevent
    import gevent.event
    import amqp_core
    from amqp_core import plugins

    out = {"amqp_core_file": amqp_core.__file__}
    out["frameworks"] = [m for m in ("tornado", "twisted", "gevent", "uvloop")
                         if importlib.util.find_spec(m) is not None]
    out["distributions"] = sorted(d.metadata["Name"] for d in importlib.metadata.distributions())
    out["adapters"] = {i.name: i.distribution for i in plugins.installed_adapters()}
    GeventConnection = plugins.get_connection_class("gevent")
    out["connection_class"] = GeventConnection.__module__ + "." + GeventConnection.__name__
    try:
        plugins.get_adapter("asyncio")
    except plugins.AdapterNotFoundError as error:
        out["asyncio"] = str(error)

    queue = "isolated-gevent-" + uuid.uuid4().hex
    got = gevent.event.AsyncResult()

    def on_open(connection):
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel):
        def consume(_frame):
            channel.basic_publish("", queue, b"from a clean venv")
            channel.basic_consume(queue, on_message)
        def on_message(ch, method, properties, body):
            ch.basic_ack(method.delivery_tag)
            got.set(body.decode())
        channel.queue_declare(queue, exclusive=True,
                              callback=lambda _f: channel.confirm_delivery(
                                  lambda _f: None, callback=consume))

    connection = GeventConnection(amqp_core.URLParameters(os.environ["AMQP_TEST_URL"]),
                                  on_open_callback=on_open,
                                  on_open_error_callback=lambda c, e: got.set_exception(e))
    out["body"] = got.get(timeout=30)
    connection.close()
    print(json.dumps(out))
    """
)


def build_wheels(out: Path, pip_python: Path | None) -> list[Path]:
    """Build the two wheels with ``uv build``, or with ``pip wheel`` of ``pip_python``."""
    for package in PACKAGES:
        source = str(ROOT / "packages" / package)
        if helpers.UV is not None:
            helpers.run([helpers.UV, "build", "--wheel", "--out-dir", str(out), source], 180,
                        env=helpers.clean_env(), cwd=ROOT)
        else:
            assert pip_python is not None
            helpers.run([str(pip_python), "-m", "pip", "wheel", "--no-deps", "-w", str(out),
                         source], 180, env=helpers.clean_env())
    wheels = sorted(out.glob("*.whl"))
    assert len(wheels) == 2, wheels
    return wheels


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_gevent_adapter_installs_alone(tmp_path: Path, broker: Any) -> None:
    run, clean_env, uv = helpers.run, helpers.clean_env, helpers.UV
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    if uv is not None:
        run([sys.executable, "-m", "venv", "--without-pip", str(venv)], 120, env=clean_env())
        wheels = build_wheels(tmp_path / "wheels", None)
        run([uv, "pip", "install", "--python", str(python), *map(str, wheels)], 300,
            env=clean_env())
    else:
        run([sys.executable, "-m", "venv", str(venv)], 120, env=clean_env())
        wheels = build_wheels(tmp_path / "wheels", python)
        run([str(python), "-m", "pip", "install", *map(str, wheels)], 300, env=clean_env())
    assert {w.name.split("-")[0] for w in wheels} == {"amqp_core", "amqp_adapter_gevent"}

    env = clean_env()
    env["AMQP_TEST_URL"] = broker.url
    for mode in ("plain", "monkey"):
        result = json.loads(run([str(python), "-c", SCRIPT, mode], 90, env=env, cwd=tmp_path))
        assert Path(result["amqp_core_file"]).is_relative_to(venv)  # the wheel, not the workspace
        assert result["frameworks"] == ["gevent"]
        assert {"amqp-core", "amqp-adapter-gevent", "gevent", "pluggy"} <= set(
            result["distributions"])
        assert not {"tornado", "Twisted", "uvloop", "amqp-adapter-asyncio"} & set(
            result["distributions"])
        assert result["adapters"] == {
            "gevent": "amqp-adapter-gevent", "blocking": "amqp-core", "select": "amqp-core",
        }
        assert result["connection_class"] == "amqp_adapter_gevent.connection.GeventConnection"
        assert "pip install amqp-adapter-asyncio" in result["asyncio"]
        assert result["body"] == "from a clean venv"
