"""Local stand-ins for the systems the CDP talks to, for the tests and the demo (the runtime never
imports them). `Emulator`: a real HTTP server on 127.0.0.1, faithful to an API's documented
contract (auth, payload validation with the vendor's error shapes, batch limits, rate limits
answered with 429), with switches to inject faults: error statuses, slow answers, dropped
connections. `LocalTarget`: what every stand-in offers the shared destination contract suite."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import orjson


class Fault:
    """One scripted misbehaviour for the next matching request."""

    def __init__(
        self,
        kind: str,
        status: int = 500,
        seconds: float = 0.0,
        retry_after: str | None = None,
        after_processing: bool = False,
        payload=None,
    ):
        self.kind, self.status, self.seconds, self.payload = kind, status, seconds, payload
        self.retry_after, self.after_processing = retry_after, after_processing


class LocalTarget(ABC):
    """A stand-in for one destination: started as a context manager, reached at `url` with the
    credential it was made with, and able to say what it holds. `example_sync` is the part of a
    sync definition that fits it (object, identifier, fields), for the contract suite."""

    example_sync: ClassVar[dict] = {}
    default_credential: ClassVar[str] = "test-token"

    def __init__(self, credential: str = "test-token"):
        self.token = credential

    @property
    @abstractmethod
    def url(self) -> str:
        """What the destination's `url_env` is set to for it."""

    def start(self) -> LocalTarget:
        return self

    def stop(self) -> None:  # noqa: B027 - nothing to stop by default
        pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @abstractmethod
    def held(self) -> dict[str, dict]:
        """What the destination holds now: each record's identifier (lower case) and fields."""


class TemporaryFolderTarget(LocalTarget):
    """A stand-in that lives in a temporary folder (an export folder, an embedded store),
    removed when it stops."""

    def start(self):
        self.folder = Path(tempfile.mkdtemp(prefix="cdp-target-"))
        return self

    def stop(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class Emulator(LocalTarget):
    """Base of HTTP emulators: routing, JSON helpers, faults, a rolling-window rate limit and a
    request log."""

    def __init__(self, token: str = "test-token", rate_limit: tuple[int, float] | None = None):
        super().__init__(token)
        self.rate_limit = rate_limit
        self.faults: deque[Fault] = deque()
        self.requests: list[dict] = []
        self.lock = threading.RLock()
        self.in_flight = self.max_in_flight = 0  # concurrent requests, now and at most
        self._window: deque[float] = deque()
        self.server: ThreadingHTTPServer | None = None
        self._outage: tuple[int, int] | None = None  # (requests still served, status after)

    # -- fault switches
    def fail_next(self, count: int = 1, status: int = 500, retry_after: str | None = None):
        for _ in range(count):
            self.faults.append(Fault("status", status=status, retry_after=retry_after))

    def answer_next(self, status: int, payload, count: int = 1):
        """Answer with this status and JSON payload (None: an empty body) without applying the
        request, as a misconfigured proxy or a changed API would."""
        for _ in range(count):
            self.faults.append(Fault("answer", status=status, payload=payload))

    def drop_next(self, count: int = 1, after_processing: bool = False):
        """Close the connection without an answer (optionally after applying the request)."""
        for _ in range(count):
            self.faults.append(Fault("drop", after_processing=after_processing))

    def delay_next(self, seconds: float, count: int = 1):
        for _ in range(count):
            self.faults.append(Fault("delay", seconds=seconds))

    def start_outage(self, after_requests: int = 0, status: int = 503):
        """Serve `after_requests` more requests, then answer every one with `status`."""
        self._outage = (after_requests, status)

    def end_outage(self):
        self._outage = None

    # -- server
    def start(self) -> Emulator:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # answers are written in two parts

            def log_message(self, *args):  # quiet
                pass

            def _serve(self):
                emulator._handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    @property
    def url(self) -> str:
        assert self.server, "start() the emulator first"
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    # -- request handling
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._handle_request(handler)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _handle_request(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append(
                {
                    "method": handler.command,
                    "path": handler.path,
                    "headers": dict(handler.headers),
                    "body": body,
                }
            )
            fault = self.faults.popleft() if self.faults else None
            if self._outage is not None:
                remaining, status = self._outage
                if remaining > 0:
                    self._outage = (remaining - 1, status)
                elif not fault:
                    fault = Fault("status", status=status)
        if fault and fault.kind == "delay":
            time.sleep(fault.seconds)
        if fault and fault.kind == "drop" and not fault.after_processing:
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        if fault and fault.kind == "answer":
            self._send(handler, fault.status, fault.payload)
            return
        if fault and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._send(
                handler, fault.status, {"status": "error", "message": "injected fault"}, headers
            )
            return
        limited = self._rate_limited()
        if limited:
            self._send(handler, 429, *limited)
            return
        status, payload, headers = self.handle(
            handler.command, handler.path, dict(handler.headers), body
        )
        if fault and fault.kind == "drop":  # applied, but the answer is lost
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        self._send(handler, status, payload, headers)

    def _rate_limited(self):
        if not self.rate_limit:
            return None
        calls, period = self.rate_limit
        now = time.monotonic()
        with self.lock:
            while self._window and now - self._window[0] >= period:
                self._window.popleft()
            if len(self._window) >= calls:
                return self.rate_limit_response(period - (now - self._window[0]))
            self._window.append(now)
        return None

    def rate_limit_response(self, wait: float) -> tuple[dict, dict]:
        return {"status": "error", "message": "rate limit"}, {"Retry-After": f"{wait:.2f}"}

    @staticmethod
    def _send(handler, status: int, payload, headers: dict | None = None) -> None:
        data = b"" if payload is None else orjson.dumps(payload)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def authorized(self, headers: dict) -> bool:
        return headers.get("Authorization") == f"Bearer {self.token}"

    @abstractmethod
    def handle(self, method: str, path: str, headers: dict, body: bytes):
        """Return (status, JSON payload or None, headers)."""
