"""The profile store the profile API serves from: one JSON document per profile and an index from
every identifier (`kind:value`) to its profile. The reverse-ETL destination `profile_store`
writes it; erasure and merges delete from it.

Redis when `CDP_PROFILE_STORE` is a redis:// URL (keys `cdp:profile:<id>` and
`cdp:index:<kind>:<value>`); otherwise an embedded SQLite file (the path it names, default
`profiles.sqlite` beside the DuckDB warehouse file), so the demo needs no server.
"""

from __future__ import annotations

import os
import sqlite3
from abc import ABC, abstractmethod
from pathlib import Path

import orjson

from cdp.config import from_root, warehouse_path

STORE_ENV = "CDP_PROFILE_STORE"
EMBEDDED_FILE = "profiles.sqlite"


def embedded_path(location: str = "") -> str:
    return from_root(location) if location else str(Path(warehouse_path()).parent / EMBEDDED_FILE)


def index_keys(document: dict) -> list[str]:
    """The identifiers a profile is found by: its own id and every identifier it holds."""
    return [f"profile_id:{document['profile_id']}", *document.get("identifiers", [])]


class ProfileStore(ABC):
    @abstractmethod
    def put(self, documents: list[dict]) -> None:
        """Write documents (replacing earlier ones) and re-point their index entries."""

    @abstractmethod
    def delete(self, profile_ids: list[str]) -> None:
        """Remove profiles and their index entries."""

    @abstractmethod
    def get(self, profile_id: str) -> dict | None: ...

    @abstractmethod
    def lookup(self, identifier: str) -> str | None:
        """The profile id holding `kind:value`."""

    @abstractmethod
    def close(self) -> None: ...

    def find(self, identifier: str) -> dict | None:
        profile_id = self.lookup(identifier)
        return self.get(profile_id) if profile_id else None


class RedisStore(ProfileStore):
    PREFIX = "cdp"

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url)

    def _profile(self, profile_id: str) -> str:
        return f"{self.PREFIX}:profile:{profile_id}"

    def _index(self, identifier: str) -> str:
        return f"{self.PREFIX}:index:{identifier}"

    def _stale_keys(self, documents_before: list[bytes | None], documents: list[dict]) -> list:
        stale = []
        for before, now in zip(documents_before, documents, strict=True):
            if before is None:
                continue
            kept = set(index_keys(now))
            stale += [self._index(k) for k in index_keys(orjson.loads(before)) if k not in kept]
        return stale

    def put(self, documents: list[dict]) -> None:
        if not documents:
            return
        before = self.client.mget([self._profile(d["profile_id"]) for d in documents])
        stale = self._stale_keys(before, documents)
        with self.client.pipeline(transaction=True) as pipe:
            if stale:
                pipe.delete(*stale)
            for document in documents:
                pipe.set(self._profile(document["profile_id"]), orjson.dumps(document))
                for key in index_keys(document):
                    pipe.set(self._index(key), document["profile_id"])
            pipe.execute()

    def delete(self, profile_ids: list[str]) -> None:
        if not profile_ids:
            return
        before = self.client.mget([self._profile(p) for p in profile_ids])
        entries = [
            (profile_id, self._index(key))
            for profile_id, document in zip(profile_ids, before, strict=True)
            if document is not None
            for key in index_keys(orjson.loads(document))
        ]
        owners = self.client.mget([key for _, key in entries]) if entries else []
        # an identifier that moved to another profile keeps pointing there
        moved_away = {
            key
            for (profile_id, key), owner in zip(entries, owners, strict=True)
            if owner != profile_id.encode()
        }
        keys = [self._profile(p) for p in profile_ids]
        keys += [key for _, key in entries if key not in moved_away]
        self.client.delete(*keys)

    def get(self, profile_id: str) -> dict | None:
        document = self.client.get(self._profile(profile_id))
        return orjson.loads(document) if document else None

    def lookup(self, identifier: str) -> str | None:
        value = self.client.get(self._index(identifier))
        return value.decode() if value else None

    def close(self) -> None:
        self.client.close()


class EmbeddedStore(ProfileStore):
    """SQLite in WAL mode: one writer (the sync), any number of reading API processes."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        self.con.execute("pragma journal_mode = wal")
        self.con.execute(
            "create table if not exists profiles (profile_id text primary key, document blob)"
        )
        self.con.execute(
            "create table if not exists identifiers (identifier text primary key, profile_id text)"
        )
        # a profile's entries are replaced on every write: without it, a scan per profile
        self.con.execute(
            "create index if not exists identifiers_of_profile on identifiers (profile_id)"
        )
        self.con.commit()

    def put(self, documents: list[dict]) -> None:
        with self.con:
            for document in documents:
                profile_id = document["profile_id"]
                self.con.execute("delete from identifiers where profile_id = ?", (profile_id,))
                self.con.execute(
                    "insert or replace into profiles values (?, ?)",
                    (profile_id, orjson.dumps(document)),
                )
                self.con.executemany(
                    "insert or replace into identifiers values (?, ?)",
                    [(key, profile_id) for key in index_keys(document)],
                )

    def delete(self, profile_ids: list[str]) -> None:
        with self.con:
            for profile_id in profile_ids:
                self.con.execute("delete from profiles where profile_id = ?", (profile_id,))
                self.con.execute("delete from identifiers where profile_id = ?", (profile_id,))

    def get(self, profile_id: str) -> dict | None:
        row = self.con.execute(
            "select document from profiles where profile_id = ?", (profile_id,)
        ).fetchone()
        return orjson.loads(row[0]) if row else None

    def lookup(self, identifier: str) -> str | None:
        row = self.con.execute(
            "select profile_id from identifiers where identifier = ?", (identifier,)
        ).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self.con.close()


def describe_store() -> str:
    """Where the store is, for messages (a Redis URL without its password)."""
    location = os.environ.get(STORE_ENV, "")
    if location.startswith(("redis://", "rediss://")):
        from urllib.parse import urlsplit

        parts = urlsplit(location)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
    return embedded_path(location)


def open_store(location: str | None = None) -> ProfileStore:
    location = location if location is not None else os.environ.get(STORE_ENV, "")
    if location.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(location)
    return EmbeddedStore(embedded_path(location))
