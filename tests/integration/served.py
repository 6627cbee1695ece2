"""Serve a real ASGI app with uvicorn in a thread (start, wait until started, yield, ask to exit, join),
and wait on conditions with a bounded timeout instead of sleeping."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import uvicorn

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout_s: float, what: str, every_s: float = 0.05) -> T:
    """The first truthy value of `condition()`, polled until `timeout_s`; fails naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(every_s)


@contextlib.contextmanager
def serve(app) -> Iterator[str]:
    """`app` on a free loopback port for the duration of the block; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound here and handed over, so no other process can take the port
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), 120, "the app to start")
        assert server.started, "the app failed to start (see the log above)"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
