"""Reading a config file: size and nesting limits, TOML, and error locations.

The hostile-input side of attribution.config: a file over MAX_CONFIG_BYTES is
refused unread, tomllib's RecursionError and ValueError on hostile input
become ConfigErrors, and ``Checker`` reads typed values out of the parsed
document, failing with ``file:line: key.path: why`` (table headers are
indexed once, so locating an error or a warning never rescans the file).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

MAX_CONFIG_BYTES = 16 * 1024 * 1024  # a config file larger than this is refused unread
MAX_NESTING = 32  # tables and arrays nested deeper than this are refused
MAX_PROBLEMS = 20  # problems named in one error; past this, the rest are counted
# What names a router or an IX: used in logs, metrics labels and answers.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# A table header line: [[array.of.tables]] or [table] (group 1 or 2).
_HEADER = re.compile(r"^\s*(?:\[\[\s*([^\[\]]+?)\s*\]\]|\[\s*([^\[\]]+?)\s*\])")


class ConfigError(ValueError):
    """A config problem, with the file, line and key in the message."""

    line: int | None = None  # where it is, when known (problems are listed in file order)
    key: str = ""  # the key path it is about, when known (one problem a key)


class KeptProblems:
    """Problems of parts checked on their own, kept so that the check goes on: the
    service's ``Checker`` keeps ConfigErrors, the report's validator its own
    (``attribution.reports.config``), each naming them all at the end."""

    kept: type[Exception] = ValueError  # the error a part's problem is
    problems: list

    @contextlib.contextmanager
    def part(self) -> Iterator[None]:
        """A part of the file checked on its own: a problem inside is kept and the
        check goes on after the block (what the block would have set keeps the
        value it had before it)."""
        try:
            yield
        except self.kept as exc:
            self.problems.append(exc)

    def soft(self, default: Any, check: Callable[..., Any], *args: Any) -> Any:
        """``check(*args)``; on a problem, kept (``part``), ``default``. (No context
        manager here: a rule file of 20,000 rules calls this 120,000 times.)"""
        try:
            return check(*args)
        except self.kept as exc:
            self.problems.append(exc)
            return default


class Checker(KeptProblems):
    """Reads typed values out of the parsed TOML, failing with file:line: key: why.

    A check runs in parts (``part``, ``soft``): each part's first problem is
    kept and the check goes on with the next one, and ``raise_problems`` names
    them all at the end. One run of a file with five mistakes said the first,
    so fixing it took five runs (five reloads refused one after the other).
    """

    kept = ConfigError

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.problems: list[ConfigError] = []
        self._lines: list[str] = []
        # (table name, is an array of tables) -> line indexes of its headers;
        # built once, on the first lookup, so that a file of 20,000 rules
        # costs one scan rather than one per warning.
        self._headers: dict[tuple[str, bool], list[int]] | None = None

    def _index(self) -> dict[tuple[str, bool], list[int]]:
        if self._headers is None:
            self._lines = self.text.splitlines()
            self._headers = {}
            for n, line in enumerate(self._lines):
                m = _HEADER.match(line)
                if m:
                    name = re.sub(r"\s*\.\s*", ".", m.group(1) or m.group(2))
                    self._headers.setdefault((name, m.group(1) is not None), []).append(n)
        return self._headers

    def line_of(self, table: str, index: int | None, key: str | None) -> int | None:
        """Best-effort line number of ``key`` in the ``index``-th ``[[table]]``
        (``index`` None: in ``[table]``)."""
        starts = self._index().get((table, index is not None), [])
        if len(starts) <= (index or 0):
            return None
        start = starts[index or 0]
        if key is None:
            return start + 1
        key_re = re.compile(rf'^\s*"?{re.escape(key)}"?\s*=')
        for n in range(start + 1, len(self._lines)):
            if _HEADER.match(self._lines[n]):
                break
            if key_re.match(self._lines[n]):
                return n + 1
        return start + 1

    def fail(self, where: tuple[str, int | None, str | None], why: str) -> ConfigError:
        table, index, key = where
        keypath = table if index is None else f"{table}[{index}]"
        if key:
            keypath = f"{keypath}.{key}" if keypath else key
        return self.error(self.line_of(table, index, key) if table else None, keypath, why)

    def error(self, line: int | None, keypath: str, why: str) -> ConfigError:
        loc = f"{self.path}:{line}" if line else self.path
        error = ConfigError(f"{loc}: {keypath}: {why}")
        error.line, error.key = line, keypath
        return error

    def keyed(
        self,
        data: dict,
        where: tuple,
        check: Callable[..., Any],
        key: str,
        default: Any,
        *rest: Any,
    ) -> Any:
        """``check(data, where, key, default, *rest)`` for an optional key; on a
        problem, kept (``part``), ``default``."""
        return self.soft(default, check, data, where, key, default, *rest)

    def raise_problems(self) -> None:
        """Raise what the parts found: a single problem as it is, several as one
        ConfigError naming them in file order, one per line (at most MAX_PROBLEMS,
        then how many more)."""
        seen: set[tuple[int | None, str]] = set()
        problems = []
        for p in self.problems:  # a key two validators read (service.local_as): said once
            if p.key and (p.line, p.key) in seen:
                continue
            seen.add((p.line, p.key))
            problems.append(p)
        if not problems:
            return
        if len(problems) == 1:
            raise problems[0]
        ordered = sorted(problems, key=lambda p: p.line or 0)  # stable: same line, as found
        lines = [f"{self.path}: {len(problems)} problems:"]
        lines += [str(p) for p in ordered[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            lines.append(f"... and {len(problems) - MAX_PROBLEMS} more")
        raise ConfigError("\n".join(lines))

    def get(self, data: dict, where: tuple, key: str, kind: type, default: Any = ...) -> Any:
        if key not in data:
            if default is ...:
                raise self.fail((where[0], where[1], key), "is required")
            return default
        value = data[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise self.fail(
                (where[0], where[1], key),
                f"must be {_KIND_NAMES.get(kind, kind.__name__)}, not {type(value).__name__}",
            )
        return value

    def string(self, data: dict, where: tuple, key: str, default: Any = ...) -> str:
        return self.get(data, where, key, str, default)

    def listed(self, data: dict, where: tuple, key: str, default: Any = ...) -> list:
        return self.get(data, where, key, list, default)

    def asn(self, data: dict, where: tuple, key: str, default: Any = ...) -> int:
        value = self.get(data, where, key, int, default)
        if not 0 <= value <= 0xFFFFFFFF:
            raise self.fail((where[0], where[1], key), f"{value} is not a 32-bit AS number")
        return value

    def address(self, data: dict, where: tuple, key: str, default: Any = ...) -> str:
        value = self.get(data, where, key, str, default)
        if value == "" and default == "":
            return ""
        try:
            return _canonical_address(value)
        except ValueError:
            raise self.fail((where[0], where[1], key), f"{value!r} is not an IP address") from None

    def ipv4(self, data: dict, where: tuple, key: str, default: Any = ...) -> str:
        value = self.get(data, where, key, str, default)
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise self.fail(
                (where[0], where[1], key), f"{value!r} is not an IPv4 address (BGP identifier)"
            ) from None

    def addresses(self, data: dict, where: tuple, key: str) -> tuple[str, ...]:
        """A list of IP addresses (absent: none), canonical, each once, in order."""
        out: list[str] = []
        for j, value in enumerate(self.listed(data, where, key, [])):
            try:
                if not isinstance(value, str):  # ipaddress would take 5 as 0.0.0.5
                    raise TypeError
                out.append(_canonical_address(value))
            except (ValueError, TypeError):
                raise self.fail(
                    (where[0], where[1], key), f"item {j}: {value!r} is not an IP address"
                ) from None
        return tuple(dict.fromkeys(out))

    def entry(self, value: Any, where: tuple, known: frozenset[str]) -> int:
        """Begin the ``where[1]``-th ``[[where[0]]]``: a table (else a ConfigError), its
        unknown keys each a problem (kept). Returns how many problems were kept before
        its keys are read: more at its end means the entry is broken."""
        table, index = where
        if not isinstance(value, dict):
            raise self.fail((table, index, None), f"must be a table ([[{table}]])")
        self.no_unknown(value, where, known)
        return len(self.problems)

    def unique_name(self, data: dict, where: tuple, seen: dict[str, int]) -> str:
        """The ``name`` of the ``where[1]``-th ``[[where[0]]]``: a name (letters, digits,
        _ . : -, at most 64) no earlier entry has; entered in ``seen`` (name -> index)."""
        table, index = where
        name = self.string(data, where, "name")
        if not NAME.match(name):
            raise self.fail((table, index, "name"), f"{name!r}: use letters, digits, _ . : -")
        if name in seen:
            raise self.fail((table, index, "name"), f"{name!r} is already {table}[{seen[name]}]")
        seen[name] = index
        return name

    def choice(
        self, data: dict, where: tuple, key: str, default: Any, allowed: tuple, say: str = ""
    ) -> str:
        """A string among ``allowed`` (``say``: how the error lists them)."""
        value = self.get(data, where, key, str, default)
        if value not in allowed:
            expected = say or "one of " + ", ".join(allowed)
            raise self.fail((where[0], where[1], key), f"{value!r}: expected {expected}")
        return value

    def bounded(
        self, data: dict, where: tuple, key: str, default: Any, low: int, high: int, why: str
    ) -> int:
        """An integer within [low, high]; ``why``: the error's words otherwise."""
        value = self.get(data, where, key, int, default)
        if not low <= value <= high:
            raise self.fail((where[0], where[1], key), why)
        return value

    def seconds(
        self, data: dict, where: tuple, key: str, default: float, low: float, high: float
    ) -> float:
        """A duration in seconds within [low, high]; nan and infinity refused."""
        value = self.get(data, where, key, float, default)
        if not low <= value <= high:  # also false for nan
            raise self.fail(
                (where[0], where[1], key), f"must be between {low:g} and {high:g} seconds"
            )
        return value

    def no_unknown(self, data: dict, where: tuple, known: set[str]) -> None:
        """Every unknown key is a problem of its own (kept, ``part``): nothing is read
        from them, so the check goes on."""
        for key in data:
            if key not in known:
                hint = _closest(key, known)
                self.problems.append(
                    self.fail(
                        (where[0], where[1], key),
                        "unknown key" + (f" (did you mean {hint!r}?)" if hint else ""),
                    )
                )


_KIND_NAMES = {
    int: "an integer",
    str: "a string",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


@functools.lru_cache(maxsize=1024)
def _canonical_address(text: str) -> str:
    """Cached: thousands of override rules name the same few exporters."""
    return str(ipaddress.ip_address(text))


def _closest(key: str, known: set[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(key, sorted(known), n=1)
    return match[0] if match else None


def read_config_text(path: str) -> str:
    """The file's text: at most MAX_CONFIG_BYTES, UTF-8; else a ConfigError."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_CONFIG_BYTES:
                raise _too_big(path, size)
            raw = f.read(MAX_CONFIG_BYTES + 1)  # the file may grow meanwhile
        if len(raw) > MAX_CONFIG_BYTES:
            raise _too_big(path, len(raw))
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return text


def _too_big(path: str, size: int) -> ConfigError:
    return ConfigError(
        f"{path}: {size} bytes, more than the limit of {MAX_CONFIG_BYTES // 2**20} MiB"
    )


def parse_toml(text: str, path: str) -> dict[str, Any]:
    """tomllib, with its failures on hostile input turned into ConfigErrors.

    tomllib recurses once per nesting level (an array 600 deep raises
    RecursionError) and converts integers with Python's 4,300-digit limit
    (ValueError); neither is a syntax error to it. Anything nested deeper than
    MAX_NESTING is refused too, so that no later step recurses into it.
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise _too_big(path, len(text))
    too_deep = ConfigError(f"{path}: tables and arrays nested deeper than {MAX_NESTING} levels")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise ConfigError(f"{path}: a value TOML cannot hold: {str(exc).split(';')[0]}") from None
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:  # no recursion: the point is to refuse what would need it
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            raise too_deep
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return data
