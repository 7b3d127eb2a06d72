"""Version ranges: which amqp-core an adapter distribution says it works with, and whether the
installed one is in that range.

Theory of operation: the core depends on pluggy alone, so instead of ``packaging`` this is a
small PEP 440 subset of our own: :func:`core_specifier` finds the ``amqp-core`` requirement
among a distribution's ``Requires-Dist`` lines (ignoring extra-only ones), and
:func:`version_satisfies` checks a version against a specifier with the operators
``== != <= >= < > ~= ===`` and ``==X.*``.  Installed pre-releases satisfy a range that
contains them (as pip's own consistency check does); ``<2.0`` excludes ``2.0rc1``.
:mod:`amqp_core.plugins` uses both before it loads an adapter.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["CORE_DISTRIBUTION", "core_specifier", "version_satisfies"]

#: The core's distribution: an adapter's requirement on it is checked before the adapter loads.
CORE_DISTRIBUTION: Final = "amqp-core"


def _normalized_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?(.*)")


def core_specifier(requirements: Iterable[str]) -> str | None:
    """The amqp-core version specifier among a distribution's ``Requires-Dist`` lines.

    Requirements that apply only to an extra (``; extra == "x"``) are ignored; other
    environment markers are ignored too (the range is taken as unconditional).

    :param requirements: PEP 508 requirement strings (``Distribution.requires``)
    :returns: the specifiers joined with ``","`` (``""`` when the core is required
        without a range), or None when amqp-core is not required at all
    :raises TypeError: ``requirements`` is a str, or holds something else than str
    """
    if isinstance(requirements, str):
        raise TypeError("requirements must be an iterable of str, not a str")
    found: list[str] | None = None
    for requirement in requirements:
        if not isinstance(requirement, str):
            raise TypeError(f"requirements must hold str, not {type(requirement).__name__}")
        body, _sep, marker = requirement.partition(";")
        match = _REQUIREMENT.fullmatch(body)
        if match is None or _normalized_name(match.group(1)) != CORE_DISTRIBUTION:
            continue
        if re.search(r"\bextra\b", marker):
            continue
        found = [] if found is None else found
        spec = match.group(2).strip()
        if spec.startswith("@"):  # a direct reference: no version range
            continue
        spec = spec.removeprefix("(").removesuffix(")").strip()
        if spec:
            found.append(spec)
    return None if found is None else ",".join(found)


_VERSION = re.compile(
    r"""v?(?:(?P<epoch>\d+)!)?(?P<release>\d+(?:\.\d+)*)
    (?:[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>\d+)?)?
    (?:-(?P<post_n1>\d+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>\d+)?)?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>\d+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?""",
    re.VERBOSE | re.IGNORECASE,
)
_PRE_RANK: Final = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2,
                    "preview": 2}


@dataclass(frozen=True, slots=True)
class _Version:
    """A parsed PEP 440 version (what the comparisons need of it)."""

    epoch: int
    release: tuple[int, ...]
    pre: tuple[int, int] | None
    post: int | None
    dev: int | None
    local: str | None

    @classmethod
    def parse(cls, text: str) -> _Version:
        match = _VERSION.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a PEP 440 version")
        pre = None
        if match["pre_l"]:
            pre = (_PRE_RANK[match["pre_l"].lower()], int(match["pre_n"] or 0))
        post = None
        if match["post_n1"] or match["post_l"]:
            post = int(match["post_n1"] or match["post_n2"] or 0)
        return cls(
            epoch=int(match["epoch"] or 0),
            release=tuple(int(part) for part in match["release"].split(".")),
            pre=pre, post=post,
            dev=int(match["dev_n"] or 0) if match["dev_l"] else None,
            local=re.sub(r"[-_]", ".", match["local"]).lower() if match["local"] else None,
        )

    @property
    def base(self) -> tuple[int, tuple[int, ...]]:
        """Epoch and release, trailing zeros dropped (``1.0`` == ``1``)."""
        release = list(self.release)
        while len(release) > 1 and release[-1] == 0:
            release.pop()
        return self.epoch, tuple(release)

    @property
    def is_prerelease(self) -> bool:
        return self.pre is not None or self.dev is not None

    def key(self) -> tuple[object, ...]:
        """The PEP 440 ordering of the public version (the local label left out)."""
        if self.pre is None and self.post is None and self.dev is not None:
            pre: tuple[int, int] = (-1, 0)  # 1.0.dev1 < 1.0a1
        else:
            pre = self.pre if self.pre is not None else (3, 0)
        post = -1 if self.post is None else self.post
        dev = sys.maxsize if self.dev is None else self.dev
        return (*self.base, pre, post, dev)


_CLAUSE = re.compile(r"\s*(===|==|!=|~=|<=|>=|<|>)\s*([^\s,;]+)\s*")


def _matches(version: _Version, raw: str, operator: str, target: str) -> bool:
    if operator == "===":
        return raw.strip().lower() == target.lower()
    if operator in ("==", "!=") and target.endswith(".*"):
        prefix = _Version.parse(target[:-2])
        if prefix.pre is not None or prefix.post is not None or prefix.dev is not None:
            raise ValueError(f"unsupported prefix match {operator}{target}")
        size = len(prefix.release)
        padded = (version.release + (0,) * size)[:size]
        equal = version.epoch == prefix.epoch and padded == prefix.release
        return equal if operator == "==" else not equal
    spec = _Version.parse(target)
    if operator in ("==", "!="):
        equal = version.key() == spec.key() and (spec.local is None or
                                                 version.local == spec.local)
        return equal if operator == "==" else not equal
    if operator == "~=":
        if len(spec.release) < 2:
            raise ValueError(f"~={target} needs at least two release numbers")
        head = spec.release[:-1]
        return (version.key() >= spec.key() and version.epoch == spec.epoch
                and (version.release + (0,) * len(head))[:len(head)] == head)
    if operator == "<=":
        return version.key() <= spec.key()
    if operator == ">=":
        return version.key() >= spec.key()
    if operator == "<":  # <2.0 keeps 2.0's pre-releases out unless it names one itself
        return version.key() < spec.key() and not (
            version.is_prerelease and not spec.is_prerelease and version.base == spec.base
        )
    # ">": 1.0.post1 is not > 1.0 unless the specifier names a post-release itself
    return version.key() > spec.key() and not (
        version.post is not None and spec.post is None and version.base == spec.base
    )


def version_satisfies(version: str, specifier: str) -> bool:
    """Whether ``version`` lies in ``specifier`` (a PEP 440 subset, for installed versions).

    The operators are ``==``, ``!=`` (both with ``.*`` prefixes), ``<=``, ``>=``, ``<``,
    ``>``, ``~=`` and ``===``; clauses are separated by commas and all must hold.  An
    empty specifier admits every version.  Pre-release versions are accepted when the
    range contains them.

    :param version: a PEP 440 version, e.g. ``"0.1.0"``
    :param specifier: e.g. ``">=0.1,<0.2"``
    :raises TypeError: either argument is not a str
    :raises ValueError: ``version`` or ``specifier`` cannot be parsed
    """
    if not isinstance(version, str):
        raise TypeError(f"version must be a str, not {type(version).__name__}")
    if not isinstance(specifier, str):
        raise TypeError(f"specifier must be a str, not {type(specifier).__name__}")
    parsed = _Version.parse(version)
    for clause in specifier.split(","):
        if not clause.strip():
            continue
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            raise ValueError(f"specifier: cannot parse {clause.strip()!r} in {specifier!r}")
        if not _matches(parsed, version, match.group(1), match.group(2)):
            return False
    return True
