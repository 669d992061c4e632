"""The delivery HTTP module against real receivers on 127.0.0.1 and canaries on 127.0.0.2/3.

Only DNS is stubbed. The deadline is 2 s and the connect timeout 1 s in every test here.
"""

import ipaddress
import socket
import threading
import time
from datetime import timezone
from pathlib import Path

import pytest

from deliveries import http
from deliveries.http import OutgoingRequest
from endpoints import netpolicy
from tests.receivers import (
    RawReceiver,
    StubResolver,
    answers_in_turn,
    delayed,
    redirect,
    respond,
    self_signed_tls_context,
    stream_chunked,
    stream_declared_length,
    trickle_body,
    trickle_headers,
)

DEADLINE = 2.0  # seconds, the total deadline of an attempt in these tests
GIB = 1024**3


@pytest.fixture(autouse=True)
def delivery_settings(settings):
    settings.SSRF_ALLOWED_CIDRS = [ipaddress.ip_network("127.0.0.1/32")]
    settings.DELIVERY_TIMEOUT_SECONDS = DEADLINE
    settings.DELIVERY_CONNECT_TIMEOUT_SECONDS = 1.0


@pytest.fixture(scope="module", autouse=True)
def close_pool():
    yield
    http.close()


@pytest.fixture
def dns(monkeypatch):
    resolver = StubResolver({"receiver.test": ["127.0.0.1"]})
    monkeypatch.setattr(netpolicy, "resolve", resolver)
    return resolver


@pytest.fixture
def raw_receiver():
    server = RawReceiver()
    yield server
    server.close()


def post(url: str, **headers: str) -> http.AttemptResult:
    return http.send(OutgoingRequest(url=url, body=b'{"n": 1}', headers={"content-type": "application/json", **headers}))


def canary_url(canary, path: str = "/") -> str:
    return f"http://{canary.host}:{canary.port}{path}"


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("VmRSS missing from /proc/self/status")


def test_success_2xx(raw_receiver):
    raw_receiver.routes["/ok"] = respond(200, b"thanks")

    result = post(raw_receiver.url("/ok"), **{"x-tenant-header": "1"})

    assert result.status_code == 200
    assert result.error_kind is None
    assert result.error_message == ""
    assert result.response_body == "thanks"
    assert result.truncated is False
    assert result.retry_after is None
    assert result.started_at.tzinfo == timezone.utc
    assert 0 <= result.duration_ms < 2000


def test_request_sent_as_given(raw_receiver):
    post(raw_receiver.url("/ok"), **{"x-tenant-header": "1"})

    [request] = raw_receiver.requests
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert request.method == "POST"
    assert request.body == b'{"n": 1}'
    assert headers["content-type"] == "application/json"
    assert headers["x-tenant-header"] == "1"
    assert headers["user-agent"] == "Praeto-Dispatcher/1.0"
    assert "accept-encoding" not in headers
    assert "cookie" not in headers


def test_send_many_empty():
    assert http.send_many([]) == []


def test_named_host_connects_to_checked_address(raw_receiver, dns):
    result = post(f"http://receiver.test:{raw_receiver.port}/ok")

    assert result.status_code == 200
    assert raw_receiver.requests[0].headers["Host"] == f"receiver.test:{raw_receiver.port}"
    assert dns.calls == ["receiver.test"]


def test_error_status_body_truncated(raw_receiver):
    raw_receiver.routes["/fail"] = respond(500, b"x" * 10_000)

    result = post(raw_receiver.url("/fail"))

    assert result.status_code == 500
    assert result.error_kind == "http_status"
    assert result.error_message == "receiver returned http 500"
    assert result.response_body == "x" * 4096
    assert result.truncated is True


def test_body_decoded_with_replacement(raw_receiver):
    raw_receiver.routes["/utf8"] = respond(400, "\u00e9".encode() * 3000)

    result = post(raw_receiver.url("/utf8"))

    assert result.error_kind == "http_status"
    assert result.response_body.startswith("\u00e9" * 100)
    assert len(result.response_body.encode()) <= 4096 + 3
    assert result.truncated is True


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_not_followed(raw_receiver, canaries, status):
    location = canary_url(canaries[0], "/latest/meta-data/")
    raw_receiver.routes["/redir"] = redirect(status, location)

    result = post(raw_receiver.url("/redir"))

    assert result.status_code == status
    assert result.error_kind == "http_status"
    assert result.error_message == f"redirect to {location} not followed"
    assert len(raw_receiver.requests) == 1
    assert [canary.connections for canary in canaries] == [0, 0]


def test_name_resolving_to_canaries_blocked(canaries, dns):
    dns.table["loop2.attacker.test"] = ["127.0.0.2"]
    dns.table["loop3.attacker.test"] = ["127.0.0.3"]
    urls = [f"http://loop{n}.attacker.test:{canary.port}/" for n, canary in zip((2, 3), canaries)]

    results = http.send_many([OutgoingRequest(url, b"{}", {}) for url in urls])

    assert [result.error_kind for result in results] == ["blocked_destination", "blocked_destination"]
    assert results[0].error_message == (
        "destination loop2.attacker.test resolves to 127.0.0.2, which is not allowed: loopback address"
    )
    assert [result.status_code for result in results] == [None, None]
    assert [result.response_body for result in results] == ["", ""]
    assert [canary.connections for canary in canaries] == [0, 0]


def test_mixed_answer_blocked(raw_receiver, canaries, dns):
    dns.table["mixed.attacker.test"] = ["127.0.0.1", "10.0.0.7"]
    dns.table["mixed2.attacker.test"] = ["127.0.0.1", "127.0.0.2"]

    first = post(f"http://mixed.attacker.test:{raw_receiver.port}/")
    second = post(f"http://mixed2.attacker.test:{canaries[0].port}/")

    assert first.error_kind == "blocked_destination"
    assert second.error_kind == "blocked_destination"
    assert raw_receiver.requests == []
    assert canaries[0].connections == 0


def test_dns_rebinding_after_validation_blocked(canaries, dns):
    dns.table["rebind.attacker.test"] = answers_in_turn(["127.0.0.1"], ["127.0.0.2"])
    url = f"http://rebind.attacker.test:{canaries[0].port}/"
    assert netpolicy.validate_destination(url) == url

    result = post(url)

    assert result.error_kind == "blocked_destination"
    assert dns.calls == ["rebind.attacker.test", "rebind.attacker.test"]
    assert canaries[0].connections == 0


def test_connection_uses_the_checked_answer(raw_receiver, dns):
    # A second lookup would return 127.0.0.2, where nothing listens on the receiver's port.
    dns.table["rebind.attacker.test"] = answers_in_turn(["127.0.0.1"], ["127.0.0.2"])

    result = post(f"http://rebind.attacker.test:{raw_receiver.port}/ok")

    assert result.status_code == 200
    assert dns.calls == ["rebind.attacker.test"]


SEEDED_URLS = [
    "http://127.0.0.2:{port}/",
    "http://[::ffff:127.0.0.2]:{port}/",
    "http://[::ffff:7f00:2]:{port}/",
    "http://[0:0:0:0:0:ffff:127.0.0.2]:{port}/",
    "http://2130706434:{port}/",
    "http://0x7f000002:{port}/",
    "http://0177.0.0.2:{port}/",
    "http://127.2:{port}/",
    "http://localhost:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::]:{port}/",
    "http://[::1]:{port}/",
    "http://127.0.0.2:{port}\\@receiver.test/",
    "http://receiver.test@127.0.0.2:{port}/",
    "gopher://127.0.0.2:{port}/_x",
]


@pytest.mark.parametrize("template", SEEDED_URLS)
def test_stored_url_checked_at_send_time(canaries, dns, template):
    result = post(template.format(port=canaries[0].port))

    assert result.error_kind == "blocked_destination"
    assert result.status_code is None
    assert canaries[0].connections == 0


SLOW_RESPONSES = [
    ("body", trickle_body(interval=1.0), "timed out after 2 s reading the response body (status 200)"),
    ("headers", trickle_headers(interval=1.0), "timed out after 2 s waiting for the response"),
]


@pytest.mark.parametrize(("responder", "message"), [slow[1:] for slow in SLOW_RESPONSES],
                         ids=[slow[0] for slow in SLOW_RESPONSES])
def test_trickled_response_times_out(raw_receiver, responder, message):
    raw_receiver.routes["/trickle"] = responder

    started = time.monotonic()
    result = post(raw_receiver.url("/trickle"))
    elapsed = time.monotonic() - started

    assert result.error_kind == "timeout"
    assert result.error_message == message
    assert result.status_code is None
    assert DEADLINE - 0.1 < elapsed < DEADLINE + 1


def test_hanging_dns_times_out(dns):
    release = threading.Event()
    dns.table["slow.test"] = lambda: release.wait(10) and ["127.0.0.1"]

    try:
        started = time.monotonic()
        result = post("http://slow.test/h")
        elapsed = time.monotonic() - started
    finally:
        release.set()

    assert result.error_kind == "timeout"
    assert result.error_message == "timed out after 2 s during the dns lookup"
    assert elapsed < DEADLINE + 1


def test_slow_receiver_does_not_delay_others(raw_receiver):
    raw_receiver.routes["/trickle"] = trickle_body(interval=1.0)
    raw_receiver.routes["/ok"] = respond(200, b"ok")

    slow, fast = http.send_many(
        [OutgoingRequest(raw_receiver.url("/trickle"), b"{}", {}), OutgoingRequest(raw_receiver.url("/ok"), b"{}", {})]
    )

    assert slow.error_kind == "timeout"
    assert fast.status_code == 200
    assert fast.duration_ms < 1000


HUGE_ANSWERS = [
    ("chunked-200", stream_chunked(200, 2 * GIB), 200, None),
    ("declared-10gib-200", stream_declared_length(200, 10 * GIB), 200, None),
    ("chunked-500", stream_chunked(500, 2 * GIB), 500, "http_status"),
]


@pytest.mark.parametrize(("responder", "status", "kind"), [answer[1:] for answer in HUGE_ANSWERS],
                         ids=[answer[0] for answer in HUGE_ANSWERS])
def test_huge_body_read_capped(raw_receiver, responder, status, kind):
    raw_receiver.routes["/huge"] = responder
    post(raw_receiver.url("/ok"))  # warm up the loop and the pool before measuring
    rss_before = rss_bytes()

    started = time.monotonic()
    result = post(raw_receiver.url("/huge"))
    elapsed = time.monotonic() - started

    assert result.status_code == status
    assert result.error_kind == kind
    assert result.truncated is True
    assert result.response_body == "A" * 4096
    assert elapsed < DEADLINE
    assert rss_bytes() - rss_before < 50 * 1024 * 1024


def test_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = post(f"http://127.0.0.1:{port}/h")

    assert result.error_kind == "connection"
    assert result.error_message == "connection failed: connection refused"
    assert result.status_code is None


def test_early_hangup_is_connection_error(raw_receiver):
    def hang_up(handler):
        handler.close_connection = True

    raw_receiver.routes["/hang-up"] = hang_up

    result = post(raw_receiver.url("/hang-up"))

    assert result.error_kind == "connection"
    assert result.error_message == "receiver closed the connection before responding"


def test_send_many_runs_concurrently(raw_receiver):
    for number in range(50):
        raw_receiver.routes[f"/slow/{number}"] = delayed(0.2, respond(200, str(number).encode()))
    requests = [OutgoingRequest(raw_receiver.url(f"/slow/{number}"), b"{}", {}) for number in range(50)]

    started = time.monotonic()
    results = http.send_many(requests)
    elapsed = time.monotonic() - started

    assert [result.response_body for result in results] == [str(number) for number in range(50)]
    assert all(result.status_code == 200 for result in results)
    assert elapsed < 3.0  # sequential sending would take 50 x 0.2 s = 10 s


@pytest.mark.parametrize(
    ("status", "retry_after"), [(503, "120"), (429, "Wed, 21 Oct 2026 07:28:00 GMT"), (503, "soon")]
)
def test_retry_after_captured_raw(raw_receiver, status, retry_after):
    raw_receiver.routes["/busy"] = respond(status, b"busy", {"Retry-After": retry_after})

    result = post(raw_receiver.url("/busy"))

    assert result.status_code == status
    assert result.error_kind == "http_status"
    assert result.retry_after == retry_after


def test_self_signed_certificate_rejected():
    with RawReceiver(tls=self_signed_tls_context()) as receiver:
        result = post(receiver.url("/ok"))

        assert receiver.requests == []

    assert result.error_kind == "tls"
    assert result.error_message.startswith("tls certificate verification failed")
    assert result.status_code is None


def test_deadline_read_at_call_time(raw_receiver, settings):
    settings.DELIVERY_TIMEOUT_SECONDS = 0.5
    raw_receiver.routes["/slow"] = delayed(1.5, respond(200))

    result = post(raw_receiver.url("/slow"))

    assert result.error_kind == "timeout"
    assert result.error_message == "timed out after 0.5 s waiting for the response"
