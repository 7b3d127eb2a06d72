"""The demo (the README's first command's main job) runs through every installed adapter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from amqp_core.plugins import installed_adapters
from amqp_core.testing.broker import amqp_answers

ROOT = Path(__file__).resolve().parents[2]


def test_demo_publishes_and_consumes_through_every_adapter(broker_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "amqp_core.demo", "--url", broker_url,
         "--messages", "500", "--round-trips", "20"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[-10:] if line.strip()}
    for info in installed_adapters():
        assert info.name in rows, result.stdout
        assert "failed" not in rows[info.name], rows[info.name]
        assert " 500 " in rows[info.name]


@pytest.mark.slow
def test_readme_demo_command_starts_and_stops_its_own_broker() -> None:
    """``bash tools/demo.sh`` as the README gives it (no AMQP_URL), in its non-interactive form."""
    env = {key: value for key, value in os.environ.items() if key != "AMQP_URL"}
    result = subprocess.run(
        ["bash", str(ROOT / "tools" / "demo.sh"), "--messages", "200", "--round-trips", "10"],
        capture_output=True, text=True, timeout=600, check=False, env=env, cwd=ROOT,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "starting a private RabbitMQ node on 127.0.0.1" in output
    port = int(re.search(r"broker up on 127\.0\.0\.1:(\d+)", output).group(1))  # type: ignore[union-attr]
    assert port != 5672
    for info in installed_adapters():
        assert re.search(rf"^{info.name}\s+200\s", result.stdout, re.M), output
    assert "stopping the private node" in output
    assert not amqp_answers("127.0.0.1", port, timeout=1.0), "the demo left its broker running"
