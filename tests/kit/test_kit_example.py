"""The worked example adapter, installed alone in a clean virtualenv, passes the kit.

Theory of operation: ``examples/third_party_adapter`` (distribution ``amqp-adapter-asyncfd``,
entry point ``asyncfd``) and ``packages/amqp-core`` are built as wheels (``uv build``, or
``pip wheel`` without uv), installed (not editable) into a fresh virtualenv together with
pytest, pytest-timeout and trustme, and the example's own tests -- the whole conformance kit
plus a discovery check -- run there against a copy of its ``tests/`` directory, with this
session's broker for the live scenarios.  The kit's report header proves the adapter was found
by name through its entry point.  Every subprocess is bounded in time.  The helpers are those
of ``tests/plugins/test_plugins_isolated_install.py`` (loaded by path: tests are not a package).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "third_party_adapter"


def _isolated_install_helpers() -> ModuleType:
    path = ROOT / "tests" / "plugins" / "test_plugins_isolated_install.py"
    spec = importlib.util.spec_from_file_location("_kit_isolated_install_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _isolated_install_helpers()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_example_adapter_passes_the_kit_from_a_clean_venv(tmp_path: Path, broker: Any) -> None:
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    wheels = tmp_path / "wheels"
    sources = [ROOT / "packages" / "amqp-core", EXAMPLE]
    test_deps = ["pytest>=8", "pytest-timeout>=2.3", "trustme>=1.1"]
    env = helpers.clean_env()
    if helpers.UV is not None:
        helpers.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], 120, env=env)
        for source in sources:
            helpers.run([helpers.UV, "build", "--wheel", "--out-dir", str(wheels), str(source)],
                        300, env=env, cwd=ROOT)
        built = sorted(wheels.glob("*.whl"))
        helpers.run([helpers.UV, "pip", "install", "--python", str(python),
                     *map(str, built), *test_deps], 300, env=env)
    else:
        helpers.run([sys.executable, "-m", "venv", str(venv)], 120, env=env)
        for source in sources:
            helpers.run([str(python), "-m", "pip", "wheel", "--no-deps", "-w", str(wheels),
                         str(source)], 300, env=env)
        built = sorted(wheels.glob("*.whl"))
        helpers.run([str(python), "-m", "pip", "install", *map(str, built), *test_deps], 300,
                    env=env)
    assert {w.name.split("-")[0] for w in built} == {"amqp_core", "amqp_adapter_asyncfd"}

    project = tmp_path / "project"  # the example's tests and config, without its sources
    shutil.copytree(EXAMPLE / "tests", project / "tests")
    shutil.copy(EXAMPLE / "pyproject.toml", project / "pyproject.toml")

    completed = helpers.subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-rfEs",
         "--amqp-adapter=asyncfd", f"--amqp-url={broker.url}"],
        capture_output=True, text=True, timeout=600, check=False, env=env, cwd=project,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-6000:]
    assert re.search(r"amqp_core kit adapters: asyncfd \(amqp-adapter-asyncfd 0\.1\.0\)", output), (
        output[:3000])
    summary = output.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
    assert passed >= 50 and "failed" not in summary and "error" not in summary, summary
