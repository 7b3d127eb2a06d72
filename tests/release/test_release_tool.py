"""``tools/release.py``: every package builds, its artifacts pass the checks, and each one,
installed alone with the fresh amqp-core wheel in a clean venv, completes a round trip.

The slow test runs the tool once for all five packages against the session broker (its URL
passed with ``--amqp-url``): five sdists and wheels, five clean venvs, five smoke round trips
(select + blocking for amqp-core, then each adapter's own loop).  It then feeds the tool's
checks a copy of a built wheel with a test file slipped in, which must fail.  The fast tests
cover the changelog check and the exit status without building anything.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "release.py"


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_release_tool", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


release = _load_tool()


def test_every_package_has_a_changelog_entry_for_its_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    core = release.Package.load("amqp-core")
    for name in release.ALL_PACKAGES:
        package = release.Package.load(name)
        report = release.Report()
        assert release.check_metadata(package, core, report), capsys.readouterr().out
        assert release.check_changelog(package, report), capsys.readouterr().out
        assert not report.failed
        for wanted in ("LICENSE", "README.md", "CHANGELOG.md", f"src/{package.module}/py.typed"):
            assert (package.directory / wanted).is_file(), (name, wanted)


def test_a_missing_or_empty_changelog_entry_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = release.Package.load("amqp-adapter-tornado")
    package.directory = tmp_path
    package.version = "9.9.9"
    changelog = tmp_path / "CHANGELOG.md"
    for text, expected in [
        ("# Changelog\n\n## [0.1.0]\n\n- old\n", "has no '## [9.9.9]' entry"),
        ("# Changelog\n\n## [9.9.9] - 2030-01-01\n\n## [0.1.0]\n- old\n", "entry of"),
        ("# Changelog\n\n## [9.9.9] - 2030-01-01\n\n### Fixed\n- a bug\n", None),
        ("# Changelog\n\n## 9.9.9\n- plain heading\n", None),
    ]:
        changelog.write_text(text)
        report = release.Report()
        assert release.check_changelog(package, report) is (expected is None)
        output = capsys.readouterr().out
        if expected is not None:
            assert "FAIL  changelog" in output and expected in output
            assert report.failed == {package.name: ["changelog"]}


def test_a_failed_check_makes_the_exit_status_non_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load = release.Package.load

    def unreleased(name: str) -> Any:
        package = load(name)
        if name == "amqp-adapter-gevent":
            package.version = "0.1.1"  # no changelog entry: nothing gets built
        return package

    monkeypatch.setattr(release.Package, "load", staticmethod(unreleased))
    assert release.main(["gevent", "--no-smoke"]) == 1
    output = capsys.readouterr().out
    assert "has no '## [0.1.1]' entry" in output
    assert re.search(r"amqp-adapter-gevent\s+0\.1\.1\s+FAIL \(changelog\)", output)
    with pytest.raises(SystemExit, match="unknown package 'nope'"):
        release.main(["nope"])


def test_leaks_are_recognized() -> None:
    assert release.leaks([
        "amqp_core/__init__.py", "amqp_core/testing/loop_tests.py", "amqp_core/py.typed",
        "tests/test_x.py", "amqp_core/__pycache__/x.cpython-311.pyc", "pkg/conftest.py",
        "src/pkg/test_thing.py", "uv.lock", ".mypy_cache/x",
    ]) == [
        "tests/test_x.py", "amqp_core/__pycache__/x.cpython-311.pyc", "pkg/conftest.py",
        "src/pkg/test_thing.py", "uv.lock", ".mypy_cache/x",
    ]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_release_tool_builds_checks_and_smoke_tests_every_package(
    tmp_path: Path, broker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = tmp_path / "dist"
    argv = [sys.executable, str(TOOL), "all", "--amqp-url", broker.url,
            "--dist-dir", str(dist), "--work-dir", str(tmp_path / "work")]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=840, check=False,
                               cwd=ROOT, env=release.clean_env())
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    for name in release.ALL_PACKAGES:
        assert re.search(rf"^  {re.escape(name)}\s+\S+\s+PASS$", output, re.M), output
    assert "FAIL" not in output
    assert output.count("ok    smoke") == len(release.ALL_PACKAGES)
    assert "nothing was uploaded" in output

    # the same checks catch a test file slipped into a wheel (a copy; RECORD left as it was)
    core = release.Package.load("amqp-core")
    package = release.Package.load("amqp-adapter-asyncio")
    built = dist / package.name / f"{package.dist_stem}-py3-none-any.whl"
    package.wheel = tmp_path / built.name
    with zipfile.ZipFile(built) as source, zipfile.ZipFile(package.wheel, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item))
        target.writestr("amqp_adapter_asyncio/tests/test_leak.py", "assert True\n")
    capsys.readouterr()
    report = release.Report()
    assert release.check_wheel(package, core, report) is False
    shown = capsys.readouterr().out
    assert "FAIL  wheel" in shown and "amqp_adapter_asyncio/tests/test_leak.py" in shown
    assert "RECORD lists" in shown
