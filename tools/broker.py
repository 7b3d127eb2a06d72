"""Start and stop a private RabbitMQ node from the command line (for the demo and manual runs).

Usage::

    eval "$(python tools/broker.py start)"   # prints KEY=value lines
    python tools/broker.py status
    python tools/broker.py stop

Theory of operation: ``start`` runs a :class:`amqp_core.testing.broker.PrivateBroker` (loopback
only, its own node name, ports and directory), detaches it from this short-lived process and
records it in a state file (default ``.broker/state.json`` at the repository root, guarded by
a lock file next to it so that concurrent commands queue up); ``stop`` rebuilds the broker from
that file, stops the node and removes the file.  ``start`` is a no-op (it prints the same lines)
while the recorded node still answers.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE = ROOT / ".broker" / "state.json"

try:
    from amqp_core.testing import broker as harness
except ImportError:  # not installed in this interpreter: use the source tree
    sys.path.insert(0, str(ROOT / "packages" / "amqp-core" / "src"))
    from amqp_core.testing import broker as harness


@contextlib.contextmanager
def _locked(state_path: Path) -> Iterator[None]:
    """Serialize the commands working on one state file (two starts must not race)."""
    state_path.parent.mkdir(parents=True, exist_ok=True)
    with open(state_path.with_name(state_path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _load(state_path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(state_path.read_text())
    except FileNotFoundError:
        return None
    if not isinstance(state, dict):
        raise SystemExit(f"{state_path} does not hold a broker state")
    return state


def _print_env(state: dict[str, Any]) -> None:
    lines = {
        "AMQP_URL": state["url"],
        "AMQPS_URL": state["tls_url"],
        "AMQP_CA_FILE": state["ca_path"],
        "AMQP_CLIENT_CERT": state["client_cert_path"],
        "AMQP_CLIENT_KEY": state["client_key_path"],
        "BROKER_NODENAME": state["nodename"],
    }
    for key, value in lines.items():
        print(f"{key}={shlex.quote(str(value))}")


def start(state_path: Path, timeout: float) -> int:
    state = _load(state_path)
    if state is not None and harness.amqp_answers(state["host"], state["port"]):
        print(f"# node {state['nodename']} is already running", file=sys.stderr)
        _print_env(state)
        return 0
    if state is not None:  # recorded but dead: clean up what is left of it
        harness.PrivateBroker.from_state(state).stop(timeout=timeout)
    harness.ensure_installed()
    node = harness.PrivateBroker()
    node.start(timeout=timeout)
    node.detach()
    partial = state_path.with_name(state_path.name + ".partial")
    partial.write_text(json.dumps(node.to_state(), indent=2) + "\n")
    partial.replace(state_path)
    _print_env(node.to_state())
    return 0


def stop(state_path: Path, timeout: float) -> int:
    state = _load(state_path)
    if state is None:
        print(f"no broker recorded in {state_path}", file=sys.stderr)
        return 0
    harness.PrivateBroker.from_state(state).stop(timeout=timeout)
    state_path.unlink(missing_ok=True)
    print(f"stopped node {state['nodename']}", file=sys.stderr)
    return 0


def status(state_path: Path) -> int:
    state = _load(state_path)
    if state is None:
        print(f"no broker recorded in {state_path}", file=sys.stderr)
        return 1
    alive = harness.amqp_answers(state["host"], state["port"])
    print(f"# node {state['nodename']}: {'running' if alive else 'NOT answering'}", file=sys.stderr)
    _print_env(state)
    return 0 if alive else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="the state file")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait")
    args = parser.parse_args(argv)
    try:
        with _locked(args.state):
            if args.command == "start":
                return start(args.state, args.timeout)
            if args.command == "stop":
                return stop(args.state, args.timeout)
            return status(args.state)
    except harness.BrokerError as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
