"""Run the gevent adapter's suite, or the conformance kit for gevent, in one mode, in this process.

Usage (from the repository root)::

    python tests/gevent/run_gevent_suite.py --mode monkey [pytest arguments ...]
    python tests/gevent/run_gevent_suite.py --mode monkey --kit [pytest arguments ...]

Theory of operation: gevent's monkey-patching is process-global and must come before anything
else is imported, so this script patches first (``--mode monkey``), records the mode in
``AMQP_GEVENT_MODE`` and only then imports pytest and runs ``gevent_suite_*.py`` (files the outer
test run does not collect) with the repository's pytest configuration.  Extra arguments go to
pytest (e.g. ``-k greenlets``).  ``tests/gevent/test_gevent_modes.py`` runs it once per mode.
The broker is the one at ``AMQP_URL`` when set (the outer run passes its own), else the suite
starts a private node.

``--kit`` runs the conformance kit (``tests/kit``, i.e. ``amqp_core.testing``) for the ``gevent``
adapter only (``--amqp-adapter=gevent``), in the same way: ``--mode monkey --kit`` is the
monkey-patched run of the cross-adapter suite (see :func:`kit_plugin` for its harness).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    _argv = sys.argv[1:]
    _mode = "plain"
    _kit = "--kit" in _argv
    if _kit:
        _argv.remove("--kit")
    if "--mode" in _argv:
        _index = _argv.index("--mode")
        _mode = _argv[_index + 1]
        del _argv[_index:_index + 2]
    if _mode not in ("plain", "monkey"):
        raise SystemExit(f"--mode must be 'plain' or 'monkey', not {_mode!r}")
    if _mode == "monkey":
        from gevent import monkey

        monkey.patch_all()

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def kit_plugin() -> object:
    """Monkey-patched runs of the kit: a gevent harness whose loop has no background greenlet.

    Patched, ``threading.get_ident()`` names greenlets, and the kit checks that callbacks run
    in the greenlet that runs the loop.  A default :class:`GeventIOLoop` also runs them in its
    background greenlet whenever the test's greenlet blocks cooperatively *outside* ``run``
    (starting a patched thread, say); ``GeventIOLoop(background=False)`` keeps them inside
    ``start()``, like a select IOLoop.
    """
    import pytest

    from amqp_adapter_gevent import GeventIOLoop
    from amqp_core.testing.harness import GeventHarness

    class StartOnlyGeventHarness(GeventHarness):
        def new_native_loop(self) -> GeventIOLoop:
            return GeventIOLoop(background=False)

    class GeventKitPlugin:
        @pytest.hookimpl(optionalhook=True)
        def pytest_amqp_core_harnesses(self, config: pytest.Config) -> dict[str, object]:
            return {"gevent": StartOnlyGeventHarness}

    return GeventKitPlugin()


def main(mode: str, argv: list[str], kit: bool = False) -> int:
    """Run the suite files (or the kit) with the repository's configuration; return pytest's
    exit code."""
    import pytest

    os.environ["AMQP_GEVENT_MODE"] = mode
    common = ["-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), "-p", "no:cacheprovider"]
    if kit:
        kit_suite = ROOT / "tests" / "kit" / "test_kit_suite.py"
        args = [*common, str(kit_suite), "--amqp-adapter=gevent", *argv]
        return int(pytest.main(args, plugins=[kit_plugin()] if mode == "monkey" else []))
    suite = sorted(str(path) for path in HERE.glob("gevent_suite_*.py"))
    args = [*common, "-o", "python_files=gevent_suite_*.py", *suite, *argv]
    return int(pytest.main(args))


if __name__ == "__main__":
    sys.exit(main(_mode, _argv, _kit))
