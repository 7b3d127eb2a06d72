"""Every small example in examples/ runs against the broker and does what it says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    "script", ["blocking_publish_consume.py", "select_consumer.py", "asyncio_consumer.py"]
)
def test_example_runs(script: str, broker_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), broker_url],
        capture_output=True, text=True, timeout=90, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "received 10 of 10"
    assert "message 9" in result.stdout
