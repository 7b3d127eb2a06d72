#!/usr/bin/env python3
"""Check that one workspace package is ready to release: changelog, build, artifacts, smoke test.

Usage (from the repository root, with the workspace environment)::

    .venv/bin/python tools/release.py amqp-adapter-tornado       # one package
    .venv/bin/python tools/release.py core asyncio tornado        # short names work too
    .venv/bin/python tools/release.py all --amqp-url amqp://...   # every package, one broker

Theory of operation
-------------------
For each package named on the command line, in order (amqp-core first):

1. **metadata** -- ``packages/<name>/pyproject.toml`` is read: the version (the single
   source: ``__version__`` is read back from the installed metadata), and for an adapter its
   ``amqp-core`` range, which must be a real range (a lower and an upper bound) containing
   the workspace's amqp-core version.
2. **changelog** -- ``CHANGELOG.md`` has a ``## [<version>]`` entry with some text in it.
3. **build** -- ``uv build --package <name>`` (the sdist, then the wheel built from that
   sdist, with the package's own build backend, hatchling) into ``--dist-dir/<name>/``;
   ``python -m build`` when uv is missing.
4. **wheel** / **sdist** -- the artifacts are opened and checked without installing them:
   the metadata (name, version, summary, a markdown long description equal to the README,
   license expression and file, classifiers, Requires-Python, the amqp-core range), the
   RECORD hashes, ``py.typed``, the entry points (equal to pyproject's, their modules inside),
   and that nothing else leaks in (tests, caches, workspace files).  ``twine check --strict``
   runs too when twine is on PATH.
5. **smoke** -- a clean virtual environment (``uv venv``) gets the freshly built amqp-core
   wheel and the package's wheel (third-party dependencies from uv's cache, else the index),
   and a script run there with ``python -I`` lists the adapters, loads the package's adapter
   through the plugin API (which checks the amqp-core range), opens a connection with it,
   declares a queue, publishes, consumes one message, acks and closes, then reports versions
   and what is installed.  The broker is ``--amqp-url`` / ``AMQP_URL``, else a private node
   (:class:`amqp_core.testing.broker.PrivateBroker`) started for the run and stopped after.

Every step prints one ``ok`` / ``FAIL`` line; a failed step skips the steps that need its
result.  The exit status is 0 only when every check of every package passed.  Nothing is ever
uploaded: publishing the artifacts in ``--dist-dir`` is a separate, manual step
(``RELEASING.md``).
"""

from __future__ import annotations

import argparse
import base64
import configparser
import contextlib
import email.parser
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGES_DIR = ROOT / "packages"
CORE = "amqp-core"
#: Release order: the core first (the adapters' smoke tests install its fresh wheel).
ALL_PACKAGES = (
    CORE, "amqp-adapter-asyncio", "amqp-adapter-tornado", "amqp-adapter-twisted",
    "amqp-adapter-gevent",
)
#: The adapter each package's smoke test connects with.
SMOKE_ADAPTER = {CORE: "select", **{name: name.rsplit("-", 1)[1] for name in ALL_PACKAGES[1:]}}
#: Files that must never be inside an artifact (by path component or suffix).
LEAK_PARTS = frozenset({
    "tests", "test", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".venv",
    ".hypothesis", "uv.lock", "conftest.py", ".broker", "dist", "build", ".git",
})
LEAK_SUFFIXES = (".pyc", ".pyo", ".orig", ".rej", ".swp")
#: The sdist's top level: what the packages' ``[tool.hatch.build.targets.sdist]`` includes.
SDIST_TOP = frozenset({
    "src", "README.md", "CHANGELOG.md", "LICENSE", "pyproject.toml", "PKG-INFO", ".gitignore",
})
SMOKE_BODY = "release smoke"
UV = shutil.which("uv")

if importlib.util.find_spec("amqp_core") is None:  # run outside the workspace venv: use the tree
    sys.path.insert(0, str(PACKAGES_DIR / CORE / "src"))


# ------------------------------------------------------------------------ reporting


class Report:
    """One line per check; remembers whether any failed."""

    def __init__(self) -> None:
        self.failed: dict[str, list[str]] = {}

    def ok(self, package: str, step: str, detail: str) -> None:
        print(f"  ok    {step:<10} {detail}", flush=True)

    def fail(self, package: str, step: str, detail: str) -> None:
        self.failed.setdefault(package, []).append(step)
        lines = detail.rstrip().splitlines() or [""]
        print(f"  FAIL  {step:<10} {lines[0]}", flush=True)
        for line in lines[1:]:
            print(f"                   {line}", flush=True)

    def check(self, package: str, step: str, problems: Sequence[str], detail: str) -> bool:
        """``ok`` with ``detail`` when ``problems`` is empty, else ``FAIL`` listing them."""
        if problems:
            self.fail(package, step, "\n".join(problems))
            return False
        self.ok(package, step, detail)
        return True


# ------------------------------------------------------------------------ packages


@dataclass
class Package:
    """A workspace package, as its pyproject.toml describes it."""

    name: str
    directory: Path
    version: str
    module: str
    dependencies: list[str]
    entry_points: dict[str, str]
    scripts: dict[str, str]
    sdist: Path | None = None
    wheel: Path | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def dist_stem(self) -> str:
        return f"{self.name.replace('-', '_')}-{self.version}"

    @classmethod
    def load(cls, name: str) -> Package:
        directory = PACKAGES_DIR / name
        data = tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))
        project = data["project"]
        wheel_target = data.get("tool", {}).get("hatch", {}).get("build", {}).get(
            "targets", {}).get("wheel", {})
        module = Path(wheel_target.get("packages", [f"src/{name.replace('-', '_')}"])[0]).name
        return cls(
            name=project["name"], directory=directory, version=str(project.get("version", "")),
            module=module, dependencies=list(project.get("dependencies", [])),
            entry_points=dict(project.get("entry-points", {}).get("amqp_core.adapters", {})),
            scripts=dict(project.get("scripts", {})),
        )


def resolve_names(names: Sequence[str]) -> list[str]:
    """Package names from the command line (``all``, full names, or short ones like ``tornado``)."""
    chosen: set[str] = set()
    for name in names:
        if name == "all":
            chosen.update(ALL_PACKAGES)
            continue
        full = {"core": CORE}.get(name, name)
        if full not in ALL_PACKAGES and f"amqp-adapter-{name}" in ALL_PACKAGES:
            full = f"amqp-adapter-{name}"
        if full not in ALL_PACKAGES:
            raise SystemExit(f"release.py: unknown package {name!r} (one of: all, "
                             f"{', '.join(ALL_PACKAGES)})")
        chosen.add(full)
    return [name for name in ALL_PACKAGES if name in chosen]


def core_range(requirements: Sequence[str]) -> str | None:
    from amqp_core.plugins import core_specifier

    return core_specifier(requirements)


def check_metadata(package: Package, core: Package, report: Report) -> bool:
    from amqp_core.plugins import version_satisfies

    problems = []
    try:
        version_satisfies(package.version, "")
    except ValueError:
        problems.append(f"version {package.version!r} in pyproject.toml is not a PEP 440 version")
    detail = f"{package.name} {package.version}"
    if package.name != CORE:
        spec = core_range(package.dependencies)
        if not spec:
            problems.append(f"no amqp-core version range in dependencies {package.dependencies}")
        else:
            operators = re.findall(r"(~=|===|==|!=|<=|>=|<|>)", spec)
            if not ({">=", ">", "~=", "=="} & set(operators)) or not (
                {"<", "<=", "~=", "=="} & set(operators)
            ):
                problems.append(f"the amqp-core range {spec!r} needs a lower and an upper bound")
            elif not version_satisfies(core.version, spec):
                problems.append(f"the amqp-core range {spec!r} excludes the workspace's "
                                f"amqp-core {core.version}")
            detail += f", works with amqp-core{spec}"
    return report.check(package.name, "metadata", problems, detail)


def check_changelog(package: Package, report: Report) -> bool:
    path = package.directory / "CHANGELOG.md"
    if not path.is_file():
        return report.check(package.name, "changelog", [f"{path} is missing"], "")
    text = path.read_text(encoding="utf-8")
    heading = re.compile(rf"^##\s+\[?v?{re.escape(package.version)}\]?(?=\s|$).*$", re.M)
    match = heading.search(text)
    if match is None:
        return report.check(package.name, "changelog", [
            f"{_shown(path)} has no '## [{package.version}]' entry "
            f"(add one before releasing {package.version})"], "")
    following = text[match.end():]
    body = re.split(r"^##\s", following, maxsplit=1, flags=re.M)[0].strip()
    if not body:
        return report.check(package.name, "changelog", [
            f"the {package.version} entry of {_shown(path)} is empty"], "")
    report.ok(package.name, "changelog", match.group(0).strip())
    return True


# ------------------------------------------------------------------------ building


def clean_env() -> dict[str, str]:
    """The environment for subprocesses: nothing that points back at the workspace."""
    env = {key: value for key, value in os.environ.items() if key not in (
        "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(argv: Sequence[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` bounded in time; a timeout is reported as a failed run, not an exception."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              check=False, env=kwargs.pop("env", clean_env()), **kwargs)
    except subprocess.TimeoutExpired as error:
        def text(data: Any) -> str:
            return data.decode(errors="replace") if isinstance(data, bytes) else data or ""
        stderr = text(error.stderr) + f"\ntimed out after {timeout}s"
        return subprocess.CompletedProcess(list(argv), -1, text(error.stdout), stderr)


def tail(completed: subprocess.CompletedProcess[str], lines: int = 25) -> str:
    output = (completed.stdout + "\n" + completed.stderr).strip().splitlines()
    return "\n".join(output[-lines:])


def build(package: Package, out_dir: Path, report: Report) -> bool:
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(f"{package.dist_stem}[.-]*"):
        old.unlink()
    started = time.monotonic()
    if UV is not None:
        argv = [UV, "build", "--package", package.name, "--out-dir", str(out_dir)]
    else:
        argv = [sys.executable, "-m", "build", "--outdir", str(out_dir), str(package.directory)]
    completed = run(argv, 300, cwd=ROOT)
    sdist = out_dir / f"{package.dist_stem}.tar.gz"
    wheel = out_dir / f"{package.dist_stem}-py3-none-any.whl"
    if completed.returncode != 0 or not sdist.is_file() or not wheel.is_file():
        report.fail(package.name, "build", f"{' '.join(argv)} failed:\n{tail(completed)}")
        return False
    package.sdist, package.wheel = sdist, wheel
    report.ok(package.name, "build", f"{sdist.name}, {wheel.name} in "
              f"{_shown(out_dir)} ({time.monotonic() - started:.1f}s)")
    return True


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# ------------------------------------------------------------------------ artifact checks


def leaks(paths: Sequence[str]) -> list[str]:
    """The paths that are tests, caches or workspace files."""
    return [path for path in paths
            if LEAK_PARTS & set(path.split("/"))
            or path.endswith(LEAK_SUFFIXES) or re.search(r"(^|/)test_[^/]*\.py$", path)]


def parse_metadata(data: bytes) -> Message:
    """A METADATA / PKG-INFO document (UTF-8, as core metadata 2.1+ requires)."""
    return email.parser.Parser().parsestr(data.decode("utf-8"))


def metadata_problems(package: Package, core: Package, meta: Message, where: str) -> list[str]:
    """What is wrong in a METADATA / PKG-INFO document."""
    from amqp_core.plugins import version_satisfies

    problems = []

    def normalized(name: str | None) -> str:
        return re.sub(r"[-_.]+", "-", name or "").lower()

    if normalized(meta["Name"]) != package.name:
        problems.append(f"{where}: Name is {meta['Name']!r}, not {package.name!r}")
    if meta["Version"] != package.version:
        problems.append(f"{where}: Version is {meta['Version']!r}, not {package.version!r}")
    if tuple(int(p) for p in (meta["Metadata-Version"] or "0").split(".")) < (2, 1):
        problems.append(f"{where}: Metadata-Version {meta['Metadata-Version']} is older than 2.1")
    for header in ("Summary", "Requires-Python"):
        if not (meta[header] or "").strip():
            problems.append(f"{where}: no {header}")
    if not (meta["License-Expression"] or meta["License"]):
        problems.append(f"{where}: no License-Expression")
    if not meta.get_all("License-File"):
        problems.append(f"{where}: no License-File")
    classifiers = meta.get_all("Classifier") or []
    for wanted in ("Typing :: Typed", "Programming Language :: Python :: 3"):
        if wanted not in classifiers:
            problems.append(f"{where}: classifier {wanted!r} missing")
    content_type = (meta["Description-Content-Type"] or "").split(";")[0].strip()
    if content_type != "text/markdown":
        problems.append(f"{where}: Description-Content-Type is {content_type!r}, not "
                        "'text/markdown' (the README would not render)")
    body = meta.get_payload()
    readme = (package.directory / "README.md").read_text(encoding="utf-8")
    if not isinstance(body, str) or body.strip() != readme.strip():
        problems.append(f"{where}: the long description is not README.md")
    elif f"pip install {package.name}" not in readme:
        problems.append(
            f"README.md never says how to install it alone (pip install {package.name})")
    if package.name != CORE:
        spec = core_range(meta.get_all("Requires-Dist") or [])
        if not spec:
            problems.append(f"{where}: no Requires-Dist on amqp-core with a version range")
        elif not version_satisfies(core.version, spec):
            problems.append(f"{where}: Requires-Dist amqp-core{spec} excludes amqp-core "
                            f"{core.version}")
    return problems


def _sha256(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(
        b"=").decode()


def check_wheel(package: Package, core: Package, report: Report) -> bool:
    assert package.wheel is not None
    problems: list[str] = []
    info = f"{package.dist_stem}.dist-info"
    with zipfile.ZipFile(package.wheel) as archive:
        names = [entry.filename for entry in archive.infolist() if not entry.is_dir()]
        outside = [n for n in names if not n.startswith((f"{package.module}/", f"{info}/"))]
        if outside:
            problems.append(f"files outside {package.module}/ and {info}/: {outside}")
        leaked = leaks(names)
        if leaked:
            problems.append(f"test, cache or workspace files inside: {leaked}")
        if f"{package.module}/py.typed" not in names:
            problems.append(f"{package.module}/py.typed is missing")
        if f"{package.module}/__init__.py" not in names:
            problems.append(f"{package.module}/__init__.py is missing")
        meta = parse_metadata(archive.read(f"{info}/METADATA"))
        problems += metadata_problems(package, core, meta, "METADATA")
        for license_file in meta.get_all("License-File") or []:
            if f"{info}/licenses/{license_file}" not in names:
                problems.append(f"License-File {license_file} is not in {info}/licenses/")
        problems += _entry_point_problems(package, archive, names, info)
        problems += _record_problems(archive, names, info)
    detail = (f"{len(names)} files; metadata renders (text/markdown README); py.typed, "
              f"entry points {sorted(package.entry_points) or sorted(package.scripts)}; "
              "RECORD hashes match; no tests or caches")
    return report.check(package.name, "wheel", problems, detail)


def _entry_point_problems(
    package: Package, archive: zipfile.ZipFile, names: Sequence[str], info: str
) -> list[str]:
    wanted = {"amqp_core.adapters": package.entry_points, "console_scripts": package.scripts}
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    if f"{info}/entry_points.txt" in names:
        parser.read_string(archive.read(f"{info}/entry_points.txt").decode())
    problems = []
    for group, entries in wanted.items():
        found = dict(parser.items(group)) if parser.has_section(group) else {}
        found = {key.strip(): value.strip() for key, value in found.items()}
        if found != entries:
            problems.append(f"entry points [{group}] are {found}, pyproject says {entries}")
        for value in entries.values():
            module = value.split(":")[0].strip().replace(".", "/")
            if f"{module}.py" not in names and f"{module}/__init__.py" not in names:
                problems.append(f"entry point {value!r}: {module}.py is not in the wheel")
    return problems


def _record_problems(archive: zipfile.ZipFile, names: Sequence[str], info: str) -> list[str]:
    records = {}
    for line in archive.read(f"{info}/RECORD").decode().splitlines():
        if line.strip():
            path, digest, _size = line.rsplit(",", 2)
            records[path] = digest
    problems = []
    if set(records) != set(names):
        problems.append(f"RECORD lists {sorted(set(records) ^ set(names))} wrongly")
    for name in names:
        recorded = records.get(name)
        if recorded and recorded != _sha256(archive.read(name)):
            problems.append(f"RECORD hash of {name} does not match")
    return problems


def check_sdist(package: Package, core: Package, report: Report) -> bool:
    assert package.sdist is not None
    problems: list[str] = []
    top = package.dist_stem
    with tarfile.open(package.sdist) as archive:
        members = [m for m in archive.getmembers() if m.isfile()]
        names = [m.name for m in members]
        stray = [n for n in names if not n.startswith(f"{top}/")]
        if stray:
            problems.append(f"files outside {top}/: {stray}")
        relative = [n.removeprefix(f"{top}/") for n in names]
        unexpected = sorted({r.split("/")[0] for r in relative} - SDIST_TOP)
        if unexpected:
            problems.append(f"unexpected top-level entries: {unexpected}")
        leaked = leaks(relative)
        if leaked:
            problems.append(f"test, cache or workspace files inside: {leaked}")
        for wanted in ("PKG-INFO", "pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE",
                       f"src/{package.module}/py.typed", f"src/{package.module}/__init__.py"):
            if wanted not in relative:
                problems.append(f"{wanted} is missing")
        if "PKG-INFO" in relative:
            handle = archive.extractfile(f"{top}/PKG-INFO")
            assert handle is not None
            meta = parse_metadata(handle.read())
            problems += metadata_problems(package, core, meta, "PKG-INFO")
    return report.check(package.name, "sdist", problems,
                        f"{len(names)} files; PKG-INFO, README, CHANGELOG, LICENSE, sources only")


def twine_check(package: Package, report: Report) -> None:
    twine = shutil.which("twine")
    if twine is None or package.wheel is None or package.sdist is None:
        return
    completed = run([twine, "check", "--strict", str(package.sdist), str(package.wheel)], 120)
    report.check(package.name, "twine", [tail(completed)] if completed.returncode else [],
                 "twine check --strict passed")


# ------------------------------------------------------------------------ smoke test

SMOKE_SCRIPT = textwrap.dedent(
    """
    import faulthandler, importlib.metadata, json, os, sys, uuid

    faulthandler.dump_traceback_later(60, exit=True)  # never hang: dump the stacks and exit
    adapter = sys.argv[1]

    import amqp_core
    from amqp_core import plugins

    out = {"amqp_core_file": amqp_core.__file__, "amqp_core_version": amqp_core.__version__}
    out["distributions"] = sorted(d.metadata["Name"] for d in importlib.metadata.distributions())
    out["adapters"] = {i.name: i.distribution for i in plugins.installed_adapters()}
    cls = plugins.get_connection_class(adapter)
    out["connection_class"] = cls.__module__ + "." + cls.__name__
    out["module_version"] = sys.modules[cls.__module__.split(".")[0]].__version__
    params = amqp_core.URLParameters(os.environ["RELEASE_SMOKE_URL"])
    queue = "release-smoke-" + uuid.uuid4().hex
    state = {}
    kwargs = {}
    if adapter == "asyncio":
        import asyncio
        loop = asyncio.new_event_loop()
        kwargs["custom_ioloop"] = loop
        run, stop = loop.run_forever, loop.stop
    elif adapter == "tornado":
        from tornado.ioloop import IOLoop
        loop = IOLoop(make_current=False)
        kwargs["custom_ioloop"] = loop
        run, stop = loop.start, loop.stop
    elif adapter == "twisted":
        from twisted.internet import reactor
        run, stop = reactor.run, reactor.stop
    else:  # select, gevent: the connection's own ioloop
        run = lambda: connection.ioloop.start()
        stop = lambda: connection.ioloop.stop()

    def on_open(conn):
        conn.channel(on_open_callback=on_channel)

    def on_channel(channel):
        channel.queue_declare(queue, exclusive=True, callback=lambda _frame: declared(channel))

    def declared(channel):
        channel.basic_publish("", queue, os.environ["RELEASE_SMOKE_BODY"].encode())
        channel.basic_consume(queue, on_message)

    def on_message(channel, method, properties, body):
        channel.basic_ack(method.delivery_tag)
        state["body"] = body.decode()
        connection.close()

    def on_close(conn, reason):
        state["closed"] = type(reason).__name__
        stop()

    def on_open_error(conn, error):
        state["error"] = repr(error)
        stop()

    connection = cls(params, on_open_callback=on_open, on_open_error_callback=on_open_error,
                     on_close_callback=on_close, **kwargs)
    run()
    out.update(state)
    if adapter == "select":  # the core's other adapter too: a blocking round trip
        with amqp_core.BlockingConnection(params) as blocking:
            channel = blocking.channel()
            channel.queue_declare(queue, exclusive=True)
            channel.basic_publish("", queue, b"blocking")
            got = channel.basic_get(queue, auto_ack=True)
            out["blocking_body"] = got[2].decode() if got[2] is not None else None
    print("RELEASE-SMOKE " + json.dumps(out), flush=True)
    """
)


def make_venv(package: Package, wheels: Sequence[Path], venv: Path) -> tuple[Path | None, str]:
    """A clean venv with ``wheels`` (and their dependencies) installed; its python, or None."""
    python = venv / "bin" / "python"
    if UV is not None:
        completed = run([UV, "venv", "--quiet", "--python", sys.executable, str(venv)], 120)
        if completed.returncode != 0:
            return None, tail(completed)
        base = [UV, "pip", "install", "--quiet", "--python", str(python), *map(str, wheels)]
        completed = run([*base, "--offline"], 300)  # from uv's cache: fast, no network
        how = "dependencies from uv's cache"
        if completed.returncode != 0:
            completed = run(base, 600)
            how = "dependencies from the index"
    else:
        completed = run([sys.executable, "-m", "venv", str(venv)], 120)
        if completed.returncode != 0:
            return None, tail(completed)
        completed = run([str(python), "-m", "pip", "install", "-q", *map(str, wheels)], 600)
        how = "pip"
    if completed.returncode != 0:
        return None, tail(completed)
    return python, how


def smoke_problems(package: Package, core: Package, venv: Path, out: dict[str, Any]) -> list[str]:
    adapter = SMOKE_ADAPTER[package.name]
    problems = []
    if not Path(out["amqp_core_file"]).resolve().is_relative_to(venv.resolve()):
        problems.append(f"amqp_core was imported from {out['amqp_core_file']}, not the venv")
    if out["amqp_core_version"] != core.version:
        problems.append(f"amqp_core.__version__ is {out['amqp_core_version']}, not {core.version}")
    if out["module_version"] != package.version:
        problems.append(f"{package.module}.__version__ is {out['module_version']}, "
                        f"not {package.version}")
    others = {n for n in ALL_PACKAGES if n not in (CORE, package.name)}
    stray = others & {re.sub(r"[-_.]+", "-", d).lower() for d in out["distributions"]}
    frameworks = {"tornado", "twisted", "gevent", "uvloop"} - {adapter}
    stray |= frameworks & {re.sub(r"[-_.]+", "-", d).lower() for d in out["distributions"]}
    if stray:
        problems.append(f"other adapters or frameworks were installed too: {sorted(stray)}")
    wanted = {"select": CORE, "blocking": CORE}
    if package.name != CORE:
        wanted[adapter] = package.name
    if out["adapters"] != wanted:
        problems.append(f"installed adapters are {out['adapters']}, expected {wanted}")
    if out.get("error"):
        problems.append(f"the connection failed to open: {out['error']}")
    if out.get("body") != SMOKE_BODY:
        problems.append(f"consumed {out.get('body')!r}, expected {SMOKE_BODY!r}")
    if "closed" not in out:
        problems.append("the connection's close callback never ran")
    if adapter == "select" and out.get("blocking_body") != "blocking":
        problems.append(f"blocking round trip got {out.get('blocking_body')!r}")
    return problems


def smoke(package: Package, core: Package, url: str, work: Path, report: Report) -> bool:
    assert package.wheel is not None and core.wheel is not None
    started = time.monotonic()
    venv = work / f"venv-{package.name}"
    wheels = [core.wheel] if package.name == CORE else [core.wheel, package.wheel]
    python, how = make_venv(package, wheels, venv)
    if python is None:
        report.fail(package.name, "smoke", f"could not create the clean venv:\n{how}")
        return False
    script = work / "release_smoke.py"
    script.write_text(SMOKE_SCRIPT, encoding="utf-8")
    env = clean_env()
    env.update(RELEASE_SMOKE_URL=url, RELEASE_SMOKE_BODY=SMOKE_BODY)
    adapter = SMOKE_ADAPTER[package.name]
    completed = run([str(python), "-I", str(script), adapter], 90, env=env, cwd=work)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RELEASE-SMOKE ")]
    if completed.returncode != 0 or not lines:
        report.fail(package.name, "smoke", f"the smoke script failed ({completed.returncode}):\n"
                    f"{tail(completed)}")
        return False
    out = json.loads(lines[-1].removeprefix("RELEASE-SMOKE "))
    detail = (f"clean venv ({how}): {out['connection_class']} opened, declared, published, "
              f"consumed and acked one message, closed ({time.monotonic() - started:.1f}s)")
    return report.check(package.name, "smoke", smoke_problems(package, core, venv, out), detail)


@contextlib.contextmanager
def broker_url(given: str | None) -> Iterator[str]:
    """The broker to smoke-test against: ``given``, else a private node for the run."""
    if given:
        yield given
        return
    from amqp_core.testing.broker import PrivateBroker, ensure_installed

    print("starting a private RabbitMQ node for the smoke tests ...", flush=True)
    ensure_installed()
    with PrivateBroker() as node:
        yield node.url


# ------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tools/release.py", description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Nothing is uploaded. See RELEASING.md.")
    parser.add_argument("packages", nargs="+", metavar="PACKAGE",
                        help=f"all, or some of: {', '.join(ALL_PACKAGES)} (or core, asyncio ...)")
    parser.add_argument("--dist-dir", type=Path, default=ROOT / "dist",
                        help="where the artifacts go, one folder per package (default: dist/)")
    parser.add_argument("--amqp-url", default=os.environ.get("AMQP_URL") or None,
                        help="the broker for the smoke tests (default: $AMQP_URL, else a private "
                             "node started for the run)")
    parser.add_argument("--no-smoke", action="store_true",
                        help="build and check only; no clean-venv smoke test")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the clean venvs here (default: a temporary directory)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = resolve_names(args.packages)
    core = Package.load(CORE)
    packages = [core if name == CORE else Package.load(name) for name in names]
    report = Report()
    dist_dir: Path = args.dist_dir.resolve()
    for package in packages:
        print(f"\n== {package.name} {package.version}", flush=True)
        if not check_metadata(package, core, report) or not check_changelog(package, report):
            continue
        if not build(package, dist_dir / package.name, report):
            continue
        check_wheel(package, core, report)
        check_sdist(package, core, report)
        twine_check(package, report)
    if not args.no_smoke:
        if core.wheel is None and CORE not in names:
            print(f"\n== {CORE} {core.version} (its fresh wheel for the smoke tests)", flush=True)
            build(core, dist_dir / CORE, report)
        ready = [p for p in packages if p.wheel is not None and p.name not in report.failed]
        if ready and core.wheel is not None:
            with contextlib.ExitStack() as stack:
                work = args.work_dir or Path(stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="amqp-release-")))
                work.mkdir(parents=True, exist_ok=True)
                url = stack.enter_context(broker_url(args.amqp_url))
                print("\n== smoke tests: each package alone with amqp-core in a clean venv",
                      flush=True)
                for package in ready:
                    print(f"-- {package.name}", flush=True)
                    smoke(package, core, url, work, report)
    print("\n== summary")
    for package in packages:
        failed = report.failed.get(package.name)
        state = f"FAIL ({', '.join(failed)})" if failed else "PASS"
        print(f"  {package.name:<22} {package.version:<10} {state}")
    if CORE in report.failed and CORE not in names:
        print(f"  {CORE} (for the smoke tests) FAIL")
    print("nothing was uploaded" + ("" if report.failed else
                                    f"; artifacts in {_shown(dist_dir)}"))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
