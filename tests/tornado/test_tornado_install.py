"""The tornado adapter installs alone: amqp-core + amqp-adapter-tornado wheels in a clean venv.

The same check as the asyncio adapter's (``tests/plugins/test_plugins_isolated_install.py``),
whose helpers (``run``, ``clean_env``, ``build_wheels``) are loaded from that file and pointed at
this package's pair of wheels: the two wheels are built from the workspace (not editable) and
installed into a fresh ``python -m venv`` with their dependencies (pluggy, tornado) from the
package index; a script run there checks that no other adapter or framework came along, that
``import amqp_core`` does not import tornado, that the adapter is found by name through the
plugin API, and completes a publish/consume round trip with the test broker.  Every subprocess
is bounded in time.
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

HELPERS_FILE = (Path(__file__).resolve().parents[1] / "plugins"
                / "test_plugins_isolated_install.py")
PACKAGES = ("amqp-core", "amqp-adapter-tornado")


def _install_helpers() -> ModuleType:
    """The isolated-install helpers, as a private module aimed at this package's wheels."""
    spec = importlib.util.spec_from_file_location("_tornado_isolated_install", HELPERS_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.PACKAGES = PACKAGES  # type: ignore[attr-defined]  # build_wheels builds these
    return module


SCRIPT = textwrap.dedent(
    """
    import importlib.metadata, importlib.util, json, os, sys, uuid

    import amqp_core
    from amqp_core import plugins

    out = {"amqp_core_file": amqp_core.__file__}
    out["tornado_imported_by_core"] = "tornado" in sys.modules
    out["frameworks"] = [m for m in ("tornado", "twisted", "gevent", "uvloop")
                         if importlib.util.find_spec(m) is not None]
    out["distributions"] = sorted(d.metadata["Name"] for d in importlib.metadata.distributions())
    out["adapters"] = {i.name: i.distribution for i in plugins.installed_adapters()}
    out["tornado_imported_by_listing"] = "tornado" in sys.modules
    connection_class = plugins.get_connection_class("tornado")
    out["connection_class"] = connection_class.__module__ + "." + connection_class.__name__
    try:
        plugins.get_adapter("asyncio")
    except plugins.AdapterNotFoundError as error:
        out["asyncio"] = str(error)

    from tornado.ioloop import IOLoop

    ioloop = IOLoop(make_current=False)
    queue = "isolated-" + uuid.uuid4().hex
    got = []

    def on_open(connection):
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel):
        def on_message(ch, method, properties, body):
            got.append(body.decode())
            ch.basic_ack(method.delivery_tag)
            ch.connection.close()

        def on_declared(_frame):
            channel.basic_consume(queue, on_message)
            channel.basic_publish("", queue, b"from a clean venv")

        channel.queue_declare(queue, exclusive=True, callback=on_declared)

    connection = connection_class(
        amqp_core.URLParameters(os.environ["AMQP_TEST_URL"]),
        on_open_callback=on_open,
        on_open_error_callback=lambda c, e: ioloop.stop(),
        on_close_callback=lambda c, r: ioloop.stop(),
        custom_ioloop=ioloop,
    )
    ioloop.call_later(30, ioloop.stop)
    ioloop.start()
    ioloop.close()
    out["body"] = got[0] if got else None
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_tornado_adapter_installs_alone(tmp_path: Path, broker: Any) -> None:
    helpers = _install_helpers()
    run, clean_env, uv = helpers.run, helpers.clean_env, helpers.UV
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    if uv is not None:
        run([sys.executable, "-m", "venv", "--without-pip", str(venv)], 120, env=clean_env())
        wheels = helpers.build_wheels(tmp_path / "wheels", None)
        run([uv, "pip", "install", "--python", str(python), *map(str, wheels)], 180,
            env=clean_env())
    else:
        run([sys.executable, "-m", "venv", str(venv)], 120, env=clean_env())
        wheels = helpers.build_wheels(tmp_path / "wheels", python)
        run([str(python), "-m", "pip", "install", *map(str, wheels)], 180, env=clean_env())
    assert {w.name.split("-")[0] for w in wheels} == {"amqp_core", "amqp_adapter_tornado"}

    env = clean_env()
    env["AMQP_TEST_URL"] = broker.url
    result = json.loads(run([str(python), "-c", SCRIPT], 90, env=env, cwd=tmp_path))

    assert Path(result["amqp_core_file"]).is_relative_to(venv)  # the wheel, not the workspace
    assert result["tornado_imported_by_core"] is False
    assert result["tornado_imported_by_listing"] is False
    assert result["frameworks"] == ["tornado"]
    assert set(result["distributions"]) - {"pip", "setuptools"} == {
        "amqp-core", "amqp-adapter-tornado", "pluggy", "tornado",
    }
    assert result["adapters"] == {
        "tornado": "amqp-adapter-tornado", "blocking": "amqp-core", "select": "amqp-core",
    }
    assert result["connection_class"] == "amqp_adapter_tornado.connection.TornadoConnection"
    assert "pip install amqp-adapter-asyncio" in result["asyncio"]
    assert result["body"] == "from a clean venv"
