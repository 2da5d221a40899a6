"""The local Dagster instance (`$DAGSTER_HOME/dagster.yaml`, written by `local_instance_config`
when missing): Dagster's SQLite event log with its connections kept open.

Dagster's own SQLite event log makes an engine, a connection and a commit for every event and
closes them again; closing the last connection to a WAL database checkpoints it. A demo run
writes about 2,000 events (one per dbt model and test, and their plans), and those opens, closes
and flushes took 12 of its 90 seconds. Here each database keeps a small pool of open connections,
and commits wait for the disk only at checkpoints (SQLite's `synchronous=NORMAL` in WAL mode:
a power cut may lose the last events, never the database). Deployments sharing a history between
processes use PostgreSQL instead (deploy/dagster.postgres.yaml)."""

import os
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterInstance, Field, StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

LOCAL_INSTANCE_CONFIG = """\
# The local Dagster instance of `cdp run` and `cdp ui` (written when this file was missing or
# empty). Deployments where several processes share the history: deploy/dagster.postgres.yaml.
event_log_storage:
  module: orchestration.storage
  class: LocalEventLogStorage
telemetry:
  enabled: false
"""

# Run databases are written while their run goes and read by the UI after: a few stay open.
OPEN_RUN_DATABASES = 4


def _wal_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class LocalEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log (one database per run, one index), with pooled connections."""

    def __init__(self, base_dir: str | None = None, inst_data=None):
        self._engines: OrderedDict = OrderedDict()
        self._tables_found: set[str] = set()
        super().__init__(base_dir or _default_base_dir(), inst_data)

    @classmethod
    def config_type(cls):
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "LocalEventLogStorage":
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str):
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            poolclass=QueuePool,
            pool_size=2,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        event.listen(engine, "connect", _wal_pragmas)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        runs_open = [key for key in self._engines if key != INDEX_SHARD_NAME]
        for stale in runs_open[:-OPEN_RUN_DATABASES]:
            self._engines.pop(stale).dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str):
        # the engine is looked up under the lock: the UI's watcher threads share this object
        with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
            yield conn

    def has_table(self, table_name: str) -> bool:
        """Whether the index has the table. Dagster asks before storing every check result, and
        its own answer opens a new engine on the index each time; a table once there stays
        (until a wipe), so that answer is kept; a missing one is asked again."""
        if table_name in self._tables_found:
            return True
        if super().has_table(table_name):
            self._tables_found.add(table_name)
            return True
        return False

    def _close_all(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._close_all()  # the run databases' files are deleted
        self._tables_found.clear()
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()


def _default_base_dir() -> str:
    """Where Dagster keeps a local instance's event logs by default."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ValueError("LocalEventLogStorage without base_dir needs DAGSTER_HOME set")
    return os.path.join(home, "history", "runs")


def local_instance_config(dagster_home: str | os.PathLike) -> Path:
    """`dagster_home`'s dagster.yaml, written with this event log where it is missing or empty
    (an instance configured by hand is left as it is)."""
    config = Path(dagster_home) / "dagster.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    if not config.exists() or not config.read_text(encoding="utf-8").strip():
        config.write_text(LOCAL_INSTANCE_CONFIG, encoding="utf-8")
    return config


def recording_instance() -> DagsterInstance:
    """The instance runs are recorded in: $DAGSTER_HOME's (the UI's history; its dagster.yaml
    written where missing), else a throwaway one."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return DagsterInstance.ephemeral()
    local_instance_config(home)
    return DagsterInstance.get()
