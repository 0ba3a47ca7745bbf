"""One small interface over the two ways we talk to ClickHouse.

* :class:`ServerConnection`: a ClickHouse server, through the maintained
  client ``clickhouse-connect`` (HTTP, port 8123; TLS on 8443);
* :class:`ChdbConnection`: ClickHouse embedded in this process (``chdb``),
  its data in a directory, or in memory.

Both run statements (:meth:`command`), return rows as tuples of Python
values (:meth:`rows`) and insert Arrow tables in one call (:meth:`insert_arrow`).
The enrich sinks, ``attribution clickhouse schema --apply`` and the report's
ClickHouse backend use only these three, so every path runs the same SQL.

chdb runs one engine per process: every session shares its databases, and the
engine's data directory cannot change while a session is open. Users of
:class:`ChdbConnection` therefore keep their tables in a database of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

PASSWORD_ENV = "ATTRIBUTION_CLICKHOUSE_PASSWORD"


class ClickHouseError(RuntimeError):
    """ClickHouse refused or could not be reached; the message names the server and why."""


def _arrow_rows(table: Any) -> list[tuple[Any, ...]]:
    if table is None or table.num_columns == 0:
        return []
    return list(zip(*(col.to_pylist() for col in table.columns), strict=True))


class ChdbConnection:
    """chdb's session: ``path`` a directory (kept), or ``":memory:"``."""

    def __init__(self, path: str = ":memory:", settings: Mapping[str, Any] | None = None) -> None:
        try:
            from chdb import session
        except ImportError as exc:
            raise ClickHouseError(
                f"chdb is not installed ({exc}): pip install 'bgp-attribution[clickhouse]'"
            ) from None
        self.where = f"chdb:{path}"
        if path != ":memory:":
            os.makedirs(path, exist_ok=True)
        try:
            self.session = session.Session(path)
        except Exception as exc:  # chdb raises plain RuntimeError/Exception
            hint = ""
            if "already initialized" in str(exc):
                hint = (
                    " (chdb runs one engine per process, on one directory at a time: "
                    "read a chdb:DIR store with --engine duckdb or --engine chdb:DIR, the same DIR)"
                )
            raise ClickHouseError(f"{self.where}: cannot open: {_first_line(exc)}{hint}") from None
        for name, value in (settings or {}).items():
            self.command(f"SET {name} = {_literal(value)}")

    def command(self, text: str) -> None:
        try:
            self.session.query(text, "CSV")
        except Exception as exc:
            raise ClickHouseError(f"{self.where}: {_first_line(exc)}") from None

    def rows(self, text: str) -> list[tuple[Any, ...]]:
        try:
            return _arrow_rows(self.session.query(text, "ArrowTable"))
        except Exception as exc:
            raise ClickHouseError(f"{self.where}: {_first_line(exc)}") from None

    def stream_rows(self, text: str) -> Iterator[tuple[Any, ...]]:
        """Rows of a large result, a block at a time (memory: one block)."""
        try:
            with self.session.send_query(text, "ArrowTable") as stream:
                for block in stream:
                    yield from _arrow_rows(block)
        except ClickHouseError:
            raise
        except Exception as exc:
            raise ClickHouseError(f"{self.where}: {_first_line(exc)}") from None

    def insert_arrow(self, database: str, table: str, data: Any) -> None:
        columns = ", ".join(f"`{n}`" for n in data.column_names)
        # chdb's Python() table function reads the local variable named in the SQL
        arrow_data = data  # noqa: F841 - read by name by chdb
        try:
            self.session.query(
                f"INSERT INTO {database}.{table} ({columns}) "
                f"SELECT {columns} FROM Python(arrow_data)",
                "CSV",
            )
        except Exception as exc:
            raise ClickHouseError(
                f"{self.where}: insert into {database}.{table}: {_first_line(exc)}"
            ) from None

    def close(self) -> None:
        self.session.close()


class ServerConnection:
    """A ClickHouse server over HTTP(S) with clickhouse-connect.

    The password comes from ``password`` (read by the caller from a file), else
    from :data:`PASSWORD_ENV`, else none.
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str = "default",
        password: str | None = None,
        secure: bool = False,
        ca: str | None = None,
        verify: bool = True,
        database: str | None = None,
        settings: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        try:
            import clickhouse_connect
        except ImportError as exc:
            raise ClickHouseError(
                f"clickhouse-connect is not installed ({exc}): "
                "pip install 'bgp-attribution[clickhouse]'"
            ) from None
        env = os.environ if env is None else env
        if password is None:
            password = env.get(PASSWORD_ENV, "")
        self.where = f"{'https' if secure else 'http'}://{host}:{port}"
        try:
            self.client = clickhouse_connect.get_client(
                host=host,
                port=port,
                username=user,
                password=password,
                secure=secure,
                verify=verify,
                ca_cert=ca,
                database=database or "default",
                settings=dict(settings or {}),
            )
        except Exception as exc:
            raise ClickHouseError(f"{self.where}: cannot connect: {_first_line(exc)}") from None

    def command(self, text: str) -> None:
        try:
            self.client.command(text)
        except Exception as exc:
            raise ClickHouseError(f"{self.where}: {_first_line(exc)}") from None

    def rows(self, text: str) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in self.client.query(text).result_rows]
        except Exception as exc:
            raise ClickHouseError(f"{self.where}: {_first_line(exc)}") from None

    def stream_rows(self, text: str) -> Iterator[tuple[Any, ...]]:
        """Rows of a large result, a block at a time (memory: one block)."""
        try:
            with self.client.query_row_block_stream(text) as stream:
                for block in stream:
                    yield from (tuple(r) for r in block)
        except Exception as exc:
            raise ClickHouseError(f"{self.where}: {_first_line(exc)}") from None

    def insert_arrow(self, database: str, table: str, data: Any) -> None:
        try:
            # sent as one Arrow IPC *file*, which holds one dictionary a column:
            # a table of batches with their own dictionaries gets them merged
            self.client.insert_arrow(table, arrow_payload(data), database=database)
        except Exception as exc:
            raise ClickHouseError(
                f"{self.where}: insert into {database}.{table}: {_first_line(exc)}"
            ) from None

    def close(self) -> None:
        self.client.close()


def arrow_payload(data: Any) -> Any:
    """``data`` with one dictionary a dictionary column (``unify_dictionaries``):
    what clickhouse-connect's ``insert_arrow`` can write as an IPC file."""
    import pyarrow as pa

    if any(pa.types.is_dictionary(t) for t in data.schema.types):
        return data.unify_dictionaries()
    return data


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def read_password_file(path: str) -> str:
    """The first line of a password file (as the service reads its token files)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readline().rstrip("\r\n")
    except OSError as exc:
        raise ClickHouseError(f"password_file {path}: {exc.strerror or exc}") from None


def table_columns(conn: ChdbConnection | ServerConnection, database: str, table: str) -> list[str]:
    """Column names of database.table, in order; [] when it does not exist."""
    return [
        r[0]
        for r in conn.rows(
            "SELECT name FROM system.columns "
            f"WHERE database = {_literal(database)} AND table = {_literal(table)} "
            "ORDER BY position"
        )
    ]


def missing_columns(have: Sequence[str], want: Sequence[str]) -> list[str]:
    present = set(have)
    return [c for c in want if c not in present]
