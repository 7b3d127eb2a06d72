"""Discovery through real entry points, with throwaway distributions, in a subprocess.

Two fake distributions are written to a temporary directory (``.dist-info`` folders with
``METADATA`` and ``entry_points.txt``, plus their modules) and put on ``sys.path`` of a fresh
interpreter: one with a good adapter, one with plugins that fail in every way the host must
survive (import error, wrong entry-point name, bad return value, raising hook, unknown hook,
hook signature pluggy rejects).  Each broken one must be reported as ``AdapterLoadError``
naming the adapter and its distribution, and every other adapter must keep working.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

GOOD_MODULE = """
from amqp_core import hookimpl
from amqp_core.hookspecs import AdapterDescription

class FakeConnection:
    pass

@hookimpl
def amqp_core_adapters():
    return [AdapterDescription(name="fake-good", connection_class="fake_good:FakeConnection",
                               native_loop="fake.Loop", install_hint="pip install fake-good")]
"""

BROKEN_MODULES = {
    "fake_import_error": 'raise ImportError("the fake framework is not installed")\n',
    "fake_wrong_name": """
from amqp_core import hookimpl
from amqp_core.hookspecs import AdapterDescription

@hookimpl
def amqp_core_adapters():
    return [AdapterDescription(name="something-else", connection_class="x:Y",
                               native_loop="l", install_hint="h")]
""",
    "fake_bad_return": """
from amqp_core import hookimpl

@hookimpl
def amqp_core_adapters():
    return {"name": "fake-bad-return"}
""",
    "fake_raising": """
from amqp_core import hookimpl

@hookimpl
def amqp_core_adapters():
    raise RuntimeError("hook exploded")
""",
    "fake_unknown_hook": """
from amqp_core import hookimpl

@hookimpl
def amqp_core_adaptors():  # misspelt: not a hook amqp_core defines
    return []
""",
    "fake_bad_signature": """
from amqp_core import hookimpl

@hookimpl
def amqp_core_adapters(config):
    return []
""",
    "fake_no_hook": "VALUE = 1\n",
}

#: entry-point name -> (module, words the error must contain)
BROKEN = {
    "fake-import-error": ("fake_import_error", "the fake framework is not installed"),
    "fake-wrong-name": ("fake_wrong_name", "'something-else', not an adapter named"),
    "fake-bad-return": ("fake_bad_return", "must return a list of AdapterDescription, not dict"),
    "fake-raising": ("fake_raising", "hook exploded"),
    "fake-unknown-hook": ("fake_unknown_hook", "amqp_core_adaptors"),
    "fake-bad-signature": ("fake_bad_signature", "breaks the hook contract"),
    "fake-no-hook": ("fake_no_hook", "implements no amqp_core_adapters() hook"),
}

PROBE = """
import json, sys
from amqp_core import plugins

out = {}
out["installed"] = {i.name: [i.distribution, i.version, i.entry_point]
                    for i in plugins.installed_adapters()}
out["imported_after_listing"] = sorted(m for m in sys.modules if m.startswith("fake_"))
good = plugins.get_adapter("fake-good")
out["good"] = [good.name, good.distribution, good.version, good.native_loop]
out["imported_after_good"] = sorted(m for m in sys.modules if m.startswith("fake_"))
errors = {}
for name in %(broken)r:
    for attempt in range(2):  # a second ask gives the same error, without reloading
        try:
            plugins.get_connection_class(name)
        except plugins.AdapterLoadError as error:
            errors.setdefault(name, []).append(
                [type(error).__name__, error.name, error.distribution, str(error)])
        except Exception as error:
            errors.setdefault(name, []).append([type(error).__name__, None, None, str(error)])
out["errors"] = errors
out["good_class"] = plugins.get_connection_class("fake-good").__name__
out["select_class"] = plugins.get_connection_class("select").__name__
out["asyncio_class"] = plugins.get_connection_class("asyncio").__name__
installed = set(out["installed"])
missing = [n for n in ("twisted", "tornado", "gevent") if n not in installed]
if missing:
    try:
        plugins.get_adapter(missing[0])
    except plugins.AdapterNotFoundError as error:
        out["missing"] = [missing[0], str(error)]
print(json.dumps(out))
"""


def write_distribution(root: Path, name: str, version: str, entry_points: dict[str, str],
                       modules: dict[str, str]) -> None:
    dist_info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = ["[amqp_core.adapters]"] + [f"{ep} = {value}" for ep, value in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")


@pytest.fixture
def fake_site(tmp_path: Path) -> Path:
    write_distribution(
        tmp_path, "amqp-adapter-fake-good", "1.2.3", {"fake-good": "fake_good"},
        {"fake_good": GOOD_MODULE},
    )
    write_distribution(
        tmp_path, "amqp-fake-broken", "0.0.1",
        {name: module for name, (module, _words) in BROKEN.items()}, BROKEN_MODULES,
    )
    return tmp_path


def run_probe(site: Path) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, "-c", PROBE % {"broken": sorted(BROKEN)}],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def test_fake_distributions(fake_site: Path) -> None:
    result = run_probe(fake_site)

    installed = result["installed"]
    assert installed["fake-good"] == ["amqp-adapter-fake-good", "1.2.3", "fake_good"]
    for name, (module, _words) in BROKEN.items():
        assert installed[name] == ["amqp-fake-broken", "0.0.1", module]
    assert {"select", "blocking", "asyncio"} <= set(installed)
    assert result["imported_after_listing"] == []  # listing imports no plugin
    assert result["imported_after_good"] == ["fake_good"]  # only the one asked for

    assert result["good"] == ["fake-good", "amqp-adapter-fake-good", "1.2.3", "fake.Loop"]
    for name, (_module, words) in BROKEN.items():
        first, second = result["errors"][name]
        assert first == second, name
        kind, error_name, distribution, message = first
        assert kind == "AdapterLoadError", (name, message)
        assert error_name == name
        assert distribution == "amqp-fake-broken"
        assert f"'{name}'" in message and "amqp-fake-broken" in message
        assert words in message, (name, message)

    # the broken plugins broke nothing else
    assert result["good_class"] == "FakeConnection"
    assert result["select_class"] == "SelectConnection"
    assert result["asyncio_class"] == "AsyncioConnection"
    if "missing" in result:  # a well-known adapter that is not installed here
        name, message = result["missing"]
        assert f"pip install amqp-adapter-{name}" in message
        assert "fake-good" in message and "fake-raising" in message
