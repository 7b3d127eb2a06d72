"""The demo (the README's first command's main job) runs through every installed adapter."""

from __future__ import annotations

import subprocess
import sys

from amqp_core.plugins import installed_adapters


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
