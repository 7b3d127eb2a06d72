"""The README's quick starts run as printed, pointed at the session broker."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
#: what the README connects to, and how a snippet is pointed at the test broker instead
README_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
README_PARAMETERS = 'pika.ConnectionParameters("127.0.0.1")'


def quick_starts() -> dict[str, str]:
    text = README.read_text()
    found: dict[str, str] = {}
    for title, block in re.findall(r"^## (Quick start[^\n]*)\n+```python\n(.*?)```", text,
                                   re.M | re.S):
        found[title] = block
    return found


def test_the_readme_has_three_quick_starts() -> None:
    assert len(quick_starts()) == 3, sorted(quick_starts())


@pytest.mark.parametrize("title", sorted(quick_starts()))
def test_quick_start_runs(title: str, broker_url: str) -> None:
    code = quick_starts()[title]
    assert README_URL in code or README_PARAMETERS in code, code
    code = code.replace(README_URL, broker_url).replace(
        README_PARAMETERS, f"pika.URLParameters({broker_url!r})")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "b'Hello World!'", result.stdout
