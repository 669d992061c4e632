"""Real components for tests: an HTTP receiver on loopback and Celery worker subprocesses."""

import http.server
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connection

from deliveries.models import Delivery

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)


class _BurstServer(socketserver.ThreadingTCPServer):
    # A backlog of 128, not the default 5, so a burst of concurrent deliveries is not dropped.
    request_queue_size = 128
    daemon_threads = True


class Receiver:
    """A threaded HTTP server on 127.0.0.1 that records each POST and responds from a script.

    `replies` maps a path to a list of Reply objects used in turn; the last one repeats.
    """

    def __init__(self, host: str = "127.0.0.1"):
        self.requests: list[ReceivedRequest] = []
        self.replies: dict[str, list[Reply]] = {}
        self.lock = threading.Lock()
        self.server = _BurstServer((host, 0), self._handler_class())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        self.replies[path] = list(replies)

    def received(self, path: str | None = None) -> list[ReceivedRequest]:
        with self.lock:
            return [request for request in self.requests if path is None or request.path == path]

    def wait_for(self, count: int, timeout: float = 30, path: str | None = None) -> list[ReceivedRequest]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.received(path)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        return self.received(path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _reply_for(self, path: str) -> Reply:
        with self.lock:
            queue = self.replies.get(path) or [Reply()]
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _handler_class(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                record = ReceivedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                with receiver.lock:
                    receiver.requests.append(record)
                reply = receiver._reply_for(self.path)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args):
                pass

        return Handler


class ConnectionCanary:
    """A listener that only counts TCP connections, for addresses that must never be reached."""

    def __init__(self, host: str):
        import socket

        self.connections = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.host, self.port = self.sock.getsockname()
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self.running = False
        self.thread.join(1)
        self.sock.close()


def database_url() -> str:
    """Return a URL of the database the test process uses, so workers share the test database."""
    settings = connection.settings_dict
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or "5432"
    user = settings.get("USER") or "root"
    return f"postgres://{user}@{host}:{port}/{settings['NAME']}"


class WorkerProcess:
    """A real `celery worker` subprocess on the test database, optionally with an embedded beat."""

    def __init__(self, env: dict[str, str] | None = None, concurrency: int = 2, beat: bool = False):
        self.log_path = ROOT / "var" / f"test-worker-{os.getpid()}-{time.monotonic_ns()}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        command = [sys.executable, "-m", "celery", "-A", "dispatcher", "worker", "-P", "prefork",
                   "-c", str(concurrency), "--without-gossip", "--without-mingle", "-l", "info"]
        if beat:
            command += ["-B", "-s", str(self.log_path.with_suffix(".beat"))]
        full_env = dict(os.environ, DATABASE_URL=database_url(), DJANGO_SETTINGS_MODULE="dispatcher.test_settings",
                        DATABASE_CONN_MAX_AGE="0")
        full_env.update(env or {})
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log_path.read_text():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout} s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or an OOM kill would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def output(self) -> str:
        return self.log_path.read_text()


def wait_until(check, timeout: float = 30) -> bool:
    """Poll `check` every 0.2 s until it returns true or `timeout` seconds pass; returns its last result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return bool(check())


def succeeded_count() -> int:
    return Delivery.objects.filter(status="succeeded").count()


def wait_for_succeeded(count: int, timeout: float = 90) -> int:
    """Wait until `count` deliveries are recorded as succeeded, because workers record after the receiver responds."""
    wait_until(lambda: succeeded_count() >= count, timeout)
    return succeeded_count()
