"""Fixtures of the dataset tests: a static HTTP server on 127.0.0.1 (with Range support) for download tests."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files, plus HTTP Range (which SimpleHTTPRequestHandler lacks) so resuming can be tested."""

    requests: list[tuple[str, str | None]]

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.requests.append((self.path, self.headers.get("Range")))
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        path = Path(self.translate_path(self.path))
        if not match or not path.is_file():
            return super().do_GET()
        data = path.read_bytes()
        start = int(match.group(1))
        if start >= len(data):
            self.send_response(416)
            self.end_headers()
            return
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@contextmanager
def _serve(directory: Path) -> Iterator[tuple[str, list]]:
    requests: list[tuple[str, str | None]] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def serve():
    """``with serve(folder) as (base_url, requests):`` serves ``folder`` on 127.0.0.1 until the block ends."""
    return _serve
