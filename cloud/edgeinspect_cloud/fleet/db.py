"""One small database interface for the fleet store, with SQLite and PostgreSQL behind it.

Why not an ORM: the store needs a dozen statements, transactions and a row lock, and both engines speak
the same SQL for all of them. Statements are written once with ``?`` placeholders; the PostgreSQL side
turns them into psycopg's ``%s``. Rows come back as dicts.

- ``sqlite:///path/fleet.db`` (the embedded default): WAL mode and a busy timeout, so the CLI and the
  service may write at the same time; every transaction starts with ``BEGIN IMMEDIATE``, so two writers
  queue instead of failing half-way (SQLite locks the whole file, which also serialises per-job work).
- ``postgresql://user@host:5432/db``: psycopg 3, one transaction per block, ``SELECT ... FOR UPDATE``
  on the job row (:meth:`Transaction.lock`) so concurrent updates of one job's executions queue up.
  A broken connection (server restarted) is replaced at the next transaction.

One connection per :class:`Database`, guarded by a lock: the service's MQTT handlers and its poll loop
take turns, which is plenty for a fleet's job traffic.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

from edgeinspect.core.observability import get_logger
from edgeinspect.core.settings import redact_url

from edgeinspect_cloud.fleet.errors import FleetDatabaseError

log = get_logger(__name__)

Row = dict[str, Any]
T = TypeVar("T")
Params = Sequence[Any]
Dialect = Literal["sqlite", "postgresql"]
BUSY_TIMEOUT_S = 30.0
_IDENT = frozenset("abcdefghijklmnopqrstuvwxyz_")


class Transaction:
    """Statements inside one transaction; it commits when the ``with`` block ends without an error."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; returns the number of rows it changed."""
        return self._db._timed(sql, params, fetch=False)[0]

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query; every row as a dict keyed by column name."""
        return self._db._timed(sql, params, fetch=True)[1]

    def one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, or None."""
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def lock(self, table: str, key_column: str, key: str) -> Row | None:
        """Read one row and lock it until the transaction ends; None when there is no such row.

        PostgreSQL takes a row lock (``FOR UPDATE``); SQLite's ``BEGIN IMMEDIATE`` already holds the
        database's write lock, so there the plain read is enough.
        """
        if not set(table) <= _IDENT or not set(key_column) <= _IDENT:
            raise FleetDatabaseError(f"invalid table or column name {table}.{key_column}")
        suffix = " FOR UPDATE" if self._db.dialect == "postgresql" else ""
        return self.one(f"SELECT * FROM {table} WHERE {key_column} = ?{suffix}", (key,))


class Database(ABC):
    """A connection to the fleet database; open one with :func:`open_database`."""

    dialect: Dialect

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()
        self._depth = 0
        self.on_statement: Callable[[float], None] | None = None
        """Called with each statement's duration in seconds (the service's query-time histogram)."""

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A transaction; nested calls join the outer one (so store methods compose)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield Transaction(self)
                finally:
                    self._depth -= 1
                return
            self._begin()
            self._depth = 1
            try:
                yield Transaction(self)
            except BaseException:
                self._depth = 0
                self._rollback()
                raise
            self._depth = 0
            self._commit()

    def ping(self) -> bool:
        """Whether the database answers right now (for ``/readyz``)."""
        try:
            with self.transaction() as tx:
                tx.query("SELECT 1 AS ok")
        except FleetDatabaseError:
            return False
        return True

    def _timed(self, sql: str, params: Params, *, fetch: bool) -> tuple[int, list[Row]]:
        if self.on_statement is None:
            return self._run(sql, params, fetch=fetch)
        start = time.perf_counter()
        try:
            return self._run(sql, params, fetch=fetch)
        finally:
            self.on_statement(time.perf_counter() - start)

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    @abstractmethod
    def _run(self, sql: str, params: Params, *, fetch: bool) -> tuple[int, list[Row]]: ...


class SqliteDatabase(Database):
    """A SQLite file (or ``:memory:``), shared safely by the service and CLI processes."""

    dialect: Dialect = "sqlite"

    def __init__(self, url: str, path: str) -> None:
        super().__init__(url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise FleetDatabaseError(
                f"cannot open the SQLite fleet database {path}: {exc}",
                hint="check that the folder exists and is writable (EI_FLEET_DB=sqlite:///path/fleet.db)",
            ) from exc
        self._conn = conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _begin(self) -> None:
        self._wrap(lambda: self._conn.execute("BEGIN IMMEDIATE"))

    def _commit(self) -> None:
        self._wrap(lambda: self._conn.execute("COMMIT"))

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("fleet_db_rollback_failed", error=str(exc))

    def _run(self, sql: str, params: Params, *, fetch: bool) -> tuple[int, list[Row]]:
        def run() -> tuple[int, list[Row]]:
            cursor = self._conn.execute(sql, tuple(params))
            rows = [dict(row) for row in cursor.fetchall()] if fetch else []
            return cursor.rowcount, rows

        return self._wrap(run)

    def _wrap(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except sqlite3.Error as exc:
            raise FleetDatabaseError(
                f"SQLite fleet database {self.url}: {exc}",
                hint="another process may hold the write lock for long, or the file is damaged",
            ) from exc


class PostgresDatabase(Database):
    """A PostgreSQL database through psycopg 3; reconnects after the server restarted."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, connect_timeout_s: float = 10.0) -> None:
        super().__init__(url)
        try:
            import psycopg  # noqa: F401  (optional dependency of the cloud extra)
        except ImportError as exc:
            raise FleetDatabaseError(
                "PostgreSQL support needs psycopg 3",
                hint='pip install "psycopg[binary]>=3.2" (part of the cloud extra)',
            ) from exc
        self._timeout = connect_timeout_s
        self._conn: Any = None
        self._connect()

    def _connect(self) -> None:
        import psycopg
        from psycopg.rows import dict_row

        try:
            self._conn = psycopg.connect(
                self.url, autocommit=False, row_factory=dict_row, connect_timeout=max(1, int(self._timeout))
            )
        except psycopg.Error as exc:
            self._conn = None
            raise FleetDatabaseError(
                f"cannot connect to the PostgreSQL fleet database {redact_url(self.url)}: {exc}",
                hint="check EI_FLEET_DB (postgresql://user@host:5432/db) and that the server is up",
            ) from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    def _begin(self) -> None:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._connect()

    def _commit(self) -> None:
        self._wrap(lambda: self._conn.commit())

    def _rollback(self) -> None:
        import psycopg

        try:
            self._conn.rollback()
        except psycopg.Error as exc:
            log.warning("fleet_db_rollback_failed", error=str(exc))

    def _run(self, sql: str, params: Params, *, fetch: bool) -> tuple[int, list[Row]]:
        def run() -> tuple[int, list[Row]]:
            with self._conn.cursor() as cursor:
                cursor.execute(sql.replace("?", "%s"), tuple(params))
                rows = [dict(row) for row in cursor.fetchall()] if fetch else []
                return int(cursor.rowcount), rows

        return self._wrap(run)

    def _wrap(self, action: Callable[[], T]) -> T:
        import psycopg

        try:
            return action()
        except psycopg.Error as exc:
            raise FleetDatabaseError(
                f"PostgreSQL fleet database {redact_url(self.url)}: {exc}",
                hint="check that the server is up; the service retries on the next poll",
            ) from exc


def open_database(url: str) -> Database:
    """The database at ``url``: ``sqlite:///abs/path.db`` (``sqlite:////abs/path.db`` too),
    ``sqlite:///:memory:`` or ``postgresql://...``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        path = unquote(urlsplit(url).path)
        if path.startswith("//"):  # sqlite:////abs/path, SQLAlchemy's spelling of an absolute path
            path = path[1:]
        if path in ("", "/"):
            raise FleetDatabaseError(f"no file in SQLite URL {url!r}", hint="use sqlite:///abs/path/fleet.db")
        return SqliteDatabase(url, ":memory:" if path == "/:memory:" else path)
    if scheme in ("postgresql", "postgres"):
        return PostgresDatabase(url)
    raise FleetDatabaseError(
        f"unsupported fleet database URL {redact_url(url)!r}",
        hint="use sqlite:///path/fleet.db (embedded) or postgresql://user@host:5432/db",
    )


def describe(url: str) -> str:
    """A URL safe to print (no password)."""
    return redact_url(url)


__all__ = ["Database", "Dialect", "Row", "Transaction", "describe", "open_database"]
