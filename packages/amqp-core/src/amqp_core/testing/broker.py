"""A private, throwaway RabbitMQ node for tests, examples and the demo.

Theory of operation
-------------------
A :class:`PrivateBroker` is one RabbitMQ node chosen entirely by environment variables: its own
node name (``amqpcore-<random>@localhost``), its own ports (picked at random in 20000-32000, below
Linux's ephemeral range, and checked free), and its own directory holding the data, the logs, the
configuration and a throwaway TLS certificate authority.  Every listener is bound to 127.0.0.1:
AMQP, AMQPS and Erlang distribution (``-kernel inet_dist_use_interface {127,0,0,1}``); epmd, when
this node is the one that starts it, listens on loopback only (``ERL_EPMD_ADDRESS``).

Debian's ``rabbitmq-server`` and ``rabbitmqctl`` switch to the ``rabbitmq`` user, so the
directory is owned by that user and its parents must be traversable (mode 755).  ``start`` runs
``rabbitmq-server -detached`` and then polls the AMQP port until it answers a protocol header with
a ``Connection.Start`` frame.  ``stop`` asks the node to stop with ``rabbitmqctl``, then makes
sure its Erlang VM is gone (SIGTERM, then SIGKILL) and removes the directory.

Finding the node's operating-system process: from 3.10 on the node name is not on the VM's command
line, so the server is started with the marker variable ``AMQPCORE_PRIVATE_NODE=<node name>`` in
its environment and the node's processes are the ``beam*`` processes whose
``/proc/<pid>/environ`` carries it (epmd inherits the marker too, but it is shared by every node
on the machine and is never touched).

Safety nets: ``stop`` is registered with :mod:`atexit`, and every ``start`` first reaps the nodes
left behind by processes that died without stopping theirs (a ``state.json`` in each directory
names the owning process and its start time; :meth:`PrivateBroker.detach` clears the owner so that
a node started from the command line outlives its starter).

The machine-level helpers (installing, finding processes, ports, probing, reaping) live in
:mod:`amqp_core.testing.node_process`.  Only the standard library is used, plus ``trustme``
(imported when a node starts) for the certificates.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from .node_process import (
    DIR_PREFIX,
    NODE_MARKER,
    BrokerError,
    amqp_answers,
    chown_rabbitmq,
    ensure_installed,
    find_executable,
    kill_node,
    listening_addresses,
    node_os_pids,
    pick_ports,
    port_is_free,
    probe_connection_start,
    proc_start_time,
    rabbitmq_uid,
    reachable_tempdir,
    reap_stale_brokers,
    run_command,
    tcp_accepts,
    wait_gone,
)

__all__ = [
    "BrokerError",
    "ExternalBroker",
    "PrivateBroker",
    "amqp_answers",
    "ensure_installed",
    "listening_addresses",
    "probe_connection_start",
    "reap_stale_brokers",
]

#: The memory high watermark RabbitMQ uses by default (a fraction of the machine's memory).
DEFAULT_MEMORY_WATERMARK = 0.4

_NODENAME_RE = re.compile(r"^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+$")
_UNSAFE_ARG_CHARS = frozenset('$`\\\n"')  # the Debian wrapper re-parses arguments with sh


# --------------------------------------------------------------------------- brokers


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalBroker:
    """A broker someone else runs, known only by its URL (the ``AMQP_URL`` case).

    It offers no TLS material and no ``rabbitmqctl``: ``is_private`` is ``False``.
    """

    url: str
    host: str
    port: int
    is_private: bool = False

    @classmethod
    def from_url(cls, url: str) -> ExternalBroker:
        """Describe the broker at ``url`` (``amqp://`` or ``amqps://``).

        :param url: the broker's URL.
        :raises TypeError: when ``url`` is not a string.
        :raises ValueError: when ``url`` is not an amqp or amqps URL.
        """
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ValueError(f"url must start with amqp:// or amqps://, got {url!r}")
        default_port = 5671 if parts.scheme == "amqps" else 5672
        return cls(url=url, host=parts.hostname or "localhost", port=parts.port or default_port)


class PrivateBroker:
    """One throwaway RabbitMQ node on 127.0.0.1, with TLS and SASL EXTERNAL configured.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.  The guest user logs in
    with PLAIN over either port, or with EXTERNAL over TLS with the client certificate
    (``client_cert_path`` / ``client_key_path``, common name ``guest``).

    :param base_dir: the node's directory (created if missing, removed by :meth:`stop` when it
        was created here); default: a new directory under the temporary directory.  The
        ``rabbitmq`` user must be able to reach it.
    :param nodename: the Erlang node name (default ``amqpcore-<random>@localhost``).
    :param port: the AMQP port (default: a free one).
    :param tls_port: the AMQPS port (default: a free one).
    :param dist_port: the Erlang distribution port (default: a free one).

    Attributes: ``host`` (``"127.0.0.1"``), ``port``, ``tls_port``, ``dist_port``, ``nodename``,
    ``base_dir``, ``log_dir``; the PEM files ``ca_path`` (the throwaway CA),
    ``server_cert_path`` / ``server_key_path`` (valid for ``localhost`` and ``127.0.0.1``) and
    ``client_cert_path`` / ``client_key_path`` (common name ``guest``, for SASL EXTERNAL).
    """

    host = "127.0.0.1"
    is_private = True

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        nodename: str | None = None,
        *,
        port: int | None = None,
        tls_port: int | None = None,
        dist_port: int | None = None,
    ) -> None:
        if nodename is None:
            nodename = f"amqpcore-{secrets.token_hex(4)}@localhost"
        if not isinstance(nodename, str):
            raise TypeError(f"nodename must be a str, not {type(nodename).__name__}")
        if not _NODENAME_RE.match(nodename):
            raise ValueError(f"nodename must look like 'name@host', got {nodename!r}")
        for name, value in (("port", port), ("tls_port", tls_port), ("dist_port", dist_port)):
            if value is not None and type(value) is not int:
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if value is not None and not 0 < value < 65536:
                raise ValueError(f"{name} must be a port number (1-65535), got {value!r}")
        if base_dir is not None and not isinstance(base_dir, str | os.PathLike):
            raise TypeError(f"base_dir must be a path, not {type(base_dir).__name__}")
        self.nodename = nodename
        self._fixed_ports = port is not None and tls_port is not None and dist_port is not None
        picked = iter(pick_ports(3 - sum(p is not None for p in (port, tls_port, dist_port))))
        self.port: int = port if port is not None else next(picked)
        self.tls_port: int = tls_port if tls_port is not None else next(picked)
        self.dist_port: int = dist_port if dist_port is not None else next(picked)
        if base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=reachable_tempdir()))
            self._own_base_dir = True
        else:
            self.base_dir = Path(base_dir).absolute()
            self._own_base_dir = not self.base_dir.exists()
            self.base_dir.mkdir(parents=True, exist_ok=True)
        tls = self.base_dir / "tls"
        self.log_dir = self.base_dir / "log"
        self.ca_path, self.client_cert_path, self.client_key_path = (
            tls / "ca.pem",
            tls / "client.pem",
            tls / "client.key",
        )
        self.server_cert_path, self.server_key_path = tls / "server.pem", tls / "server.key"
        self._started = False
        self._stopped = False
        self._owner: tuple[int, int | None] | None = (os.getpid(), proc_start_time(os.getpid()))
        atexit.register(self.stop)

    # ------------------------------------------------------------------ paths and URLs

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:PORT/%2F``."""
        return f"amqp://guest:guest@{self.host}:{self.port}/%2F"

    @property
    def tls_url(self) -> str:
        """``amqps://guest:guest@127.0.0.1:TLSPORT/%2F`` (verify with :attr:`ca_path`)."""
        return f"amqps://guest:guest@{self.host}:{self.tls_port}/%2F"

    def client_ssl_context(self, *, client_cert: bool = False) -> ssl.SSLContext:
        """An SSL context that trusts this node's CA, optionally presenting the client certificate.

        :param client_cert: present the ``guest`` client certificate (mutual TLS).
        """
        context = ssl.create_default_context(cafile=str(self.ca_path))
        if client_cert:
            context.load_cert_chain(str(self.client_cert_path), str(self.client_key_path))
        return context

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        """Everything :meth:`from_state` needs to control this node from another process."""
        owner_pid, owner_start = self._owner if self._owner is not None else (None, None)
        return {
            "nodename": self.nodename,
            "host": self.host,
            "port": self.port,
            "tls_port": self.tls_port,
            "dist_port": self.dist_port,
            "base_dir": str(self.base_dir),
            "own_base_dir": self._own_base_dir,
            "url": self.url,
            "tls_url": self.tls_url,
            "ca_path": str(self.ca_path),
            "client_cert_path": str(self.client_cert_path),
            "client_key_path": str(self.client_key_path),
            "owner_pid": owner_pid,
            "owner_start_time": owner_start,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Take control of a running node described by :meth:`to_state`.

        :param state: the mapping :meth:`to_state` returned.
        :raises ValueError: when ``state`` lacks a field or holds a wrong one.
        """
        try:
            broker = cls(
                state["base_dir"],
                state["nodename"],
                port=state["port"],
                tls_port=state["tls_port"],
                dist_port=state["dist_port"],
            )
            broker._own_base_dir = bool(state["own_base_dir"])
        except KeyError as missing:
            raise ValueError(f"state lacks the field {missing}") from None
        broker._started = True
        return broker

    def detach(self) -> None:
        """Let the node outlive this process: no stop at exit, never reaped as stale."""
        atexit.unregister(self.stop)
        self._owner = None
        if self.base_dir.exists():
            self._write_state()

    def _write_state(self) -> None:
        path = self.base_dir / "state.json"
        path.write_text(json.dumps(self.to_state(), indent=2) + "\n")
        chown_rabbitmq(path)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 90.0) -> None:
        """Start the node and wait until it accepts AMQP connections.  A no-op once started.

        :param timeout: the longest to wait for the node, in seconds.
        :raises BrokerError: when the node cannot start in time (with the tail of its log).
        """
        if self._stopped:
            raise BrokerError("this PrivateBroker was stopped; create a new one")
        if self._started:
            return
        server = find_executable("rabbitmq-server")
        if server is None or find_executable("rabbitmqctl") is None:
            raise BrokerError("rabbitmq-server is not installed: call ensure_installed() first")
        owner_uid = rabbitmq_uid()
        if os.geteuid() not in (0, owner_uid):
            raise BrokerError("a private RabbitMQ node must be started by root or by 'rabbitmq'")
        reap_stale_brokers(self.base_dir.parent)
        if not self._fixed_ports and not all(
            map(port_is_free, (self.port, self.tls_port, self.dist_port))
        ):
            self.port, self.tls_port, self.dist_port = pick_ports(3)
        self._write_files()
        self._started = True
        deadline = time.monotonic() + timeout
        try:
            # output goes to a file, not a pipe: a daemon inheriting a pipe would keep it open
            with open(self.log_dir / "startup.log", "wb") as output:
                done = subprocess.run(
                    [server, "-detached"],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=self._env(server=True),
                    timeout=max(timeout, 1.0),
                    check=False,
                )
            if done.returncode != 0:
                raise BrokerError(f"rabbitmq-server -detached exited with {done.returncode}")
            self._wait_until_ready(deadline, started_at=time.monotonic())
        except (BrokerError, subprocess.TimeoutExpired) as failure:
            report = f"{failure}\n{self._log_tail()}"
            with contextlib.suppress(BrokerError):
                kill_node(self.nodename, grace=2.0)
            self._started = False  # a later start() tries again from scratch
            raise BrokerError(f"node {self.nodename} did not start: {report}") from None

    def _wait_until_ready(self, deadline: float, started_at: float) -> None:
        missing = 0
        while True:
            if amqp_answers(self.host, self.port, timeout=2.0) and tcp_accepts(
                self.host, self.tls_port
            ):
                return
            if time.monotonic() - started_at > 5.0:
                missing = 0 if node_os_pids(self.nodename) else missing + 1
                if missing >= 4:
                    raise BrokerError("the node's Erlang VM exited")
            if time.monotonic() >= deadline:
                raise BrokerError("timed out waiting for the AMQP port to answer")
            time.sleep(0.25)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the node, make sure its VM is gone and remove its directory.  Idempotent.

        :param timeout: the longest to wait for a clean stop before killing the VM, in seconds.
        :raises BrokerError: when the node's VM survives SIGKILL.
        """
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        try:
            if self._started and node_os_pids(self.nodename):
                with contextlib.suppress(BrokerError):
                    self.ctl("stop", timeout=timeout)
                if not wait_gone(self.nodename, timeout=min(timeout, 15.0)):
                    kill_node(self.nodename)
        finally:
            if self._own_base_dir:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    # ------------------------------------------------------------------ rabbitmqctl

    def ctl(self, *args: str, timeout: float = 30.0) -> str:
        """Run ``rabbitmqctl -n NODE ARGS...`` and return its standard output.

        :param args: the command and its arguments (no ``$``, backquote, backslash, double
            quote or newline: Debian's wrapper passes them through ``sh``).
        :param timeout: the longest the command may run, in seconds.
        :raises TypeError: when an argument is not a string.
        :raises ValueError: when an argument holds a character the wrapper cannot pass on.
        :raises BrokerError: when the command fails (with its error output) or times out.
        """
        for arg in args:
            if not isinstance(arg, str):
                raise TypeError(f"args must be str, got {type(arg).__name__}")
            if _UNSAFE_ARG_CHARS.intersection(arg):
                raise ValueError(f'args must not contain $ ` \\ " or newlines: {arg!r}')
        ctl = find_executable("rabbitmqctl")
        if ctl is None:
            raise BrokerError("rabbitmqctl is not installed")
        return run_command([ctl, "-n", self.nodename, *args], timeout, self._env(server=False))

    def list_connections(self) -> list[dict[str, str]]:
        """The node's client connections, as strings: ``pid`` (what :meth:`close_connection`
        takes), ``name``, ``user``, ``vhost``, ``state`` and ``client_properties`` (an Erlang term,
        unparsed: search it for the text you need)."""
        columns = ("pid", "name", "user", "vhost", "state", "client_properties")
        out = self.ctl("list_connections", *columns, "--quiet", "--no-table-headers")
        rows: list[dict[str, str]] = []
        for line in out.splitlines():
            fields = line.split("\t", len(columns) - 1)
            if len(fields) == len(columns) and fields[0].startswith("<"):
                rows.append(dict(zip(columns, fields, strict=True)))
        return rows

    def close_connection(self, pid: str, reason: str = "closed by test") -> None:
        """Make the broker close one connection (``pid`` from :meth:`list_connections`).

        The client receives ``Connection.Close`` with reply code 320 (CONNECTION_FORCED).
        """
        self.ctl("close_connection", pid, reason)

    def close_all_connections(self, reason: str = "closed by test") -> None:
        """Make the broker close every client connection, in every virtual host (reply code 320
        CONNECTION_FORCED)."""
        self.ctl("close_all_connections", "--global", reason)

    def set_memory_watermark(self, value: float) -> None:
        """Set the memory high watermark (a fraction of the machine's memory).

        A tiny value such as ``1e-7`` makes the broker block publishers (``Connection.Blocked``);
        :data:`DEFAULT_MEMORY_WATERMARK` (0.4) restores the default.

        :param value: a fraction, 0 <= value <= 1.
        :raises ValueError: when ``value`` is out of range.
        """
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"value must be a number, not {type(value).__name__}")
        if not 0 <= value <= 1:
            raise ValueError(f"value must be between 0 and 1, got {value!r}")
        text = format(value, ".12f").rstrip("0").rstrip(".") or "0"
        self.ctl("set_vm_memory_high_watermark", text)

    def stop_app(self) -> None:
        """Stop the RabbitMQ application (the VM keeps running; every connection is dropped)."""
        self.ctl("stop_app", timeout=60.0)

    def start_app(self, timeout: float = 60.0) -> None:
        """Start the RabbitMQ application again and wait until AMQP answers.

        :param timeout: the longest to wait, in seconds.
        """
        deadline = time.monotonic() + timeout
        self.ctl("start_app", timeout=timeout)
        self._wait_until_ready(deadline, started_at=time.monotonic())

    def add_vhost(self, name: str) -> None:
        """Create the virtual host ``name``."""
        self.ctl("add_vhost", name)

    def delete_vhost(self, name: str) -> None:
        """Delete the virtual host ``name``."""
        self.ctl("delete_vhost", name)

    def add_user(self, name: str, password: str) -> None:
        """Create the user ``name`` with ``password``."""
        self.ctl("add_user", name, password)

    def delete_user(self, name: str) -> None:
        """Delete the user ``name``."""
        self.ctl("delete_user", name)

    def set_permissions(
        self,
        user: str,
        vhost: str = "/",
        configure: str = ".*",
        write: str = ".*",
        read: str = ".*",
    ) -> None:
        """Grant ``user`` configure/write/read permissions (regular expressions) on ``vhost``."""
        self.ctl("set_permissions", "-p", vhost, user, configure, write, read)

    # ------------------------------------------------------------------ files and environment

    def _env(self, *, server: bool) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RABBITMQ_", "ERL_", NODE_MARKER))
        }
        etc = self.base_dir / "etc"
        loopback_dist = "-kernel inet_dist_use_interface {127,0,0,1}"
        env.update(
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_CONF_ENV_FILE=str(etc / "rabbitmq-env.conf"),
            RABBITMQ_CTL_ERL_ARGS=loopback_dist,
            RABBITMQ_USE_LONGNAME="false",
        )
        if server:
            env.update(
                {NODE_MARKER: self.nodename},
                RABBITMQ_NODENAME=self.nodename,
                RABBITMQ_NODE_IP_ADDRESS=self.host,
                RABBITMQ_NODE_PORT=str(self.port),
                RABBITMQ_DIST_PORT=str(self.dist_port),
                RABBITMQ_SERVER_START_ARGS=loopback_dist,
                RABBITMQ_MNESIA_BASE=str(self.base_dir / "mnesia"),
                RABBITMQ_LOG_BASE=str(self.log_dir),
                RABBITMQ_CONFIG_FILE=str(etc / "rabbitmq"),
                RABBITMQ_ADVANCED_CONFIG_FILE=str(etc / "advanced.config"),
                RABBITMQ_ENABLED_PLUGINS_FILE=str(etc / "enabled_plugins"),
                RABBITMQ_PID_FILE=str(self.base_dir / "mnesia" / "node.pid"),
                ERL_CRASH_DUMP=str(self.log_dir / "erl_crash.dump"),
            )
        return env

    def _write_files(self) -> None:
        try:
            import trustme  # a test dependency: imported only when a node starts
        except ImportError:
            raise BrokerError("PrivateBroker needs 'trustme' for its certificates") from None

        for sub in ("etc", "log", "mnesia", "tls"):
            (self.base_dir / sub).mkdir(exist_ok=True)
        ca = trustme.CA(organization_name="amqp_core private test broker")
        server = ca.issue_cert("localhost", "127.0.0.1", common_name="localhost")
        client = ca.issue_cert("guest@localhost", common_name="guest")
        ca.cert_pem.write_to_path(str(self.ca_path))
        server.cert_chain_pems[0].write_to_path(str(self.server_cert_path))
        server.private_key_pem.write_to_path(str(self.server_key_path))
        client.cert_chain_pems[0].write_to_path(str(self.client_cert_path))
        client.private_key_pem.write_to_path(str(self.client_key_path))
        self.server_key_path.chmod(0o600)
        self.client_key_path.chmod(0o600)
        etc = self.base_dir / "etc"
        (etc / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    f"listeners.tcp.default = {self.host}:{self.port}",
                    f"listeners.ssl.default = {self.host}:{self.tls_port}",
                    f"ssl_options.cacertfile = {self.ca_path}",
                    f"ssl_options.certfile = {self.server_cert_path}",
                    f"ssl_options.keyfile = {self.server_key_path}",
                    "ssl_options.verify = verify_peer",
                    "ssl_options.fail_if_no_peer_cert = false",
                    "auth_mechanisms.1 = PLAIN",
                    "auth_mechanisms.2 = AMQPLAIN",
                    "auth_mechanisms.3 = EXTERNAL",
                    "ssl_cert_login_from = common_name",
                    "loopback_users = none",
                    "",
                ]
            )
        )
        (etc / "enabled_plugins").write_text("[rabbitmq_auth_mechanism_ssl].\n")
        (etc / "rabbitmq-env.conf").write_text("# intentionally empty: see PrivateBroker._env\n")
        self._write_state()
        for path in (self.base_dir, *self.base_dir.rglob("*")):
            chown_rabbitmq(path)
        self.base_dir.chmod(0o755)

    def _log_tail(self, lines: int = 40) -> str:
        parts: list[str] = []
        if self.log_dir.is_dir():
            for path in sorted(self.log_dir.iterdir()):
                if path.suffix not in (".log", ".dump") or not path.is_file():
                    continue
                with contextlib.suppress(OSError):
                    text = path.read_text(errors="replace").splitlines()
                    picked = text[:5] if path.suffix == ".dump" else text[-lines:]
                    parts.append(f"--- {path.name} ---\n" + "\n".join(picked))
        return "\n".join(parts) if parts else f"(no log files in {self.log_dir})"

    def __repr__(self) -> str:
        return f"<PrivateBroker {self.nodename} amqp={self.port} amqps={self.tls_port}>"
