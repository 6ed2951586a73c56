"""Real servers for URL audio: moto's standalone S3 server (a process) and a local HTTP server.

The HTTP server serves files of one directory under ``/audio/<name>`` (any query
string is accepted, as a presigned URL's would be) and answers some paths in the
ways a store can fail: ``/forbidden`` (403), ``/missing`` (404), ``/hang`` (headers,
then nothing), ``/huge`` (an endless chunked body), ``/redirect?to=URL`` (302),
``/flaky/<name>`` (503 the first time, then the file).
It records every request line it saw.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["AWS_ENV", "free_port", "http_server", "moto_server", "s3_client", "server_process"]

#: Credentials moto accepts; real ones come from the same variables.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_process(name: str, argv: list[str], log_dir: Path, probe_url: str) -> Iterator[None]:
    """Run ``argv`` until the block ends, once ``probe_url`` answers (any status); logs in ``log_dir``."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(probe_url, timeout=1).close()
                    break
                except urllib.error.HTTPError:
                    break  # it answers: up
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{name} did not start: {log_path.read_text()}") from None
                    time.sleep(0.1)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # Azurite waits on its clients' keep-alive connections
                process.kill()
                process.wait(timeout=10)


@contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """Run ``moto_server`` on a free port until the block ends; yields its endpoint URL."""
    binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    argv = [binary, "-H", "127.0.0.1", "-p", str(port)]
    with server_process("moto", argv, log_dir, f"{endpoint}/moto-api/"):
        yield endpoint


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_ENV["AWS_DEFAULT_REGION"],
    ).client("s3", endpoint_url=endpoint)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the requests are recorded in do_GET

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        url = urlsplit(self.path)
        if url.path.startswith("/audio/"):
            return self._file(self.server.root / url.path.removeprefix("/audio/"))
        if url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(url.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if url.path.startswith("/flaky/"):  # 503 on the first request of each path, then the file
            if self.server.requests.count(self.path) == 1:
                self.send_error(503)
                return None
            return self._file(self.server.root / url.path.removeprefix("/flaky/"))
        if url.path == "/hang":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.server.stopped.wait(60)
            return None
        if url.path == "/huge":
            return self._endless()
        status = {"/forbidden": 403, "/missing": 404}.get(url.path, 404)
        self.send_error(status)
        return None

    def _file(self, path: Path) -> None:
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _endless(self) -> None:
        """A chunked body with no declared length that never ends (until the client stops reading)."""
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"\0" * 65536
        try:
            while not self.server.stopped.is_set():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.server.sent += len(chunk)
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scheme = "http" if tls is None else "https"
        self.root = root
        self.requests: list[str] = []
        self.stopped = threading.Event()
        self.sent = 0

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"


@contextmanager
def http_server(root: Path, tls: ssl.SSLContext | None = None) -> Iterator[_Server]:
    """A real HTTP server on a free port in a thread, serving ``root``; stopped when the block ends.

    With ``tls`` (a server-side context holding its certificate) it speaks https.
    """
    server = _Server(root, tls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopped.set()
        server.shutdown()
        server.server_close()
