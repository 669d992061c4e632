"""Real HTTP receivers on loopback whose responses can be slow, huge or malformed, and a DNS stub.

`RawReceiver` is a threaded HTTP/1.1 server whose routes map a path to a responder: a callable
that receives the request handler and writes the whole response to `handler.wfile`. The
functions below build the usual responders (plain responses, redirects, trickled and endless
bodies). It binds port 0, so the kernel picks a free port. For scripted plain replies and
for connection canaries, `tests.harness` has `Receiver` and `ConnectionCanary`.
"""

import datetime as dt
import ipaddress
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from endpoints import netpolicy

Responder = Callable[[BaseHTTPRequestHandler], None]

STREAM_CHUNK_BYTES = 64 * 1024  # bytes written per chunk by the streaming responders


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def _url(host: str, port: int, path: str, scheme: str = "http") -> str:
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{scheme}://{netloc}{path}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can pool connections
    server: "_Server"

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        receiver = self.server.receiver
        receiver.record(RecordedRequest(self.command, self.path, dict(self.headers.items()), body))

        responder = receiver.routes.get(self.path.split("?")[0], respond(200, b"ok"))
        try:
            responder(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        return None  # keep test output quiet


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # listen backlog; the default 5 drops bursts of concurrent connects
    receiver: "RawReceiver"

    def handle_error(self, request: object, client_address: object) -> None:
        return None  # failed TLS handshakes and dropped clients are expected in these tests


class _Server6(_Server):
    address_family = socket.AF_INET6


class RawReceiver:
    """HTTP server on `host` and a free port that records requests and responds by route."""

    def __init__(
        self, host: str = "127.0.0.1", routes: dict[str, Responder] | None = None, tls: ssl.SSLContext | None = None
    ):
        server_class = _Server6 if ":" in host else _Server
        self.server = server_class((host, 0), _Handler)
        self.server.receiver = self
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.host = host
        self.port = self.server.server_address[1]
        self.routes: dict[str, Responder] = dict(routes or {})
        self.requests: list[RecordedRequest] = []
        self.stopping = threading.Event()  # streaming responders stop when it is set
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return _url(self.host, self.port, path, self.scheme)

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "RawReceiver":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --- responders ------------------------------------------------------------------------------


def respond(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Responder:
    """Respond with `status`, `body` and extra `headers`, keeping the connection open."""

    def responder(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return responder


def redirect(status: int, location: str) -> Responder:
    """Respond with a redirect `status` and a `Location` header."""
    return respond(status, b"moved", {"Location": location})


def delayed(seconds: float, responder: Responder) -> Responder:
    """Sleep `seconds`, then respond with `responder`."""

    def delayed_responder(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        responder(handler)

    return delayed_responder


def _write_raw(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(data)
    handler.wfile.flush()


def trickle_body(interval: float, content_length: int = 1_000_000) -> Responder:
    """Send 200 with a large `Content-Length`, then one body byte every `interval` seconds."""

    def responder(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        _write_raw(handler, f"HTTP/1.1 200 OK\r\nContent-Length: {content_length}\r\n\r\n".encode())
        for _ in range(content_length):
            if handler.server.receiver.stopping.wait(interval):
                return
            _write_raw(handler, b"A")

    return responder


def trickle_headers(interval: float) -> Responder:
    """Send a status line, then one header line every `interval` seconds, never ending the headers."""

    def responder(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        _write_raw(handler, b"HTTP/1.1 200 OK\r\n")
        number = 0
        while not handler.server.receiver.stopping.wait(interval):
            number += 1
            _write_raw(handler, f"X-Slow-{number}: 1\r\n".encode())

    return responder


def stream_chunked(status: int, total_bytes: int) -> Responder:
    """Stream `total_bytes` of `A` with chunked transfer encoding, until the client hangs up."""

    def responder(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        _write_raw(handler, f"HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"%x\r\n" % STREAM_CHUNK_BYTES + b"A" * STREAM_CHUNK_BYTES + b"\r\n"
        for _ in range(total_bytes // STREAM_CHUNK_BYTES):
            if handler.server.receiver.stopping.is_set():
                return
            handler.wfile.write(chunk)
        _write_raw(handler, b"0\r\n\r\n")

    return responder


def stream_declared_length(status: int, declared_bytes: int) -> Responder:
    """Declare `Content-Length: declared_bytes` and stream `A` until the client hangs up."""

    def responder(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        _write_raw(handler, f"HTTP/1.1 {status} X\r\nContent-Length: {declared_bytes}\r\n\r\n".encode())
        block = b"A" * STREAM_CHUNK_BYTES
        for _ in range(declared_bytes // STREAM_CHUNK_BYTES):
            if handler.server.receiver.stopping.is_set():
                return
            handler.wfile.write(block)

    return responder


# --- DNS stub --------------------------------------------------------------------------------


class StubResolver:
    """Replacement for `endpoints.netpolicy.resolve` that resolves names from a table.

    A table value is a list of addresses or a callable that returns one (see `answers_in_turn`).
    Unknown names fail like getaddrinfo does. `calls` lists every host looked up, in order.
    """

    def __init__(self, table: dict[str, list[str] | Callable[[], list[str]]]):
        self.table = dict(table)
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        answer = self.table.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(answer() if callable(answer) else answer)


def install_stub_resolver(monkeypatch, settings, table: dict) -> StubResolver:
    """Allow only 127.0.0.1/32 through the SSRF policy and resolve DNS lookups from `table`."""
    settings.SSRF_ALLOWED_CIDRS = [ipaddress.ip_network("127.0.0.1/32")]
    resolver = StubResolver(table)
    monkeypatch.setattr(netpolicy, "resolve", resolver)
    return resolver


def answers_in_turn(*answers: list[str]) -> Callable[[], list[str]]:
    """Return a DNS answer that changes on each lookup (the last one repeats), as in rebinding."""
    remaining = list(answers)

    def answer() -> list[str]:
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return answer


# --- TLS -------------------------------------------------------------------------------------


def self_signed_tls_context(hostname: str = "receiver.test") -> ssl.SSLContext:
    """Return a server TLS context with a fresh self-signed certificate for `hostname` and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.timezone.utc)
    names = [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context.load_cert_chain(cert_path, key_path)
    return context
