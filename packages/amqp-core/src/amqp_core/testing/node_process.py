"""The machine side of private RabbitMQ nodes: installing the server, finding a node's processes,
picking free ports, probing a port for AMQP, and reaping nodes whose owner died.

Theory of operation: everything here works on the operating system (``apt-get``, ``/proc``,
sockets on 127.0.0.1, ``rabbitmqctl`` through :func:`run_command`) and knows nothing of one
node's configuration; :mod:`amqp_core.testing.broker` builds :class:`PrivateBroker` on it and
re-exports the public names (``BrokerError``, ``ensure_installed``, ``probe_connection_start``,
``amqp_answers``, ``reap_stale_brokers``, ``listening_addresses``).  A node's processes carry the
marker variable :data:`NODE_MARKER` in their environment, which is how they are found (the node
name is not on the Erlang VM's command line from RabbitMQ 3.10 on).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import pwd
import random
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "BrokerError",
    "amqp_answers",
    "ensure_installed",
    "listening_addresses",
    "probe_connection_start",
    "reap_stale_brokers",
]

#: The AMQP 0-9-1 protocol header a client sends first.
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
DIR_PREFIX = "amqpcore-broker-"
NODE_MARKER = "AMQPCORE_PRIVATE_NODE"
PORT_RANGE = (20000, 32000)
RESERVED_PORTS = frozenset({25672})  # the distribution port of a system node on 5672
MAX_START_FRAME = 1 << 20
_apt_updated = False


class BrokerError(RuntimeError):
    """A broker could not be installed, started, controlled or stopped."""


# --------------------------------------------------------------------------- installation


def find_executable(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN_DIRS])
    return shutil.which(name, path=path)


def run_command(argv: list[str], timeout: float, env: Mapping[str, str] | None = None) -> str:
    """Run ``argv`` to completion within ``timeout`` seconds; return its standard output."""
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BrokerError(f"{' '.join(argv)} did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip())[-3000:]
        raise BrokerError(f"{' '.join(argv)} failed with exit code {done.returncode}: {output}")
    return done.stdout


def ensure_installed(*, timeout: float = 900.0) -> None:
    """Make sure ``rabbitmq-server`` is installed, installing Debian's package if needed.

    Installing needs root: ``apt-get update`` (once per process) then
    ``apt-get install -y rabbitmq-server``, each bounded by ``timeout`` seconds.  On a machine
    run by systemd the package's own system-wide service is then stopped and disabled: tests only
    ever use private nodes.

    :param timeout: the longest any one apt-get command may run, in seconds.
    :raises BrokerError: when the server is missing and cannot be installed.
    """
    global _apt_updated
    if find_executable("rabbitmq-server") and find_executable("rabbitmqctl"):
        return
    if os.geteuid() != 0:
        raise BrokerError(
            "rabbitmq-server is not installed and installing it needs root: run "
            "'apt-get install rabbitmq-server' (or tools/bootstrap.sh) as root, "
            "or point AMQP_URL at a running broker"
        )
    if find_executable("apt-get") is None:
        raise BrokerError("rabbitmq-server is not installed and apt-get is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        run_command(["apt-get", "update", "-q"], timeout, env)
        _apt_updated = True
    run_command(["apt-get", "install", "-y", "-q", "rabbitmq-server"], timeout, env)
    if Path("/run/systemd/system").is_dir() and find_executable("systemctl"):
        with contextlib.suppress(BrokerError):
            run_command(["systemctl", "disable", "--now", "rabbitmq-server"], 120.0)
    if not (find_executable("rabbitmq-server") and find_executable("rabbitmqctl")):
        raise BrokerError("apt-get installed rabbitmq-server but it is still not found")


# --------------------------------------------------------------------------- probing


def _recv_exactly(sock: socket.socket, count: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    missing = count
    while missing:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out reading from the broker")
        sock.settimeout(remaining)
        chunk = sock.recv(missing)
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def probe_connection_start(
    host: str,
    port: int,
    *,
    timeout: float = 5.0,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> bytes:
    """Send the AMQP protocol header and return the payload of the broker's first frame.

    The payload of a healthy broker's answer is a ``Connection.Start`` method
    (class 10, method 10) and starts with ``b"\\x00\\x0a\\x00\\x0a"``.

    :param host: the broker's address.
    :param port: the broker's AMQP (or, with ``ssl_context``, AMQPS) port.
    :param timeout: the longest the whole exchange may take, in seconds.
    :param ssl_context: wrap the connection in TLS with this context.
    :param server_hostname: the name to verify the server's certificate against
        (default: ``host``).
    :returns: the frame payload, without the frame header and frame-end octet.
    :raises OSError: when the connection or the TLS handshake fails or times out.
    :raises BrokerError: when the answer is not an AMQP method frame on channel 0.
    """
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock: socket.socket = raw
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(raw, server_hostname=server_hostname or host)
        with sock:
            sock.sendall(PROTOCOL_HEADER)
            header = _recv_exactly(sock, 7, deadline)
            kind, channel, size = struct.unpack("!BHI", header)
            if kind != 1 or channel != 0 or size > MAX_START_FRAME:
                raise BrokerError(f"unexpected answer to the protocol header: {header!r}")
            body = _recv_exactly(sock, size + 1, deadline)
    if body[-1] != 0xCE:
        raise BrokerError("the broker's first frame does not end with the frame-end octet")
    return body[:-1]


def amqp_answers(host: str, port: int, *, timeout: float = 2.0) -> bool:
    """Tell whether an AMQP 0-9-1 broker answers on ``host:port`` with ``Connection.Start``.

    :param host: the broker's address.
    :param port: the broker's AMQP port.
    :param timeout: the longest the probe may take, in seconds.
    :returns: ``True`` when a ``Connection.Start`` frame came back.
    """
    try:
        payload = probe_connection_start(host, port, timeout=timeout)
    except (OSError, BrokerError):
        return False
    return payload[:4] == b"\x00\x0a\x00\x0a"


# --------------------------------------------------------------------------- processes, ports


def proc_start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def node_os_pids(nodename: str) -> list[int]:
    """The Erlang VM processes started for ``nodename`` (found by their environment marker)."""
    marker = f"{NODE_MARKER}={nodename}".encode()
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("beam"):
                continue
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def wait_gone(nodename: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while node_os_pids(nodename):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def kill_node(nodename: str, grace: float = 5.0) -> None:
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        for pid in node_os_pids(nodename):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        if wait_gone(nodename, wait):
            return
    raise BrokerError(f"the Erlang VM of node {nodename} survived SIGKILL")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(count: int, avoid: frozenset[int] = frozenset()) -> list[int]:
    rng = random.SystemRandom()
    chosen: list[int] = []
    if count <= 0:
        return chosen
    for _ in range(500):
        port = rng.randrange(*PORT_RANGE)
        if port in chosen or port in avoid or port in RESERVED_PORTS:
            continue
        if port_is_free(port):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise BrokerError(f"found no {count} free ports in {PORT_RANGE}")


def owner_alive(pid: object, start_time: object) -> bool:
    if not isinstance(pid, int):
        return True  # detached, or unknown: never reaped
    return proc_start_time(pid) == start_time


def reap_stale_brokers(parent: str | os.PathLike[str] | None = None) -> list[str]:
    """Stop the private nodes whose owning process died without stopping them.

    Only directories named ``amqpcore-broker-*`` under ``parent`` (default: the temporary
    directory) whose ``state.json`` names a process that no longer exists are touched.

    :param parent: the directory holding the nodes' directories.
    :returns: the node names that were reaped.
    """
    reaped: list[str] = []
    root = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    for path in root.glob(f"{DIR_PREFIX}*"):
        try:
            state = json.loads((path / "state.json").read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(state, dict) or owner_alive(
            state.get("owner_pid"), state.get("owner_start_time")
        ):
            continue
        nodename = state.get("nodename")
        if isinstance(nodename, str):
            with contextlib.suppress(BrokerError):
                kill_node(nodename, grace=2.0)
            reaped.append(nodename)
        shutil.rmtree(path, ignore_errors=True)
    return reaped


# --------------------------------------------------------------------------- helpers


def tcp_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def rabbitmq_uid() -> int | None:
    try:
        return pwd.getpwnam("rabbitmq").pw_uid
    except KeyError:
        return None


def chown_rabbitmq(path: Path) -> None:
    if os.geteuid() != 0:
        return
    try:
        entry = pwd.getpwnam("rabbitmq")
    except KeyError:
        raise BrokerError("the 'rabbitmq' user does not exist: is rabbitmq-server installed?")
    os.chown(path, entry.pw_uid, entry.pw_gid)


def reachable_tempdir() -> str:
    """The temporary directory if every ancestor lets other users through, else ``/tmp``."""
    temp = Path(tempfile.gettempdir()).resolve()
    for path in (temp, *temp.parents):
        if not os.stat(path).st_mode & 0o001:
            return "/tmp"
    return str(temp)


def listening_addresses(port: int) -> list[str]:
    """The local addresses with a TCP socket listening on ``port`` (from ``/proc/net/tcp*``).

    ``0.0.0.0`` or ``::`` in the answer means "every interface".

    :param port: the TCP port.
    :returns: addresses such as ``"127.0.0.1"`` or ``"::"``, one per listening socket.
    """
    found: list[str] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines, None)
            for line in lines:
                fields = line.split()
                address, _, hex_port = fields[1].partition(":")
                if fields[3] != "0A" or int(hex_port, 16) != port:
                    continue
                raw = bytes.fromhex(address)
                # the kernel prints each 32-bit word in host (little-endian) byte order
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.append(str(ipaddress.ip_address(words)))
    return found
