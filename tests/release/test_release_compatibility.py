"""The plugin host refuses an adapter whose declared amqp-core range excludes the installed core.

Fake adapter distributions (a ``*.dist-info`` folder with METADATA and entry_points.txt, plus
a plugin module) are put on ``sys.path`` and read through a private :class:`AdapterRegistry`
on a test-only entry-point group; the installed core's version is fabricated by
monkeypatching ``plugins._core_version``.  The real adapters are checked the same way with a
fabricated core version.  Also covers the small PEP 440 subset that does the comparison.
"""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import pytest

from amqp_core import plugins
from amqp_core.plugins import (
    AdapterIncompatibleError,
    AdapterLoadError,
    AdapterRegistry,
    core_specifier,
    version_satisfies,
)

GROUP = "amqp_core.tests.release_compat"


@pytest.mark.parametrize(
    ("version", "specifier", "expected"),
    [
        ("0.1.0", ">=0.1,<0.2", True),
        ("0.1.9", "<0.2,>=0.1", True),
        ("0.2.0", ">=0.1,<0.2", False),
        ("0.0.9", ">=0.1,<0.2", False),
        ("0.2.0rc1", "<0.2", False),  # <V keeps V's pre-releases out ...
        ("0.2.0rc1", "<0.2rc2", True),  # ... unless V is one itself
        ("0.1.0rc1", ">=0.1.0rc1,<0.2", True),  # an installed pre-release in the range
        ("0.1.0.dev3", "<0.1.0a1", True),
        ("1.0", "<=1", True),
        ("1.0.post1", ">1.0", False),  # >V keeps V's post-releases out
        ("1.0.post1", ">=1.0", True),
        ("1.1", ">1.0", True),
        ("1.0+local", "==1.0", True),
        ("1.0+local", "==1.0+other", False),
        ("1.0", "!=1.0", False),
        ("1.2.3", "==1.2.*", True),
        ("1.3", "==1.2.*", False),
        ("1.3", "!=1.2.*", True),
        ("0.1.5", "~=0.1.2", True),
        ("0.2.0", "~=0.1.2", False),
        ("0.1.1", "~=0.1.2", False),
        ("1!0.1", ">=2.0", True),  # epochs order first
        ("0.1.0", "===0.1.0", True),
        ("0.1.0", "", True),
        ("V0.1.0", " >= 0.1 , < 0.2 ", True),
    ],
)
def test_version_satisfies(version: str, specifier: str, expected: bool) -> None:
    assert version_satisfies(version, specifier) is expected


def test_version_satisfies_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="version"):
        version_satisfies(1, ">=1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="specifier"):
        version_satisfies("1.0", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a PEP 440 version"):
        version_satisfies("one", ">=1")
    with pytest.raises(ValueError, match="specifier"):
        version_satisfies("1.0", "about 1")
    with pytest.raises(ValueError, match="two release numbers"):
        version_satisfies("1.0", "~=1")


def test_core_specifier_reads_requires_dist_lines() -> None:
    assert core_specifier(["pluggy>=1.5", "amqp-core<0.2,>=0.1"]) == "<0.2,>=0.1"
    assert core_specifier(["Amqp_Core (>=0.1.1)"]) == ">=0.1.1"  # names are normalized
    assert core_specifier(["amqp-core[extra]>=0.1; python_version >= '3.11'"]) == ">=0.1"
    assert core_specifier(["amqp-core>=9; extra == 'old'", "pluggy"]) is None  # extras only
    assert core_specifier(["amqp-core"]) == ""  # required, no range
    assert core_specifier(["amqp-core-extras>=1", "pluggy"]) is None
    with pytest.raises(TypeError, match="not a str"):
        core_specifier("amqp-core>=0.1")
    with pytest.raises(TypeError, match="hold str"):
        core_specifier([b"amqp-core"])  # type: ignore[list-item]


def test_the_installed_core_version_is_the_distributions() -> None:
    import amqp_core

    assert plugins._core_version() == amqp_core.__version__


# ------------------------------------------------------------ fake distributions


def fake_adapter(root: Path, name: str, requires: list[str], *, importable: bool = True) -> str:
    """Write a fake adapter distribution ``fake-<name>`` under ``root``; returns its module."""
    module = f"release_compat_{name}_plugin"
    dist_info = root / f"fake_{name}-1.0.dist-info"
    dist_info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: fake-{name}", "Version: 1.0"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    (dist_info / "METADATA").write_text("\n".join(lines) + "\n")
    (dist_info / "entry_points.txt").write_text(f"[{GROUP}]\n{name} = {module}\n")
    if importable:
        body = f"""
            from amqp_core import hookimpl
            from amqp_core.hookspecs import AdapterDescription

            @hookimpl
            def amqp_core_adapters():
                return [AdapterDescription(name={name!r}, connection_class="collections:deque",
                                           native_loop="none", install_hint="pip install x")]
            """
    else:
        body = "raise RuntimeError('an incompatible adapter must never be imported')\n"
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    return module


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_core_version", lambda: "0.1.0")
    return tmp_path


def test_an_adapter_for_other_core_versions_is_refused_before_import(fakes: Path) -> None:
    module = fake_adapter(fakes, "future", ["pluggy", "amqp-core<10,>=9.0"], importable=False)
    registry = AdapterRegistry(GROUP)
    with pytest.raises(AdapterIncompatibleError) as caught:
        registry.get("future")
    error = caught.value
    assert isinstance(error, AdapterLoadError)
    assert (error.name, error.distribution) == ("future", "fake-future")
    assert (error.required, error.installed) == ("<10,>=9.0", "0.1.0")
    message = str(error)
    assert "'future'" in message and "'fake-future'" in message
    assert "amqp-core<10,>=9.0" in message and "amqp-core 0.1.0 is installed" in message
    assert "incompatible" in message
    assert module not in sys.modules  # never imported
    with pytest.raises(AdapterIncompatibleError, match=r"amqp-core 0\.1\.0 is installed"):
        registry.connection_class("future")  # still refused, same error type
    assert [info.name for info in registry.installed()] == ["future"]  # listing still works


def test_an_adapter_whose_range_holds_the_core_loads(fakes: Path) -> None:
    fake_adapter(fakes, "current", ["amqp-core>=0.1,<0.2"])
    fake_adapter(fakes, "unpinned", ["amqp-core"])
    fake_adapter(fakes, "extraonly", ["amqp-core>=9; extra == 'legacy'"])
    registry = AdapterRegistry(GROUP)
    for name in ("current", "unpinned", "extraonly"):
        assert registry.get(name).name == name
        assert registry.connection_class(name).__name__ == "deque"


def test_an_unreadable_range_is_logged_and_does_not_block(
    fakes: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_adapter(fakes, "odd", ["amqp-core>=0.1,<0.2,=>0.0"])
    registry = AdapterRegistry(GROUP)
    with caplog.at_level(logging.WARNING, logger="amqp_core.plugins"):
        assert registry.get("odd").name == "odd"
    assert "cannot check the amqp-core range of adapter 'odd'" in caplog.text


def test_an_uninstalled_core_checks_nothing(fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_adapter(fakes, "anything", ["amqp-core>=9"])
    monkeypatch.setattr(plugins, "_core_version", lambda: None)
    assert AdapterRegistry(GROUP).get("anything").name == "anything"


def test_the_real_adapters_are_checked_against_a_fabricated_core_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed = {info.name for info in plugins.installed_adapters()}
    adapters = sorted({"asyncio", "tornado", "twisted", "gevent"} & installed)
    assert adapters
    monkeypatch.setattr(plugins, "_core_version", lambda: "0.2.0")
    registry = AdapterRegistry()
    for name in adapters:
        with pytest.raises(AdapterIncompatibleError) as caught:
            registry.get(name)
        assert caught.value.distribution == f"amqp-adapter-{name}"
        assert version_satisfies("0.1.0", caught.value.required)
        assert "amqp-core 0.2.0 is installed" in str(caught.value)
    assert registry.get("select").name == "select"  # the core's own adapters need no range
    monkeypatch.setattr(plugins, "_core_version", lambda: "0.1.7")
    assert AdapterRegistry().get(adapters[0]).name == adapters[0]
