"""Each adapter installs alone: amqp-core + amqp-adapter-asyncio wheels in a clean virtualenv.

The two packages are built as wheels from the workspace (not editable), installed into a fresh
``python -m venv`` with pluggy from the package index, and a script run there checks that no
other framework is present, discovers the adapter by name through the plugin API and completes a
publish/consume round trip with the test broker (its URL passed in the environment).  Every
subprocess is bounded in time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("amqp-core", "amqp-adapter-asyncio")
#: uv when installed (fast, cached); otherwise pip inside the new virtualenv.
UV = shutil.which("uv")

SCRIPT = textwrap.dedent(
    """
    import asyncio, importlib.metadata, importlib.util, json, os, sys, uuid

    import amqp_core
    from amqp_core import plugins

    out = {"amqp_core_file": amqp_core.__file__}
    out["frameworks"] = [m for m in ("tornado", "twisted", "gevent", "uvloop")
                         if importlib.util.find_spec(m) is not None]
    out["distributions"] = sorted(d.metadata["Name"] for d in importlib.metadata.distributions())
    out["adapters"] = {i.name: i.distribution for i in plugins.installed_adapters()}
    connection_class = plugins.get_connection_class("asyncio")
    out["connection_class"] = connection_class.__module__ + "." + connection_class.__name__
    try:
        plugins.get_adapter("tornado")
    except plugins.AdapterNotFoundError as error:
        out["tornado"] = str(error)

    from amqp_adapter_asyncio import connect
    assert connection_class.__module__.startswith("amqp_adapter_asyncio")

    async def round_trip():
        queue = "isolated-" + uuid.uuid4().hex
        async with connect(os.environ["AMQP_TEST_URL"]) as conn:
            ch = await conn.channel()
            await ch.queue_declare(queue, exclusive=True)
            await ch.confirm_delivery()
            await ch.basic_publish("", queue, b"from a clean venv")
            async with ch.consume(queue) as consumer:
                async for message in consumer:
                    message.ack()
                    return message.body.decode()

    out["body"] = asyncio.run(asyncio.wait_for(round_trip(), 30))
    print(json.dumps(out))
    """
)


def run(argv: list[str], timeout: float, **kwargs: Any) -> str:
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    assert completed.returncode == 0, (
        f"{argv} failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
    )
    return completed.stdout


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


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
def test_asyncio_adapter_installs_alone(tmp_path: Path, broker: Any) -> None:
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    if UV is not None:
        run([sys.executable, "-m", "venv", "--without-pip", str(venv)], 120, env=clean_env())
        wheels = build_wheels(tmp_path / "wheels", None)
        run([UV, "pip", "install", "--python", str(python), *map(str, wheels)], 180,
            env=clean_env())
    else:
        run([sys.executable, "-m", "venv", str(venv)], 120, env=clean_env())
        wheels = build_wheels(tmp_path / "wheels", python)
        run([str(python), "-m", "pip", "install", *map(str, wheels)], 180, env=clean_env())
    assert {w.name.split("-")[0] for w in wheels} == {"amqp_core", "amqp_adapter_asyncio"}

    env = clean_env()
    env["AMQP_TEST_URL"] = broker.url
    result = json.loads(run([str(python), "-c", SCRIPT], 90, env=env, cwd=tmp_path))

    assert Path(result["amqp_core_file"]).is_relative_to(venv)  # the wheel, not the workspace
    assert result["frameworks"] == []
    assert set(result["distributions"]) - {"pip", "setuptools"} == {
        "amqp-core", "amqp-adapter-asyncio", "pluggy",
    }
    assert result["adapters"] == {
        "asyncio": "amqp-adapter-asyncio", "blocking": "amqp-core", "select": "amqp-core",
    }
    assert result["connection_class"] == "amqp_adapter_asyncio.connection.AsyncioConnection"
    assert "pip install amqp-adapter-tornado" in result["tornado"]
    assert result["body"] == "from a clean venv"
