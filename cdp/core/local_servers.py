"""Starting the servers locally: a free port, and waiting until one answers (tests, the demo,
the benchmarks)."""

from __future__ import annotations

import socket
import subprocess
import time

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    """Return once GET `url` answers 2xx; raise with the process's output if it exits or the
    time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    output = process.stdout.read() if process.stdout else ""
    raise RuntimeError(f"{url} did not come up: {output}")
