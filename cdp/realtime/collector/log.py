"""The collector's durable log: an event is answered 2xx only once it is on disk.

Requests append to an open segment in the spool folder; concurrent appends are written and
fsynced together (group commit), and every caller waits for the fsync that covers its lines.
A segment is closed when it is big or old enough: fsynced, then renamed into the landing folder
of the web events export, where the raw loader and the landing sensor find it. A segment's name
never matches the loader's glob until it is complete.

A process killed mid-write leaves its open segment behind; the next start truncates it after the
last complete line (a torn line was never answered) and lands it. Each open segment is held with
an exclusive lock, so a second process never lands a live one.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

OPEN_SUFFIX = ".jsonl.open"
SEGMENT_PREFIX = "collector-"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _land(segment: Path, landing: Path) -> Path | None:
    """Move a closed segment into the landing folder under its final name (atomically: a
    rename, or a copy to a hidden name then a rename across file systems)."""
    if segment.stat().st_size == 0:
        segment.unlink()
        return None
    landing.mkdir(parents=True, exist_ok=True)
    final = landing / segment.name.replace(OPEN_SUFFIX, ".jsonl")
    try:
        os.rename(segment, final)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        hidden = landing / f".{final.name}.partial"
        shutil.copyfile(segment, hidden)
        with hidden.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.rename(hidden, final)
        segment.unlink()
    _fsync_dir(landing)
    return final


def _truncate_torn_tail(segment: Path) -> None:
    """Cut a line the process did not finish writing (it was never acknowledged)."""
    size = segment.stat().st_size
    if size == 0:
        return
    with segment.open("rb+") as fh:
        fh.seek(max(0, size - 1))
        if fh.read(1) == b"\n":
            return
        # the last newline before the torn line
        step, position = 64 * 1024, size
        keep = 0
        while position > 0:
            start = max(0, position - step)
            fh.seek(start)
            chunk = fh.read(position - start)
            index = chunk.rfind(b"\n")
            if index >= 0:
                keep = start + index + 1
                break
            position = start
        fh.truncate(keep)
        os.fsync(fh.fileno())


class DurableLog:
    """Segments of JSON lines with group commit. `append` is a coroutine; the file work runs in
    a worker thread, one step at a time."""

    def __init__(
        self,
        spool: Path,
        landing: Path,
        segment_bytes: int = 16 * 1024 * 1024,
        segment_seconds: float = 5.0,
    ):
        self.spool, self.landing = Path(spool), Path(landing)
        self.segment_bytes, self.segment_seconds = segment_bytes, segment_seconds
        self.spool.mkdir(parents=True, exist_ok=True)
        self._file = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._sequence = 0
        self._pending: list[tuple[bytes, asyncio.Future]] = []
        self._flushing = False
        self._flusher: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.landed: list[Path] = []

    # ------------------------------------------------------------------ recovery
    def recover(self) -> list[Path]:
        """Land the segments a stopped process left open (those no live process holds)."""
        landed = []
        for segment in sorted(self.spool.glob(f"*{OPEN_SUFFIX}")):
            with segment.open("rb+") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live collector's segment
                _truncate_torn_tail(segment)
                final = _land(segment, self.landing)
            if final is not None:
                landed.append(final)
        return landed

    # ------------------------------------------------------------------ writing
    def _open_segment(self) -> None:
        self._sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{SEGMENT_PREFIX}{stamp}-{os.getpid()}-{self._sequence:06d}{OPEN_SUFFIX}"
        self._path = self.spool / name
        self._file = self._path.open("ab")
        fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _fsync_dir(self.spool)
        self._opened_at = time.monotonic()

    def _close_segment(self) -> None:
        if self._file is None:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        path = self._path
        # landed while still locked, so a recovering process cannot take it half-way
        final = _land(path, self.landing)
        self._file.close()
        self._file, self._path = None, None
        if final is not None:
            self.landed.append(final)

    def _write(self, data: bytes) -> None:
        if self._file is None:
            self._open_segment()
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())
        if self._file.tell() >= self.segment_bytes:
            self._close_segment()

    def _rotate_if_old(self) -> None:
        if self._file is not None and time.monotonic() - self._opened_at >= self.segment_seconds:
            self._close_segment()

    async def append(self, data: bytes) -> None:
        """Returns once `data` (whole JSON lines) is fsynced; raises if it could not be."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((data, future))
        if not self._flushing:
            self._flushing = True
            self._flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending, []
                try:
                    async with self._lock:
                        await asyncio.to_thread(self._write, b"".join(d for d, _ in group))
                except Exception as exc:  # disk full, permissions: every caller answers 503
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in group:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._flushing = False

    async def rotate_if_old(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._rotate_if_old)

    async def close(self) -> None:
        """Land the open segment (on shutdown)."""
        async with self._lock:
            await asyncio.to_thread(self._close_segment)


def scrub_landed(
    landing: Path, belongs: Callable[[dict], bool], same_person: tuple[str, ...] = ()
) -> int:
    """Rewrite the collector's landed segments without the events `belongs` picks (erasure),
    and without every event sharing one of the `same_person` fields' values with those (the
    browser an identify tied to the person); each file replaced atomically. The number of events
    removed. The raw loader skips rows it holds already, so a rewritten segment adds nothing
    when read again; open segments land within seconds, and the suppression list drops what
    they hold at load."""
    import orjson

    segments = sorted(Path(landing).glob(f"{SEGMENT_PREFIX}*.jsonl"))
    parsed = {
        segment: [
            (line, orjson.loads(line))
            for line in segment.read_bytes().splitlines(keepends=True)
            if line.strip()
        ]
        for segment in segments
    }
    picked = {id(row) for rows in parsed.values() for _, row in rows if belongs(row)}
    marked = {
        (name, row[name])
        for rows in parsed.values()
        for _, row in rows
        if id(row) in picked
        for name in same_person
        if row.get(name)
    }
    removed = 0
    for segment, rows in parsed.items():
        kept = [
            line
            for line, row in rows
            if id(row) not in picked and not any((n, row.get(n)) in marked for n in same_person)
        ]
        if len(kept) == len(rows):
            continue
        removed += len(rows) - len(kept)
        scrubbed = segment.with_name(f".{segment.name}.scrubbed")
        with scrubbed.open("wb") as fh:
            fh.write(b"".join(kept))
            fh.flush()
            os.fsync(fh.fileno())
        scrubbed.replace(segment)
        _fsync_dir(segment.parent)
    return removed
