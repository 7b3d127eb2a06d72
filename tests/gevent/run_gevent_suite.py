"""Run the gevent adapter's suite in one mode, in this process: ``plain`` or ``monkey``.

Usage (from the repository root)::

    python tests/gevent/run_gevent_suite.py --mode monkey [pytest arguments ...]

Theory of operation: gevent's monkey-patching is process-global and must come before anything
else is imported, so this script patches first (``--mode monkey``), records the mode in
``AMQP_GEVENT_MODE`` and only then imports pytest and runs ``gevent_suite_*.py`` (files the outer
test run does not collect) with the repository's pytest configuration.  Extra arguments go to
pytest (e.g. ``-k greenlets``).  ``tests/gevent/test_gevent_modes.py`` runs it once per mode.
The broker is the one at ``AMQP_URL`` when set (the outer run passes its own), else the suite
starts a private node.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    _argv = sys.argv[1:]
    _mode = "plain"
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


def main(mode: str, argv: list[str]) -> int:
    """Run the suite files with the repository's configuration; return pytest's exit code."""
    import pytest

    os.environ["AMQP_GEVENT_MODE"] = mode
    suite = sorted(str(path) for path in HERE.glob("gevent_suite_*.py"))
    args = [
        "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
        "-p", "no:cacheprovider", "-o", "python_files=gevent_suite_*.py",
        *suite, *argv,
    ]
    return int(pytest.main(args))


if __name__ == "__main__":
    sys.exit(main(_mode, _argv))
