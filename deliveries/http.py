"""The one outgoing HTTP path of deliveries: address checks, deadlines, no redirects, read caps.

`send_many` runs a batch of POST requests concurrently on a per-process event loop with one
pooled aiohttp session. It turns every outcome into an `AttemptResult`, so it does not raise
for network or receiver failures: unexpected exceptions are logged and stored as "connection". Every attempt normalizes the URL again, resolves the host
through `endpoints.netpolicy.resolve_checked` and connects only to the addresses that call
checked, so a DNS answer that changes after the check cannot redirect the connection.
"""

import asyncio
import atexit
import contextvars
import logging
import os
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from django.conf import settings
from yarl import URL

from deliveries.models import AttemptErrorKind
from endpoints import netpolicy

logger = logging.getLogger(__name__)

USER_AGENT = "Praeto-Dispatcher/1.0"
MAX_READ_BYTES = 64 * 1024  # bytes of a response body read at most; the rest is never received
MAX_STORED_BYTES = 4 * 1024  # bytes of the response body kept on the attempt
READ_CHUNK_BYTES = 16 * 1024  # bytes asked for per read of the response body
POOL_LIMIT = 200  # open connections per process and thread, across all receivers
POOL_LIMIT_PER_HOST = 20  # open connections per process and thread to one host and port
KEEPALIVE_SECONDS = 15  # seconds an idle pooled connection stays open
# Threads per process and thread for blocking getaddrinfo calls.
# NOTE: a lookup that hangs keeps its thread after the attempt has timed out, so this many
# hanging lookups at once delay every other lookup until the resolver gives up.
DNS_THREADS = 32
MAX_HEADER_ECHO_CHARS = 300  # characters of a Location or Retry-After value kept

DEFAULT_TIMEOUT_SECONDS = 15.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 5.0

TIMEOUT = AttemptErrorKind.TIMEOUT
CONNECTION = AttemptErrorKind.CONNECTION
DNS = AttemptErrorKind.DNS
TLS = AttemptErrorKind.TLS
BLOCKED_DESTINATION = AttemptErrorKind.BLOCKED_DESTINATION
HTTP_STATUS = AttemptErrorKind.HTTP_STATUS


@dataclass
class OutgoingRequest:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass
class AttemptResult:
    status_code: int | None
    error_kind: str | None  # None on 2xx, else an AttemptErrorKind value
    error_message: str  # short lowercase phrase, empty on success
    duration_ms: int
    response_body: str  # the first MAX_STORED_BYTES of the body, decoded as utf-8
    truncated: bool  # whether the receiver sent more body than was stored
    retry_after: str | None  # the raw Retry-After header value, if any
    started_at: datetime  # UTC

    @property
    def succeeded(self) -> bool:
        return self.error_kind is None


@dataclass
class _Response:
    status_code: int
    body: bytes
    truncated: bool
    retry_after: str | None
    location: str | None


class _Failure(Exception):
    """An attempt failure already mapped to an error kind and message."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


# Addresses checked by the attempt running in the current task, keyed by (host, port).
# The resolver returns them so the connection goes exactly where the check allowed.
_checked_addresses: contextvars.ContextVar[dict[tuple[str, int], list[str]]] = contextvars.ContextVar(
    "checked_addresses"
)


async def _resolve_checked(host: str, port: int) -> list[str]:
    """Run `netpolicy.resolve_checked` in the DNS threads, because getaddrinfo blocks."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_state().dns_executor, netpolicy.resolve_checked, host, port)


class CheckedResolver(AbstractResolver):
    """aiohttp resolver that only returns addresses the destination policy allows."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = _checked_addresses.get({}).get((host, port))
        if addresses is None:
            addresses = await _resolve_checked(host, port)

        results = [_resolve_result(host, address, port) for address in addresses]
        if family != socket.AF_UNSPEC:
            results = [result for result in results if result["family"] == family]
        return results

    async def close(self) -> None:
        return None


def _resolve_result(host: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
    return {"hostname": host, "host": address, "port": port, "family": family, "proto": 0, "flags": flags}


# --- per-process state -----------------------------------------------------------------------


class _LoopState:
    """The event loop, pooled session and DNS threads of one process and thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.dns_executor = ThreadPoolExecutor(max_workers=DNS_THREADS, thread_name_prefix="delivery-dns")
        self.session: aiohttp.ClientSession | None = None

    def get_session(self) -> aiohttp.ClientSession:
        """Return the pooled session, creating it on first use (inside the running loop)."""
        if self.session is None or self.session.closed:
            self.session = _new_session()
        return self.session

    def close(self) -> None:
        if self.session is not None and not self.session.closed:
            self.loop.run_until_complete(self.session.close())
        self.loop.close()
        self.dns_executor.shutdown(wait=False, cancel_futures=True)


_local = threading.local()


def _state() -> _LoopState:
    """Return this thread's loop state, replacing one inherited through fork.

    A state inherited from the parent process is dropped without closing it: closing would
    touch sockets and TLS sessions the parent still uses.
    """
    state = getattr(_local, "state", None)
    if state is None or state.pid != os.getpid():
        state = _LoopState()
        _local.state = state
    return state


def _new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=POOL_LIMIT,
        limit_per_host=POOL_LIMIT_PER_HOST,
        keepalive_timeout=KEEPALIVE_SECONDS,
        resolver=CheckedResolver(),
        use_dns_cache=False,  # every attempt resolves and checks the host again
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT},
        skip_auto_headers=("Accept-Encoding",),
        auto_decompress=False,  # a small compressed body must not expand in memory
        cookie_jar=aiohttp.DummyCookieJar(),  # no cookie may pass from one receiver to another
        trust_env=False,  # no proxy from the environment
        raise_for_status=False,
    )


@atexit.register
def close() -> None:
    """Close this thread's pooled session and event loop, if this process created them."""
    state = getattr(_local, "state", None)
    if state is not None and state.pid == os.getpid() and not state.loop.is_closed():
        state.close()
    _local.state = None


# --- sending ---------------------------------------------------------------------------------


def send_many(requests: list[OutgoingRequest]) -> list[AttemptResult]:
    """Send every request concurrently and return their results in the same order.

    Blocks until all attempts have finished, each within the delivery deadline. Requests
    from the same thread share one event loop and one connection pool.
    """
    if not requests:
        return []
    state = _state()
    return state.loop.run_until_complete(_send_all(state, requests))


def send(request: OutgoingRequest) -> AttemptResult:
    """Send one request; see `send_many`."""
    return send_many([request])[0]


async def _send_all(state: _LoopState, requests: list[OutgoingRequest]) -> list[AttemptResult]:
    session = state.get_session()
    return list(await asyncio.gather(*(_attempt(session, request) for request in requests)))


async def _attempt(session: aiohttp.ClientSession, request: OutgoingRequest) -> AttemptResult:
    started_at = datetime.now(timezone.utc)
    started = time.monotonic()
    deadline = float(getattr(settings, "DELIVERY_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))
    stage = ["preparing the request"]  # what the attempt is doing, for the timeout message

    try:
        async with asyncio.timeout(deadline):
            response = await _exchange(session, request, stage)
    except TimeoutError:
        failure = _Failure(TIMEOUT, f"timed out after {deadline:g} s {stage[0]}")
        return _failed(failure, started_at, started)
    except _Failure as failure:
        return _failed(failure, started_at, started)
    except Exception as exc:  # noqa: BLE001 - every failure must become an attempt result
        return _failed(_classify(exc), started_at, started)
    return _answered(response, started_at, started)


async def _exchange(session: aiohttp.ClientSession, request: OutgoingRequest, stage: list[str]) -> _Response:
    """Check the destination, POST the body and read at most MAX_READ_BYTES of the response."""
    url = _normalized_url(request.url)
    stage[0] = "during the dns lookup"
    addresses = await _check_destination(url)
    _checked_addresses.set({(url.raw_host, url.port): addresses})

    stage[0] = "waiting for the response"
    connect_timeout = float(getattr(settings, "DELIVERY_CONNECT_TIMEOUT_SECONDS", DEFAULT_CONNECT_TIMEOUT_SECONDS))
    # The pool wait counts only against the total deadline; sock_connect covers TCP and TLS.
    timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=connect_timeout)
    try:
        async with session.post(
            url, data=request.body, headers=request.headers, allow_redirects=False, timeout=timeout
        ) as response:
            stage[0] = f"reading the response body (status {response.status})"
            body, truncated = await _read_capped(response)
            headers = response.headers
            return _Response(response.status, body, truncated, headers.get("Retry-After"), headers.get("Location"))
    except aiohttp.ConnectionTimeoutError:
        raise _Failure(TIMEOUT, f"connection timed out after {connect_timeout:g} s") from None


def _normalized_url(raw_url: str) -> URL:
    """Normalize the stored URL again, because a row may predate or bypass validation."""
    try:
        return URL(netpolicy.normalize_url(raw_url), encoded=True)
    except netpolicy.DestinationError as exc:
        raise _Failure(BLOCKED_DESTINATION, exc.message) from None


async def _check_destination(url: URL) -> list[str]:
    try:
        return await _resolve_checked(url.raw_host, url.port)
    except netpolicy.DestinationError as exc:
        logger.warning("delivery to host %s failed the destination check: %s", url.raw_host, exc.code)
        kind = DNS if exc.code == "dns_failed" else BLOCKED_DESTINATION
        raise _Failure(kind, exc.message) from None


async def _read_capped(response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """Read at most MAX_READ_BYTES; return the first MAX_STORED_BYTES and whether more was sent.

    A body that is not read to the end is closed with its connection rather than released to
    the pool, so the unread rest is never received.
    """
    body = bytearray()
    while len(body) < MAX_READ_BYTES:
        chunk = await response.content.read(min(READ_CHUNK_BYTES, MAX_READ_BYTES - len(body)))
        if not chunk:
            break
        body += chunk

    complete = response.content.at_eof()
    if not complete:
        response.close()
    return bytes(body[:MAX_STORED_BYTES]), not complete or len(body) > MAX_STORED_BYTES


def _answered(response: _Response, started_at: datetime, started: float) -> AttemptResult:
    status = response.status_code
    if 200 <= status < 300:
        kind, message = None, ""
    elif 300 <= status < 400 and response.location:
        kind, message = HTTP_STATUS, f"redirect to {_echo(response.location)} not followed"
    else:
        kind, message = HTTP_STATUS, f"receiver returned http {status}"

    return AttemptResult(
        status_code=status,
        error_kind=kind,
        error_message=message,
        duration_ms=_elapsed_ms(started),
        response_body=response.body.decode("utf-8", errors="replace"),
        truncated=response.truncated,
        retry_after=_echo(response.retry_after) if response.retry_after is not None else None,
        started_at=started_at,
    )


def _failed(failure: _Failure, started_at: datetime, started: float) -> AttemptResult:
    return AttemptResult(
        status_code=None,
        error_kind=failure.kind,
        error_message=failure.message,
        duration_ms=_elapsed_ms(started),
        response_body="",
        truncated=False,
        retry_after=None,
        started_at=started_at,
    )


def _classify(exc: Exception) -> _Failure:
    """Map a client exception to an error kind and a short message without secrets."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return _Failure(TLS, f"tls certificate verification failed: {_ssl_reason(exc.certificate_error)}")
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return _Failure(TLS, f"tls handshake failed: {_ssl_reason(exc)}")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return _Failure(DNS, "dns lookup failed")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _Failure(CONNECTION, f"connection failed: {_os_reason(exc)}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return _Failure(CONNECTION, "receiver closed the connection before responding")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _Failure(CONNECTION, "response body was cut off or malformed")
    if isinstance(exc, aiohttp.ClientResponseError):
        return _Failure(CONNECTION, f"invalid http response: {_echo(str(exc.message)).lower()}")
    if isinstance(exc, (aiohttp.ClientError, OSError)):
        return _Failure(CONNECTION, f"connection failed: {type(exc).__name__}")

    logger.error("delivery attempt failed with an unexpected %s", type(exc).__name__, exc_info=exc)
    return _Failure(CONNECTION, f"request failed with an unexpected {type(exc).__name__}")


def _os_reason(exc: OSError) -> str:
    # The errno text only: the exception text of asyncio repeats the address list.
    return os.strerror(exc.errno).lower() if exc.errno else "could not connect"


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or type(exc).__name__
    return str(reason).lower()


def _echo(value: str) -> str:
    """Make a receiver-supplied header value safe and short enough to store and show."""
    printable = "".join(char if char.isprintable() else "?" for char in value)
    return printable[:MAX_HEADER_ECHO_CHARS]


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
