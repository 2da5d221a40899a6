"""The event collector: Segment's HTTP Tracking API as an ASGI app (Starlette on uvicorn).

POST /v1/identify, /v1/track, /v1/page, /v1/screen, /v1/group, /v1/alias and /v1/batch; the
write key as the HTTP Basic user name (or `writeKey` in the body); 32 KB per message and 500 KB
per request, else 400 with a JSON error. Accepted messages are in the durable log before the
answer. In a batch, messages that break the spec are kept in the collector's rejected file with
their reason and listed in the answer; the rest are accepted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import gzip
import logging
import multiprocessing
import os
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cdp.realtime.collector.log import DurableLog
from cdp.realtime.collector.messages import (
    CALLS,
    MAX_BATCH_BYTES,
    InvalidMessage,
    accept,
    check_size,
)
from cdp.realtime.live import LiveUpdater
from cdp.realtime.store import open_store

WRITE_KEYS_ENV = "CDP_COLLECTOR_WRITE_KEYS"
RECENT_IDS = 500_000  # messageIds remembered for de-duplication of retries
log = logging.getLogger(__name__)


@dataclass
class CollectorSettings:
    spool: Path
    landing: Path
    write_keys: frozenset[str]
    segment_seconds: float = 5.0
    segment_bytes: int = 16 * 1024 * 1024
    recent_ids: int = RECENT_IDS
    # the hot path: the profile store accepted events are folded into (None: no hot path)
    profile_store: str | None = None
    extra: dict = field(default_factory=dict)


def web_events_landing(landing_root: Path) -> Path:
    """Where closed segments land: the folder the web events export is loaded from."""
    from cdp.ingest.sources import table

    return Path(landing_root) / Path(table("web__events").landing_glob).parent


def write_keys_from_env() -> frozenset[str]:
    return frozenset(k.strip() for k in os.environ.get(WRITE_KEYS_ENV, "").split(",") if k.strip())


def _error(status: int, code: str, message: str, **more) -> JSONResponse:
    return JSONResponse({"success": False, "code": code, "message": message, **more}, status)


class _TooLarge(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    """The body, inflated if gzip- or deflate-encoded, refusing more than the batch limit."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BATCH_BYTES:
        raise _TooLarge
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > MAX_BATCH_BYTES:
            raise _TooLarge
    encoding = request.headers.get("content-encoding", "").lower()
    if encoding in ("gzip", "deflate"):
        inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        body = inflater.decompress(bytes(raw), MAX_BATCH_BYTES + 1)
        if len(body) > MAX_BATCH_BYTES or inflater.unconsumed_tail:
            raise _TooLarge
        return body
    return bytes(raw)


def _basic_user(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        user, _, _ = base64.b64decode(token.strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user


class Collector:
    def __init__(self, settings: CollectorSettings):
        self.settings = settings
        self.log = DurableLog(
            settings.spool, settings.landing, settings.segment_bytes, settings.segment_seconds
        )
        self.rejected_path = settings.spool / "rejected.jsonl"
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._rotation: asyncio.Task | None = None
        self._live_task: asyncio.Task | None = None
        self._live_chunks: list[bytes] = []
        self._live_ready = asyncio.Event()
        self._live_pipe = None
        self._live_process = None
        self.accepted = 0
        self.duplicates = 0

    async def startup(self) -> None:
        self.log.recover()
        self._rotation = asyncio.create_task(self._rotate_forever())
        if self.settings.profile_store is not None:
            # the hot path in a process of its own: folding events into the store costs CPU
            # the request path would otherwise wait for
            context = multiprocessing.get_context("spawn")
            reader, self._live_pipe = context.Pipe(duplex=False)
            self._live_process = context.Process(
                target=_apply_live, args=(reader, self.settings.profile_store), daemon=True
            )
            self._live_process.start()
            reader.close()
            self._live_task = asyncio.create_task(self._send_live_forever())

    async def shutdown(self) -> None:
        for task in (self._rotation, self._live_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._live_pipe is not None:
            with contextlib.suppress(OSError):  # what was accepted still reaches the store
                if self._live_chunks:
                    self._live_pipe.send_bytes(b"".join(self._live_chunks))
                self._live_pipe.close()
            await asyncio.to_thread(self._live_process.join, 10)
        await self.log.close()

    async def _rotate_forever(self) -> None:
        interval = max(0.1, min(1.0, self.settings.segment_seconds / 2))
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(OSError):
                await self.log.rotate_if_old()

    async def _send_live_forever(self) -> None:
        """Hands accepted events to the hot path's process, off the request path. If that
        process is gone, the hot path stops; the events are in the log already."""
        while True:
            await self._live_ready.wait()
            self._live_ready.clear()
            chunks, self._live_chunks = self._live_chunks, []
            try:
                await asyncio.to_thread(self._live_pipe.send_bytes, b"".join(chunks))
            except OSError as exc:
                log.warning("hot path: %d bytes of events not handed over: %s", len(chunks), exc)

    def _seen(self, message_id: str) -> bool:
        if message_id in self._recent:
            self._recent.move_to_end(message_id)
            return True
        self._recent[message_id] = None
        if len(self._recent) > self.settings.recent_ids:
            self._recent.popitem(last=False)
        return False

    def _keep_rejected(self, rejected: list[dict]) -> None:
        with self.rejected_path.open("ab") as fh:
            fh.write(b"".join(orjson.dumps(r) + b"\n" for r in rejected))
            fh.flush()
            os.fsync(fh.fileno())

    async def handle(self, request: Request) -> JSONResponse:
        call = request.path_params["call"]
        if call not in (*CALLS, "batch"):
            return _error(404, "not_found", f"no such call: /v1/{call}")
        try:
            body = await _read_body(request)
        except _TooLarge:
            return _error(400, "too_large", f"a request may be at most {MAX_BATCH_BYTES} bytes")
        except (zlib.error, gzip.BadGzipFile):
            return _error(400, "invalid_encoding", "the body could not be decompressed")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "invalid_json", "the body is not valid JSON")
        if not isinstance(payload, dict):
            return _error(400, "invalid_json", "the body must be a JSON object")
        key = _basic_user(request) or payload.get("writeKey")
        if not isinstance(key, str) or key not in self.settings.write_keys:
            return _error(401, "unauthorized", "a valid write key is required (HTTP Basic user)")

        received_at = datetime.now(UTC)
        if call == "batch":
            messages = payload.get("batch")
            if not isinstance(messages, list) or not messages:
                return _error(400, "invalid_request", "batch must be a non-empty list")
            sent_at, context = payload.get("sentAt"), payload.get("context")
            shared = context if isinstance(context, dict) else None
        else:
            messages, sent_at, shared = [payload], None, None

        single = None if call == "batch" else call
        lines, rejected, ids = [], [], []
        for index, message in enumerate(messages):
            try:
                check_size(message)
                accepted = accept(message, received_at, sent_at, shared, single)
            except InvalidMessage as exc:
                rejected.append({"index": index, "code": exc.code, "error": str(exc)})
                continue
            ids.append(accepted.message_id)
            lines.append(orjson.dumps(accepted.row) + b"\n")
        if rejected and not lines:
            first = rejected[0]
            if single:
                return _error(400, first["code"], first["error"])
            return _error(400, first["code"], "no message in the batch is valid", rejected=rejected)
        fresh = [(i, line) for i, line in zip(ids, lines, strict=True) if not self._seen(i)]
        self.duplicates += len(lines) - len(fresh)
        try:
            if fresh:
                await self.log.append(b"".join(line for _, line in fresh))
            if rejected:
                kept = [
                    {**r, "received_at": received_at.isoformat(), "message": messages[r["index"]]}
                    for r in rejected
                ]
                await asyncio.to_thread(self._keep_rejected, kept)
        except OSError as exc:
            for message_id, _ in fresh:  # not stored: a retry must not be taken for a duplicate
                self._recent.pop(message_id, None)
            return _error(503, "unavailable", f"events could not be stored: {exc.strerror}")
        self.accepted += len(fresh)
        if self._live_pipe is not None and fresh:
            self._live_chunks.append(b"".join(line for _, line in fresh))
            self._live_ready.set()
        answer = {"success": True}
        if rejected:
            answer["rejected"] = rejected
        return JSONResponse(answer)


def _apply_live(connection, store_location: str) -> None:
    """The hot path's process: events (JSON lines) from the collector into the profile store,
    whatever arrived while the last batch was applied at once."""
    updater = LiveUpdater(open_store(store_location))
    try:
        while True:
            try:
                data = [connection.recv_bytes()]
                while connection.poll(0):
                    data.append(connection.recv_bytes())
            except EOFError:  # the collector stopped (or was killed)
                return
            rows = [orjson.loads(line) for chunk in data for line in chunk.splitlines() if line]
            try:
                updater.apply(rows)
            except Exception as exc:  # any store error: the events are in the log already
                log.warning("hot path: %d event(s) not in the profile store: %s", len(rows), exc)
    finally:
        updater.store.close()


def create_app(settings: CollectorSettings) -> Starlette:
    collector = Collector(settings)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "accepted": collector.accepted})

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        await collector.startup()
        try:
            yield
        finally:
            await collector.shutdown()

    app = Starlette(
        routes=[
            Route("/v1/{call}", collector.handle, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.collector = collector
    return app
