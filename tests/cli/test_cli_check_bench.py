"""``amqp-core check`` and ``bench`` against the test broker, and the command as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Run

from amqp_core.cli import EXIT_CONNECTION, EXIT_FAILURE, EXIT_OK

#: Adapters the in-process bench tests use (gevent and twisted change process-global state).
BENCH_ADAPTERS = "blocking,select,asyncio"
SUBPROCESS_TIMEOUT = 90


def test_check_text(cli: Run, broker: Any) -> None:
    result = cli("check")
    assert result.code == EXIT_OK, result
    lines = result.out.splitlines()
    where = f"{broker.host}:{broker.port}"
    assert lines[0].startswith(f"connected to {where} (vhost '/', user 'guest')")
    assert "RabbitMQ" in lines[0]
    for expected in ("server properties:", "  product: RabbitMQ", "capabilities:",
                     "  publisher_confirms: yes", "  basic.nack: yes", "negotiated:",
                     "tls: no (plain TCP)"):
        assert expected in lines
    assert any(line.startswith("  channel_max: ") for line in lines)
    assert any(line.startswith("  frame_max: ") and line.endswith(" bytes") for line in lines)
    assert any(line.startswith("  heartbeat: ") for line in lines)


def test_check_json_reports_what_was_negotiated(cli: Run, broker: Any) -> None:
    url = f"{broker.url}?heartbeat=17&frame_max=65536&channel_max=99"
    report = json.loads(cli("--url", url, "check", "--format", "json").out)
    assert report["broker"] == f"{broker.host}:{broker.port}"
    assert report["negotiated"] == {"channel_max": 99, "frame_max": 65536, "heartbeat": 17}
    assert report["server_properties"]["product"] == "RabbitMQ"
    assert "capabilities" not in report["server_properties"]
    assert report["capabilities"]["exchange_exchange_bindings"] is True
    assert report["tls"] is None
    assert report["user"] == "guest" and report["virtual_host"] == "/"
    assert report["auth_mechanism"] == "PLAIN"


def test_check_over_tls_reports_version_cipher_and_peer(cli: Run, private_broker: Any) -> None:
    url = f"{private_broker.tls_url}?cacertfile={private_broker.ca_path}"
    result = cli("--url", url, "check", "--format", "json")
    assert result.code == EXIT_OK, result
    tls = json.loads(result.out)["tls"]
    assert tls["version"].startswith("TLSv1.")
    assert tls["cipher"] and tls["cipher_bits"] >= 128
    assert "CN=localhost" in tls["peer_subject"]
    assert "IP Address:127.0.0.1" in tls["peer_alt_names"]
    text = cli("--url", url, "check").out
    assert "tls:\n  version: TLSv1." in text
    assert "  peer subject: " in text and "CN=localhost" in text


def test_check_with_a_client_certificate_and_external_login(
    cli: Run, private_broker: Any
) -> None:
    url = (f"amqps://{private_broker.host}:{private_broker.tls_port}/%2F"
           f"?cacertfile={private_broker.ca_path}&certfile={private_broker.client_cert_path}"
           f"&keyfile={private_broker.client_key_path}&auth_mechanism=external")
    result = cli("--url", url, "check")
    assert result.code == EXIT_OK, result
    assert "(vhost '/', EXTERNAL login)" in result.out.splitlines()[0]
    assert "tls:\n  version: TLSv1." in result.out


def test_check_over_tls_without_the_ca_is_exit_3(cli: Run, private_broker: Any) -> None:
    result = cli("--url", private_broker.tls_url, "check")
    assert result.code == EXIT_CONNECTION
    assert len(result.err_lines) == 1
    assert "TLS setup failed" in result.err_lines[0]
    assert "CERTIFICATE_VERIFY_FAILED" in result.err_lines[0]


def test_bench_table_with_progress_lines(cli: Run) -> None:
    result = cli("bench", "-a", BENCH_ADAPTERS, "-n", "300", "--round-trips", "20",
                 "--window", "50", "--prefetch", "50", "--timeout", "60")
    assert result.code == EXIT_OK, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("bench against ")
    header = lines[1]
    for title in ("adapter", "publish 300 msg/s", "confirm 300 w50", "consume 300",
                  "latency 20x p50/p99 us"):
        assert title in header
    rows = {line.split()[0]: line for line in lines[3:]}
    assert list(rows) == BENCH_ADAPTERS.split(",")
    assert all("failed" not in row for row in rows.values())
    # stderr is not a terminal here: one line when each of the 12 steps starts and ends
    assert "bench: [1/12] blocking publish ..." in result.err
    assert "bench: [12/12] asyncio latency: p50 " in result.err


def test_bench_json(cli: Run) -> None:
    result = cli("bench", "-a", "select", "-a", "blocking", "-s", "confirm,latency",
                 "-n", "200", "--round-trips", "10", "--format", "json", "--progress", "none")
    assert result.code == EXIT_OK, result.err
    assert result.err == ""
    document = json.loads(result.out)
    assert document["config"]["count"] == 200
    got = {(row["adapter"], row["scenario"]): row for row in document["results"]}
    assert list(got) == [("select", "confirm"), ("select", "latency"),
                         ("blocking", "confirm"), ("blocking", "latency")]
    assert got["select", "confirm"]["rate"] > 0
    assert got["blocking", "confirm"]["cpu_us_per_msg"] > 0
    assert 0 < got["blocking", "latency"]["p50_us"] <= got["blocking", "latency"]["p99_us"]


def test_bench_failed_runs_are_reported_and_exit_1(cli: Run) -> None:
    result = cli("bench", "-a", "blocking,select", "-s", "publish", "-n", "200",
                 "--timeout", "0.001", "--progress", "none")
    assert result.code == EXIT_FAILURE
    assert result.out.count("failed") == 2
    errors = [line for line in result.err_lines if line.startswith("amqp-core: error: ")]
    assert len(errors) == 2
    assert errors[0].startswith("amqp-core: error: bench blocking publish: timed out")
    assert errors[1].startswith("amqp-core: error: bench select publish: timed out")


def test_bench_needs_a_reachable_broker(offline_cli: Run) -> None:
    result = offline_cli("bench", "-a", "select", "-n", "10")
    assert result.code == EXIT_CONNECTION
    assert len(result.err_lines) == 1


# ---------------------------------------------------------------- as a process


def _env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["AMQP_URL"] = url
    env.pop("PYTHONWARNINGS", None)
    return env


def test_python_m_amqp_core_cli(broker: Any) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "amqp_core.cli", "check", "--format", "json"],
        env=_env(broker.url), capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert json.loads(done.stdout)["server_properties"]["product"] == "RabbitMQ"


def test_process_wrong_password_prints_one_line(broker: Any) -> None:
    url = f"amqp://guest:nope@{broker.host}:{broker.port}/%2F"
    done = subprocess.run(
        [sys.executable, "-m", "amqp_core.cli", "get", "some-queue"],
        env=_env(url), capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
    )
    assert done.returncode == EXIT_CONNECTION
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("amqp-core: error: authentication failed: 403 ACCESS_REFUSED")


def test_console_script(broker: Any, tmp_path: Path) -> None:
    script = Path(sysconfig.get_path("scripts")) / "amqp-core"
    if not script.exists():
        pytest.skip("the amqp-core console script is not installed in this environment")
    done = subprocess.run(
        [str(script), "publish", "-r", "cli-script-test", "from the console script"],
        env=_env(broker.url), capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
        cwd=tmp_path,
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert "published 1 message(s)" in done.stdout
