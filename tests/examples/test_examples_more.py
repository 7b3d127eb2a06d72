"""The blocking-API examples (consume generator, confirms, mandatory, basic_get, threaded acks,
direct reply-to RPC, several hosts, TLS) run as programs against the test broker.

Theory of operation: each example runs in its own process, bounded by ``subprocess.run``'s
timeout, with the broker's URL on its command line; the test checks the lines it prints (the
examples print only what they observed, so the lines are the proof).  The TLS examples need
the private broker's throwaway CA and client certificate, so they take ``private_broker``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(script: str, *args: str, timeout: float = 90) -> list[str]:
    """Run ``examples/<script>`` with ``args``; its stdout lines (it must exit 0)."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()


def test_consumer_generator(broker_url: str) -> None:
    lines = run("blocking_consumer_generator.py", broker_url)
    assert lines[:4] == [f"first pass: job {n}" for n in range(4)]
    assert lines[4] == "cancel() requeued 6 messages"
    assert sorted(lines[5:11]) == [f"second pass: job {n}" for n in range(4, 10)]
    assert lines[11:] == ["idle for 2 s: stopping", "consumed 4 + 6 of 10"]


def test_confirms(broker_url: str) -> None:
    lines = run("blocking_confirms.py", broker_url)
    assert lines == [
        "first: confirmed",
        "second: nacked (NackError): the queue is full",
        "third: returned unroutable: 312 NO_ROUTE, body 'third'",
        "fourth: confirmed (unroutable, but not mandatory: dropped)",
        "queue holds 1 message",
    ]


def test_mandatory(broker_url: str) -> None:
    lines = run("blocking_mandatory.py", broker_url)
    assert lines == [
        "returned: 'lost' 312 NO_ROUTE (routing key 'unknown')",
        "1 message returned through the callback",
        "UnroutableError: 'lost again' NO_ROUTE",
        "queue holds 2 routed messages",
    ]


def test_basic_get(broker_url: str) -> None:
    lines = run("blocking_basic_get.py", broker_url)
    assert lines == [
        *(f"got 'message {n}' (id {n}, {4 - n} left)" for n in range(5)),
        "queue empty",
        "fetched 5 of 5",
    ]


def test_threaded_acks(broker_url: str) -> None:
    lines = run("threaded_acks.py", broker_url, "--messages", "40", "--workers", "4")
    assert lines[0] == "0 messages left in the queue"
    assert lines[1].startswith("acked 40 of 40 from "), lines
    assert int(lines[1].split()[5]) > 1  # the work really ran on several threads


def test_direct_reply_to_rpc(broker_url: str) -> None:
    lines = run("direct_reply_to_rpc.py", broker_url)
    assert lines == ["fib(10) = 55", "fib(20) = 6765", "fib(30) = 832040", "3 of 3 answers"]


def test_multiple_hosts(broker_url: str) -> None:
    lines = run("multiple_hosts.py", broker_url)
    port = broker_url.rsplit(":", 1)[1].split("/")[0]
    assert lines[0].startswith("port "), lines
    assert lines[0].endswith(f"refused; connected: <BlockingConnection OPEN "
                             f"host=127.0.0.1 port={port}>"), lines
    assert lines[1].startswith("all brokers down: AMQPConnectionError after "), lines
    assert float(lines[1].split()[-2]) >= 0.5  # retry_delay between the 2 passes


def test_tls_server_auth(private_broker: Any) -> None:
    lines = run("tls_server_auth.py", private_broker.tls_url,
                "--ca-file", str(private_broker.ca_path))
    assert lines[0].startswith("connected with TLSv1."), lines
    assert lines[0].endswith("broker certificate CN=localhost"), lines
    assert lines[1:] == [
        "round trip: hello over TLS",
        "a context without the CA is refused: AMQPConnectionError (certificate verify failed)",
    ]


def test_tls_server_auth_with_port_and_server_hostname(private_broker: Any) -> None:
    lines = run("tls_server_auth.py", private_broker.url, "--port", str(private_broker.tls_port),
                "--ca-file", str(private_broker.ca_path), "--server-hostname", "localhost")
    assert lines[1] == "round trip: hello over TLS"


def test_tls_server_auth_checks_the_name(private_broker: Any) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "tls_server_auth.py"), private_broker.tls_url,
         "--ca-file", str(private_broker.ca_path), "--server-hostname", "not-the-broker"],
        capture_output=True, text=True, timeout=90, check=False,
    )
    assert result.returncode == 1
    assert "AMQPConnectionError" in result.stderr
    assert "not-the-broker" in result.stderr  # the hostname mismatch is reported


def test_tls_mutual_external(private_broker: Any) -> None:
    lines = run("tls_mutual_external.py", f"amqps://127.0.0.1:{private_broker.tls_port}/%2F",
                "--ca-file", str(private_broker.ca_path),
                "--cert-file", str(private_broker.client_cert_path),
                "--key-file", str(private_broker.client_key_path))
    assert lines[0].startswith("logged in with EXTERNAL over TLSv1."), lines
    assert lines[1] == "round trip: hello, certificate holder"


def test_every_example_is_listed_in_the_docs() -> None:
    listing = (EXAMPLES.parent / "docs" / "examples.md").read_text()
    missing = [path.name for path in sorted(EXAMPLES.glob("*.py"))
               if f"`{path.name}`" not in listing]
    assert not missing, f"add these to docs/examples.md: {missing}"
