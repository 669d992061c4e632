"""Destination and header rules at the API and at delivery: blocked URLs, DNS tricks, redirects, headers.

DNS is stubbed for names under `.test`; connections go only to loopback listeners that the
tests start. Canaries on 127.0.0.2 and 127.0.0.3 must see no connection at all.
"""

import socket
import threading

import pytest
import standardwebhooks
from django.utils import timezone

from deliveries import services as delivery_services
from deliveries.models import Delivery, DeliveryAttempt
from dispatcher import crypto
from endpoints.models import Endpoint, EndpointSecret
from endpoints.secrets import generate_secret
from tests.harness import ConnectionCanary, Reply
from tests.receivers import answers_in_turn, install_stub_resolver

DNS_TABLE = {
    "receiver.test": ["127.0.0.1"],
    "meta.attacker.test": ["169.254.169.254"],
    "loop.attacker.test": ["127.0.0.2"],
    "lan.attacker.test": ["10.0.0.7"],
    "mixed.attacker.test": ["127.0.0.1", "127.0.0.2"],
    "v6loop.attacker.test": ["::1"],
    "mapped.attacker.test": ["::ffff:127.0.0.2"],
    "nat64.attacker.test": ["64:ff9b::a9fe:a9fe"],
    "cgnat.attacker.test": ["100.64.0.1"],
    "metadata-v6.attacker.test": ["fd00:ec2::254"],
}

BLOCKED_URLS = [
    # Loopback in every spelling the system resolver accepts.
    "http://127.0.0.2/", "http://127.1.2.3/", "http://127.255.255.254:8080/x", "http://2130706434/",
    "http://2130706433/", "http://0x7f000002/", "http://0x7f.0.0.2/", "http://0177.0.0.2/",
    "http://0177.0000.0000.0002/", "http://017700000002/", "http://127.2/", "http://127.0.2/",
    "http://127.0.0.2./", "http://0/", "http://0.0.0.0/", "http://0.0.0.0:8000/", "http://0.1.2.3/",
    "http://localhost/", "http://LOCALHOST:8000/", "http://localhost./", "http://api.localhost/",
    # IPv6 loopback, unspecified and IPv4 embedded in IPv6.
    "http://[::]/", "http://[::1]/", "http://[0:0:0:0:0:0:0:1]/", "http://[::ffff:127.0.0.2]/",
    "http://[::ffff:7f00:2]/", "http://[0:0:0:0:0:ffff:127.0.0.2]/", "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:10.0.0.1]/", "http://[::127.0.0.2]/", "http://[::7f00:2]/", "http://[64:ff9b::7f00:2]/",
    "http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b:1::a9fe:a9fe]/", "http://[2002:7f00:2::]/",
    "http://[2002:a9fe:a9fe::]/", "http://[::169.254.169.254]/",
    # Private, shared (CGNAT), link-local, multicast and reserved ranges.
    "http://10.0.0.1/", "http://10.255.255.255/", "http://172.16.0.1/", "http://172.31.255.254/",
    "http://192.168.0.1/", "http://192.168.1.1:8080/admin", "http://100.64.0.1/", "http://100.127.255.254/",
    "http://169.254.0.1/", "http://192.0.0.1/", "http://192.0.2.1/", "http://198.18.0.1/",
    "http://198.51.100.1/", "http://203.0.113.1/", "http://240.0.0.1/", "http://255.255.255.255/",
    "http://224.0.0.1/", "http://239.255.255.250/", "http://[fe80::1]/", "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/", "http://[fd00::1]/", "http://[ff02::1]/", "http://[fec0::1]/", "http://[2001:db8::1]/",
    "http://[100::1]/",
    # Cloud metadata services.
    "http://169.254.169.254/latest/meta-data/", "http://2852039166/", "http://169.254.43518/",
    "http://0251.0376.0251.0376/", "http://0xa9fea9fe/", "http://168.63.129.16/", "http://[fd00:ec2::254]/",
    "http://metadata.google.internal/computeMetadata/v1/", "http://metadata/", "http://instance-data.internal/",
    # Names that resolve to blocked addresses, or to a mix.
    "https://meta.attacker.test/h", "https://loop.attacker.test/", "https://lan.attacker.test/",
    "https://mixed.attacker.test/", "https://v6loop.attacker.test/", "https://mapped.attacker.test/",
    "https://nat64.attacker.test/", "https://cgnat.attacker.test/", "https://metadata-v6.attacker.test/",
    "https://unknown-name.test/",
    # Parser confusion: backslash, userinfo, fragment, whitespace, controls and percent-encoding.
    "http://127.0.0.2:80\\@receiver.test/h", "http:/\\127.0.0.2/", " http://127.0.0.2/", "http://127.0.0.2/ ",
    "http://receiver.test@127.0.0.2/", "http://user:pass@receiver.test/", "http://receiver.test\t/h",
    "http://receiver.test/h\n", "http://receiver.test/a\r\nX-Injected: 1", "http://receiver.test#@127.0.0.2/",
    "http://127.0.0.2#.receiver.test/", "http://%31%32%37.0.0.2/", "http://127%2E0%2E0%2E2/",
    "http://receiver.test /", "http://127\u30020\u30020\u30022/", "http://\u2460\u2461\u2466.0.0.2/",
    "http://[127.0.0.2]/", "http://receiver.test\u200b/", "//127.0.0.2/", "http:127.0.0.2",
    # Schemes other than http and https.
    "gopher://127.0.0.1:6379/_x", "dict://127.0.0.1:11211/stat", "file:///etc/passwd", "ftp://receiver.test/",
    "data:text/plain,hi", "javascript:alert(1)", "ldap://receiver.test/", "ws://receiver.test/",
]

BAD_HEADERS = [
    {"X-Env": "prod\r\nX-Injected: 1"},
    {"X Bad": "1"},
    {"X-Num": 5},
    {"webhook-signature": "v1,forged"},
    {"Webhook-Id": "forged"},
    {"Host": "internal"},
    {"Content-Length": "0"},
    {"Content-Type": "text/plain"},
    {"Transfer-Encoding": "chunked"},
    {"Connection": "close"},
    {"X-Big": "v" * 5 * 1024},
    {f"X-H{number}": "1" for number in range(100)},
    {"X-Null": "a\x00b"},
    {"": "empty name"},
]


@pytest.fixture(autouse=True)
def dns(monkeypatch, settings):
    return install_stub_resolver(monkeypatch, settings, DNS_TABLE)


@pytest.fixture
def owner(make_tenant):
    handle = make_tenant("ssrf")
    handle.tenant.endpoint_creates_per_hour = 100_000
    handle.tenant.save()
    return handle


def test_url_list_is_broad():
    assert len(BLOCKED_URLS) >= 70
    assert len(set(BLOCKED_URLS)) == len(BLOCKED_URLS)


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_blocked_url_rejected_at_create(owner, url):
    response = owner.client.post("/v1/endpoints", {"url": url}, format="json")

    assert response.status_code == 422, (url, response.content)
    assert response.json()["code"] in ("invalid_url", "blocked_destination", "dns_failed")
    assert Endpoint.objects.count() == 0
    assert EndpointSecret.objects.count() == 0


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_blocked_url_rejected_at_update(owner, url):
    endpoint = owner.create_endpoint("http://receiver.test/h")

    response = owner.client.patch(f"/v1/endpoints/{endpoint['id']}", {"url": url}, format="json")

    assert response.status_code == 422, (url, response.content)
    assert Endpoint.objects.get().url == "http://receiver.test/h"


def test_uppercase_scheme_is_normalised(owner):
    created = owner.create_endpoint("HTTP://Receiver.TEST/h")

    assert created["url"] == "http://receiver.test/h"


@pytest.mark.parametrize("headers", BAD_HEADERS, ids=lambda headers: next(iter(headers), "empty")[:20])
def test_bad_headers_rejected_at_create_and_update(owner, headers):
    created = owner.client.post("/v1/endpoints", {"url": "http://receiver.test/h", "headers": headers},
                                format="json")
    endpoint = owner.create_endpoint("http://receiver.test/h", headers={"X-Env": "prod"})
    updated = owner.client.patch(f"/v1/endpoints/{endpoint['id']}", {"headers": headers}, format="json")

    assert created.status_code == 422
    assert created.json()["code"] == "invalid_headers"
    assert updated.status_code == 422
    assert Endpoint.objects.get().headers == {"X-Env": "prod"}


# --- delivery ----------------------------------------------------------------------------------


class PortCanary(ConnectionCanary):
    """A connection counter on a fixed address and port, to sit beside a receiver's port."""

    def __init__(self, host: str, port: int):
        self.connections = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.host, self.port = host, port
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()


def seed_endpoint(handle, url: str, **fields) -> tuple[Endpoint, str]:
    """Insert an endpoint row directly, as if it had passed validation when DNS was benign."""
    secret = generate_secret()
    endpoint = Endpoint.objects.create(tenant=handle.tenant, url=url, **fields)
    EndpointSecret.objects.create(endpoint=endpoint, encrypted_secret=crypto.encrypt(secret))
    return endpoint, secret


def deliver_once(handle) -> Delivery:
    """Send one event and run one fan-out and dispatch in this process, where DNS is stubbed."""
    response = handle.send_event()
    assert response.status_code == 202
    delivery_services.fan_out_pending(response.json()["id"])
    delivery_services.dispatch_due()
    return Delivery.objects.get(event_id=response.json()["id"])


def assert_blocked(delivery: Delivery, canaries) -> None:
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.error_kind == "blocked_destination"
    assert attempt.status_code is None
    assert attempt.response_body == ""
    assert delivery.status == "dead"
    assert delivery.dead_reason == "blocked_destination"
    assert [canary.connections for canary in canaries] == [0, 0]


@pytest.mark.parametrize("host", ["loop.attacker.test", "meta.attacker.test", "lan.attacker.test",
                                  "mixed.attacker.test", "mapped.attacker.test", "nat64.attacker.test"])
def test_seeded_name_resolving_inside_is_blocked(owner, canaries, host):
    seed_endpoint(owner, f"http://{host}:{canaries[0].port}/")

    assert_blocked(deliver_once(owner), canaries)


@pytest.mark.parametrize("netloc", ["[::ffff:127.0.0.2]", "[::ffff:7f00:2]", "[0:0:0:0:0:ffff:127.0.0.2]",
                                    "2130706434", "0x7f000002", "0177.0.0.2", "127.2", "0.0.0.0", "127.0.0.3",
                                    "[::]"])
def test_seeded_literal_is_blocked(owner, canaries, netloc):
    seed_endpoint(owner, f"http://{netloc}:{canaries[0].port}/")

    assert_blocked(deliver_once(owner), canaries)


def test_seeded_backslash_url_is_blocked(owner, canaries, receiver):
    seed_endpoint(owner, f"http://127.0.0.2:{canaries[0].port}\\@receiver.test:{receiver.port}/h")

    assert_blocked(deliver_once(owner), canaries)
    assert receiver.received() == []


def test_rebinding_after_validation_is_blocked(owner, dns, receiver, canaries):
    """The name passed the check at create time, then resolves to a canary at delivery time."""
    dns.table["rebind.test"] = answers_in_turn(["127.0.0.1"], ["127.0.0.2"])
    owner.create_endpoint(f"http://rebind.test:{canaries[0].port}/h")

    assert_blocked(deliver_once(owner), canaries)
    assert dns.calls.count("rebind.test") == 2


def test_connection_uses_checked_address(owner, dns, receiver, canaries):
    """A later DNS response pointing at a same-port canary is never used for the connection."""
    same_port = PortCanary("127.0.0.2", receiver.port)
    try:
        dns.table["flip.test"] = answers_in_turn(["127.0.0.1"], ["127.0.0.2"], ["127.0.0.2"])
        seed_endpoint(owner, f"http://flip.test:{receiver.port}/h")
        delivery = deliver_once(owner)
    finally:
        same_port.close()

    assert delivery.status == "succeeded"
    assert len(receiver.received("/h")) == 1
    assert same_port.connections == 0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_internal_not_followed(owner, receiver, canaries, status):
    location = f"http://127.0.0.2:{canaries[0].port}/latest/meta-data/"
    receiver.script("/redir", Reply(status, b"moved", {"Location": location}))
    owner.create_endpoint(receiver.url("/redir"))

    delivery = deliver_once(owner)
    Delivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now())
    delivery_services.dispatch_due()
    delivery.refresh_from_db()

    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [attempt.status_code for attempt in attempts] == [status, status]
    assert attempts[0].error_kind == "http_status"
    assert attempts[0].error_message == f"redirect to {location} not followed"
    assert delivery.status == "retrying"
    assert len(receiver.received("/redir")) == 2
    assert [canary.connections for canary in canaries] == [0, 0]


def test_custom_headers_keep_our_signature(owner, receiver):
    headers = {"X-Env": "prod", "Authorization": "Bearer receiver-token"}
    created = owner.create_endpoint(receiver.url("/signed"), headers=headers)

    delivery = deliver_once(owner)
    request = receiver.received("/signed")[0]

    assert delivery.status == "succeeded"
    assert request.headers["x-env"] == "prod"
    assert request.headers["authorization"] == "Bearer receiver-token"
    assert request.headers["content-type"] == "application/json"
    signed = {name: request.headers[name] for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    standardwebhooks.Webhook(created["signing_secret"]).verify(request.body, signed)
