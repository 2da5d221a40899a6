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
import time
from abc import ABC, abstractmethod
from pathlib import Path

import orjson

from cdp.core.config import from_root, warehouse_path

STORE_ENV = "CDP_PROFILE_STORE"
EMBEDDED_FILE = "profiles.sqlite"
LIVE_SECONDS = 30 * 24 * 3600  # an overlay nobody added to for a month is the batch's by then


def embedded_path(location: str = "") -> str:
    return from_root(location) if location else str(Path(warehouse_path()).parent / EMBEDDED_FILE)


def index_keys(document: dict) -> list[str]:
    """The identifiers a profile is found by: its own id and every identifier it holds."""
    return [f"profile_id:{document['profile_id']}", *document.get("identifiers", [])]


def _decoded(profile_id: str, document: bytes | None, overlay: bytes | None) -> tuple:
    return (
        profile_id,
        orjson.loads(document) if document else None,
        orjson.loads(overlay) if overlay else None,
    )


class ProfileStore(ABC):
    # How long a live overlay or link lives after its last write (Redis: the keys' expiry).
    live_seconds: float = LIVE_SECONDS

    @abstractmethod
    def put(self, documents: list[dict]) -> None:
        """Write documents (replacing earlier ones) and re-point their index entries."""

    @abstractmethod
    def delete(self, profile_ids: list[str]) -> None:
        """Remove profiles and their index entries."""

    @abstractmethod
    def get(self, profile_id: str) -> dict | None: ...

    @abstractmethod
    def profile_ids(self) -> list[str]:
        """Every profile the store holds (a full scan: for checks, not for serving)."""

    @abstractmethod
    def lookup(self, identifier: str) -> str | None:
        """The profile id holding `kind:value`."""

    @abstractmethod
    def close(self) -> None: ...

    def found(self, identifier: str) -> tuple[str, dict | None, dict | None] | None:
        """(profile id, document, the profile's live overlay) for the profile the index gives
        `kind:value`, None when the index has no entry: the reads the API makes per request."""
        profile_id = self.lookup(identifier)
        if profile_id is None:
            return None
        subject = f"profile_id:{profile_id}"
        return profile_id, self.get(profile_id), self.live_get([subject]).get(subject)

    def find(self, identifier: str) -> dict | None:
        profile_id = self.lookup(identifier)
        return self.get(profile_id) if profile_id else None

    def lookup_many(self, identifiers: list[str]) -> dict[str, str | None]:
        return {identifier: self.lookup(identifier) for identifier in identifiers}

    # The hot path's overlays (cdp/realtime/live.py): per subject (`profile_id:<id>`, or an
    # identifier the batch does not know yet) what the collector saw since; links tie further
    # identifiers to a subject until the batch's index holds them.
    @abstractmethod
    def live_get(self, subjects: list[str]) -> dict[str, dict | None]: ...

    @abstractmethod
    def live_put(self, overlays: dict[str, dict | None], links: dict[str, str]) -> None:
        """Write overlays (None deletes one) and links, in one transaction."""

    @abstractmethod
    def live_lookup_many(self, identifiers: list[str]) -> dict[str, str | None]: ...

    def live_lookup(self, identifier: str) -> str | None:
        return self.live_lookup_many([identifier])[identifier]

    @abstractmethod
    def live_unlink(self, identifiers: list[str]) -> None: ...

    @abstractmethod
    def live_scan(self) -> tuple[list[str], dict[str, str]]:
        """Every overlay's subject and every link (erasure looks through them all)."""

    def _live_of(self, documents: list[dict]) -> list[str]:
        """The overlays of deleted profiles: their own and their identifiers' (erasure)."""
        return [
            subject
            for document in documents
            for subject in (f"profile_id:{document['profile_id']}", *index_keys(document)[1:])
        ]


class RedisStore(ProfileStore):
    PREFIX = "cdp"

    def __init__(self, url: str, live_seconds: float = LIVE_SECONDS):
        import redis

        self.client = redis.Redis.from_url(url)
        self.live_seconds = live_seconds
        # The API's three reads (index, document, overlay) in one round trip: at 2,000 requests
        # a second the round trips, not Redis, are the cost. It reads keys it derives from the
        # index's answer, which a single Redis allows (a cluster would need one slot).
        self._found = self.client.register_script("""
            local id = redis.call('GET', KEYS[1])
            if not id then return nil end
            return {id, redis.call('GET', ARGV[1] .. id), redis.call('GET', ARGV[2] .. id)}
        """)

    def _profile(self, profile_id: str) -> str:
        return f"{self.PREFIX}:profile:{profile_id}"

    def _index(self, identifier: str) -> str:
        return f"{self.PREFIX}:index:{identifier}"

    def _live(self, subject: str) -> str:
        return f"{self.PREFIX}:live:{subject}"

    def _link(self, identifier: str) -> str:
        return f"{self.PREFIX}:live-link:{identifier}"

    def _linked(self, subject: str) -> str:
        """The identifiers linked to a subject, so that erasure finds them."""
        return f"{self.PREFIX}:live-linked:{subject}"

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
        gone = [orjson.loads(d) for d in before if d is not None]
        subjects = self._live_of(gone)
        with self.client.pipeline(transaction=False) as pipe:
            for subject in subjects:
                pipe.smembers(self._linked(subject))
            linked = [i.decode() for members in pipe.execute() for i in members]
        keys += [self._live(s) for s in subjects] + [self._linked(s) for s in subjects]
        keys += [self._link(i) for i in (*subjects, *linked)]
        self.client.delete(*keys)

    def profile_ids(self) -> list[str]:
        return [
            key.decode().removeprefix(self._profile(""))
            for key in self.client.scan_iter(match=self._profile("*"), count=1000)
        ]

    def get(self, profile_id: str) -> dict | None:
        document = self.client.get(self._profile(profile_id))
        return orjson.loads(document) if document else None

    def lookup(self, identifier: str) -> str | None:
        value = self.client.get(self._index(identifier))
        return value.decode() if value else None

    def found(self, identifier: str) -> tuple[str, dict | None, dict | None] | None:
        hit = self._found(
            keys=[self._index(identifier)],
            args=[self._profile(""), self._live("profile_id:")],
        )
        return None if hit is None else _decoded(hit[0].decode(), *hit[1:])

    def lookup_many(self, identifiers: list[str]) -> dict[str, str | None]:
        if not identifiers:
            return {}
        values = self.client.mget([self._index(i) for i in identifiers])
        return {i: v.decode() if v else None for i, v in zip(identifiers, values, strict=True)}

    def live_get(self, subjects: list[str]) -> dict[str, dict | None]:
        if not subjects:
            return {}
        values = self.client.mget([self._live(s) for s in subjects])
        return {s: orjson.loads(v) if v else None for s, v in zip(subjects, values, strict=True)}

    def live_put(self, overlays: dict[str, dict | None], links: dict[str, str]) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            for subject, overlay in overlays.items():
                if overlay is None:
                    pipe.delete(self._live(subject))
                else:
                    pipe.set(self._live(subject), orjson.dumps(overlay), px=self._live_ms())
            for identifier, subject in links.items():
                pipe.set(self._link(identifier), subject, px=self._live_ms())
                pipe.sadd(self._linked(subject), identifier)
                pipe.pexpire(self._linked(subject), self._live_ms())
            pipe.execute()

    def _live_ms(self) -> int:
        return max(1, round(self.live_seconds * 1000))

    def live_unlink(self, identifiers: list[str]) -> None:
        if identifiers:
            self.client.delete(*[self._link(i) for i in identifiers])

    def live_scan(self) -> tuple[list[str], dict[str, str]]:
        live, link = self._live(""), self._link("")
        subjects = [k.decode()[len(live) :] for k in self.client.scan_iter(f"{live}*", 1000)]
        linked = [k.decode()[len(link) :] for k in self.client.scan_iter(f"{link}*", 1000)]
        return subjects, {i: s for i, s in self.live_lookup_many(linked).items() if s}

    def live_lookup_many(self, identifiers: list[str]) -> dict[str, str | None]:
        if not identifiers:
            return {}
        values = self.client.mget([self._link(i) for i in identifiers])
        return {i: v.decode() if v else None for i, v in zip(identifiers, values, strict=True)}

    def close(self) -> None:
        self.client.close()


class EmbeddedStore(ProfileStore):
    """SQLite in WAL mode: one writer (the sync), any number of reading API processes. Live
    overlays and links carry the time they expire, as Redis keys do: reads skip expired rows,
    and each live write removes them."""

    def __init__(self, path: str | Path, live_seconds: float = LIVE_SECONDS):
        self.live_seconds = live_seconds
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
        self.con.execute(
            "create table if not exists live"
            " (subject text primary key, overlay blob, expires_at real)"
        )
        self.con.execute(
            "create table if not exists live_links"
            " (identifier text primary key, subject text, expires_at real)"
        )
        for table in ("live", "live_links"):
            columns = {row[1] for row in self.con.execute(f"pragma table_info({table})")}
            if "expires_at" not in columns:  # a store written before overlays expired
                self.con.execute(f"alter table {table} add column expires_at real")
                self.con.execute(f"update {table} set expires_at = ?", (self._expiry(),))
            # each live write removes what expired: found by index, not by a scan
            self.con.execute(f"create index if not exists {table}_expiry on {table} (expires_at)")
        self.con.commit()

    def _expiry(self) -> float:
        return time.time() + self.live_seconds

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
        gone = [d for d in map(self.get, profile_ids) if d is not None]
        subjects = [(s,) for s in self._live_of(gone)]
        with self.con:
            for profile_id in profile_ids:
                self.con.execute("delete from profiles where profile_id = ?", (profile_id,))
                self.con.execute("delete from identifiers where profile_id = ?", (profile_id,))
            self.con.executemany("delete from live where subject = ?", subjects)
            self.con.executemany("delete from live_links where identifier = ?", subjects)
            self.con.executemany("delete from live_links where subject = ?", subjects)

    def profile_ids(self) -> list[str]:
        return [row[0] for row in self.con.execute("select profile_id from profiles")]

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

    def found(self, identifier: str) -> tuple[str, dict | None, dict | None] | None:
        row = self.con.execute(
            "select identifiers.profile_id, profiles.document, live.overlay"
            " from identifiers"
            " left join profiles on profiles.profile_id = identifiers.profile_id"
            " left join live on live.subject = 'profile_id:' || identifiers.profile_id"
            " and live.expires_at > ?"
            " where identifiers.identifier = ?",
            (time.time(), identifier),
        ).fetchone()
        return None if row is None else _decoded(*row)

    def live_get(self, subjects: list[str]) -> dict[str, dict | None]:
        found = dict.fromkeys(subjects)
        for chunk in _chunks(subjects):
            rows = self.con.execute(
                f"select subject, overlay from live where subject in ({_marks(chunk)})"
                " and expires_at > ?",
                [*chunk, time.time()],
            )
            found.update({subject: orjson.loads(overlay) for subject, overlay in rows})
        return found

    def live_put(self, overlays: dict[str, dict | None], links: dict[str, str]) -> None:
        now, expires = time.time(), self._expiry()
        with self.con:
            self.con.execute("delete from live where expires_at <= ?", (now,))
            self.con.execute("delete from live_links where expires_at <= ?", (now,))
            self.con.executemany(
                "delete from live where subject = ?",
                [(s,) for s, overlay in overlays.items() if overlay is None],
            )
            self.con.executemany(
                "insert or replace into live values (?, ?, ?)",
                [(s, orjson.dumps(o), expires) for s, o in overlays.items() if o is not None],
            )
            self.con.executemany(
                "insert or replace into live_links values (?, ?, ?)",
                [(i, s, expires) for i, s in links.items()],
            )

    def live_unlink(self, identifiers: list[str]) -> None:
        with self.con:
            self.con.executemany(
                "delete from live_links where identifier = ?", [(i,) for i in identifiers]
            )

    def live_scan(self) -> tuple[list[str], dict[str, str]]:
        now = (time.time(),)
        subjects = [
            row[0] for row in self.con.execute("select subject from live where expires_at > ?", now)
        ]
        links = self.con.execute(
            "select identifier, subject from live_links where expires_at > ?", now
        )
        return subjects, dict(links)

    def live_lookup_many(self, identifiers: list[str]) -> dict[str, str | None]:
        found = dict.fromkeys(identifiers)
        for chunk in _chunks(identifiers):
            rows = self.con.execute(
                f"select identifier, subject from live_links where identifier in ({_marks(chunk)})"
                " and expires_at > ?",
                [*chunk, time.time()],
            )
            found.update(dict(rows))
        return found

    def lookup_many(self, identifiers: list[str]) -> dict[str, str | None]:
        found = dict.fromkeys(identifiers)
        for chunk in _chunks(identifiers):
            rows = self.con.execute(
                f"select identifier, profile_id from identifiers where identifier in "
                f"({_marks(chunk)})",
                chunk,
            )
            found.update(dict(rows))
        return found

    def close(self) -> None:
        self.con.close()


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _marks(values: list) -> str:
    return ", ".join("?" * len(values))


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
