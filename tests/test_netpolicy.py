"""Destination address policy: URL normalization, the deny table and resolution checks.

DNS is stubbed for names under `.test`; no test here opens a connection.
"""

import ipaddress

import pytest

from endpoints import netpolicy
from endpoints.netpolicy import DestinationError
from tests.receivers import install_stub_resolver

REAL_RESOLVE = netpolicy.resolve  # captured at import, before the fixture replaces it

INVALID = "invalid_url"
BLOCKED = "blocked_destination"

DNS_TABLE = {
    "receiver.test": ["127.0.0.1"],
    "xn--bcher-kva.test": ["127.0.0.1"],
    "public.test": ["8.8.8.8", "2001:4860:4860::8888"],
    "meta.attacker.test": ["169.254.169.254"],
    "loop.attacker.test": ["127.0.0.2"],
    "lan.attacker.test": ["10.0.0.7"],
    "mixed.attacker.test": ["127.0.0.1", "10.0.0.7"],
    "v6loop.attacker.test": ["::1"],
    "mapped.attacker.test": ["::ffff:127.0.0.2"],
    "nat64.attacker.test": ["64:ff9b::a9fe:a9fe"],
    "cgnat.attacker.test": ["100.64.0.1"],
    "empty.test": [],
}


@pytest.fixture(autouse=True)
def dns(monkeypatch, settings):
    return install_stub_resolver(monkeypatch, settings, DNS_TABLE)


REJECTED_URLS = [
    # Loopback, in every spelling the system resolver accepts.
    ("http://127.0.0.2/", BLOCKED),
    ("http://127.0.0.2:8080/", BLOCKED),
    ("http://127.255.255.254/", BLOCKED),
    ("http://127.2/", INVALID),
    ("http://127.0.2/", INVALID),
    ("http://127.1:8080/", INVALID),
    ("http://2130706434/", INVALID),
    ("http://2130706433/", INVALID),
    ("http://0x7f000002/", INVALID),
    ("http://0X7F000001/", INVALID),
    ("http://0177.0.0.2/", INVALID),
    ("http://0177.0000.0000.0001/", INVALID),
    ("http://0x7f.0.0.1/", INVALID),
    ("http://0x7f.1/", INVALID),
    ("http://127.000.000.001/", INVALID),
    ("http://127.0.0.1.1/", INVALID),
    ("http://0/", INVALID),
    ("http://127\u30020\u30020\u30022/", INVALID),
    ("http://\u2460\u2461\u2466.0.0.2/", INVALID),
    ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff12/", INVALID),
    ("http://localhost/", BLOCKED),
    ("http://LOCALHOST:8080/", BLOCKED),
    ("http://localhost./", BLOCKED),
    ("http://api.localhost/", BLOCKED),
    ("http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/", BLOCKED),
    ("http://printer.local/", BLOCKED),
    # Unspecified.
    ("http://0.0.0.0/", BLOCKED),
    ("http://0.0.0.0:8080/", BLOCKED),
    ("http://0.1.2.3/", BLOCKED),
    ("http://[::]/", BLOCKED),
    ("http://[0:0:0:0:0:0:0:0]:8080/", BLOCKED),
    # IPv6 loopback and the IPv4-mapped, IPv4-compatible, NAT64 and 6to4 forms.
    ("http://[::1]/", BLOCKED),
    ("http://[0:0:0:0:0:0:0:1]:8080/", BLOCKED),
    ("http://[::ffff:127.0.0.2]/", BLOCKED),
    ("http://[::ffff:7f00:2]:8080/", BLOCKED),
    ("http://[0:0:0:0:0:ffff:127.0.0.2]/", BLOCKED),
    ("http://[::ffff:169.254.169.254]/", BLOCKED),
    ("http://[::ffff:10.0.0.1]/", BLOCKED),
    ("http://[::127.0.0.1]/", BLOCKED),
    ("http://[::169.254.169.254]/", BLOCKED),
    ("http://[64:ff9b::a9fe:a9fe]/", BLOCKED),
    ("http://[64:ff9b::127.0.0.1]/", BLOCKED),
    ("http://[64:ff9b:1::a9fe:a9fe]/", BLOCKED),
    ("http://[2002:a9fe:a9fe::]/", BLOCKED),
    ("http://[2002:7f00:1::1]/", BLOCKED),
    ("http://[fe80::1]/", BLOCKED),
    ("http://[fe80::1%25eth0]/", INVALID),
    ("http://[fc00::1]/", BLOCKED),
    ("http://[fd12:3456::1]/", BLOCKED),
    ("http://[fec0::1]/", BLOCKED),
    ("http://[ff02::1]/", BLOCKED),
    ("http://[ff0e::1]/", BLOCKED),
    ("http://[2001:db8::1]/", BLOCKED),
    ("http://[100::1]/", BLOCKED),
    ("http://[2001::1]/", BLOCKED),
    # Private, shared (CGNAT), reserved, documentation, benchmarking, multicast, broadcast.
    ("http://10.0.0.7/", BLOCKED),
    ("http://172.16.0.1/", BLOCKED),
    ("http://172.31.255.254/", BLOCKED),
    ("http://192.168.1.1/", BLOCKED),
    ("http://100.64.0.1/", BLOCKED),
    ("http://100.127.255.254/", BLOCKED),
    ("http://192.0.0.8/", BLOCKED),
    ("http://192.0.2.1/", BLOCKED),
    ("http://198.18.0.1/", BLOCKED),
    ("http://198.51.100.7/", BLOCKED),
    ("http://203.0.113.9/", BLOCKED),
    ("http://224.0.0.1/", BLOCKED),
    ("http://239.255.255.250/", BLOCKED),
    ("http://240.0.0.1/", BLOCKED),
    ("http://255.255.255.255/", BLOCKED),
    # Cloud metadata services.
    ("http://169.254.169.254/latest/meta-data/", BLOCKED),
    ("http://169.254.43518/", INVALID),
    ("http://2852039166/", INVALID),
    ("http://0251.0376.0251.0376/", INVALID),
    ("http://0xa9fea9fe/", INVALID),
    ("http://[fd00:ec2::254]/latest/meta-data/", BLOCKED),
    ("http://metadata.google.internal/computeMetadata/v1/", BLOCKED),
    ("http://METADATA.GOOGLE.INTERNAL./", BLOCKED),
    ("http://metadata/computeMetadata/v1/", BLOCKED),
    ("http://instance-data.ec2.internal/", BLOCKED),
    ("http://168.63.129.16/", BLOCKED),
    ("http://100.100.100.200/", BLOCKED),
    ("http://192.0.0.192/", BLOCKED),
    # Public-looking names that resolve to blocked addresses.
    ("https://meta.attacker.test/h", BLOCKED),
    ("https://loop.attacker.test/h", BLOCKED),
    ("https://lan.attacker.test/h", BLOCKED),
    ("http://mixed.attacker.test/", BLOCKED),
    ("http://v6loop.attacker.test/", BLOCKED),
    ("http://mapped.attacker.test/", BLOCKED),
    ("http://nat64.attacker.test/", BLOCKED),
    ("http://cgnat.attacker.test/", BLOCKED),
    # Parser confusion.
    ("http://127.0.0.2:8080\\@receiver.test:8081/h", INVALID),
    ("http://receiver.test\\@127.0.0.2/", INVALID),
    ("http://receiver.test/a\\b", INVALID),
    (" http://127.0.0.2:8080/", INVALID),
    ("http://receiver.test/ ", INVALID),
    ("http://receiver.test\t/h", INVALID),
    ("http://receiver.test/h\n", INVALID),
    ("http://rece iver.test/", INVALID),
    ("http://receiver.test/\u00a0", INVALID),
    ("http://receiver.test\u200b/", INVALID),
    ("http://local\u00adhost/", INVALID),
    ("http://receiver.test\x00.example/", INVALID),
    ("https://receiver.test/a\r\nX-Injected: 1", INVALID),
    ("http://receiver.test@127.0.0.2:8080/", INVALID),
    ("http://user:pass@receiver.test/", INVALID),
    ("http://@receiver.test/", INVALID),
    ("http://127.0.0.2#@receiver.test/", INVALID),
    ("http://receiver.test/h#fragment", INVALID),
    ("http://receiver%2etest/", INVALID),
    ("http://%31%32%37.0.0.1/", INVALID),
    ("http://[::1/", INVALID),
    ("http://[::1]x/", INVALID),
    ("http://[not-ipv6]/", INVALID),
    ("http://::1/", INVALID),
    ("http://receiver.test:0/", INVALID),
    ("http://receiver.test:65536/", INVALID),
    ("http://receiver.test:-1/", INVALID),
    ("http://receiver.test:80a/", INVALID),
    ("http://receiver.test:/", INVALID),
    ("http://receiver..test/", INVALID),
    ("http://receiver!.test/", INVALID),
    ("http:///h", INVALID),
    ("http://", INVALID),
    ("http:receiver.test/h", INVALID),
    ("//receiver.test/h", INVALID),
    ("receiver.test/h", INVALID),
    ("", INVALID),
    ("http://receiver.test/" + "a" * 2100, INVALID),
    # Other schemes.
    ("gopher://127.0.0.1:6379/_x", INVALID),
    ("dict://127.0.0.1:11211/stats", INVALID),
    ("file:///etc/passwd", INVALID),
    ("ftp://receiver.test/", INVALID),
    ("data:text/plain,hi", INVALID),
    ("javascript:alert(1)", INVALID),
    ("ws://receiver.test/", INVALID),
    ("https+unix://receiver.test/", INVALID),
]


@pytest.mark.parametrize(("url", "code"), REJECTED_URLS, ids=[repr(url)[:60] for url, _ in REJECTED_URLS])
def test_validate_destination_rejects(url, code):
    with pytest.raises(DestinationError) as excinfo:
        netpolicy.validate_destination(url)

    assert excinfo.value.code == code


def test_rejected_url_table_is_large():
    assert len(REJECTED_URLS) >= 70


@pytest.mark.parametrize("value", [None, 42, b"http://receiver.test/", ["http://receiver.test/"]])
def test_validate_destination_rejects_non_strings(value):
    with pytest.raises(DestinationError) as excinfo:
        netpolicy.validate_destination(value)

    assert excinfo.value.code == INVALID
    assert str(excinfo.value) == "url must be a string"


ACCEPTED_URLS = [
    ("http://receiver.test/h", "http://receiver.test/h"),
    ("HTTP://receiver.test/h", "http://receiver.test/h"),
    ("https://Receiver.TEST:443/h", "https://receiver.test/h"),
    ("http://receiver.test:80/h", "http://receiver.test/h"),
    ("http://receiver.test.:8080", "http://receiver.test:8080/"),
    ("http://receiver.test/h?b=2&a=1", "http://receiver.test/h?b=2&a=1"),
    ("http://receiver.test/h?", "http://receiver.test/h"),
    ("http://receiver.test/caf\u00e9?q=\u00fc", "http://receiver.test/caf%C3%A9?q=%C3%BC"),
    ("http://receiver.test/a%20b", "http://receiver.test/a%20b"),
    ("http://b\u00fccher.test/h", "http://xn--bcher-kva.test/h"),
    ("http://127.0.0.1:8080/h", "http://127.0.0.1:8080/h"),
    ("https://public.test/webhooks", "https://public.test/webhooks"),
    ("https://[2001:4860:4860:0:0:0:0:8888]:8443/h", "https://[2001:4860:4860::8888]:8443/h"),
    ("http://8.8.8.8/h", "http://8.8.8.8/h"),
]


@pytest.mark.parametrize(("url", "normalized"), ACCEPTED_URLS)
def test_validate_destination_accepts(url, normalized):
    assert netpolicy.validate_destination(url) == normalized


def test_normalized_url_is_stable():
    for _, normalized in ACCEPTED_URLS:
        assert netpolicy.normalize_url(normalized) == normalized


def test_allowlisted_name_accepted_only_with_allowlist(settings):
    assert netpolicy.validate_destination("http://receiver.test/h") == "http://receiver.test/h"

    settings.SSRF_ALLOWED_CIDRS = []
    with pytest.raises(DestinationError) as excinfo:
        netpolicy.validate_destination("http://receiver.test/h")
    assert excinfo.value.code == BLOCKED


def test_allowlist_accepts_strings(settings):
    settings.SSRF_ALLOWED_CIDRS = ["127.0.0.0/30"]

    assert netpolicy.check_address("127.0.0.2") is None
    assert netpolicy.check_address("127.0.0.4") == "loopback address"


def test_local_names_rejected_before_lookup(dns):
    for url in ["http://localhost/", "http://metadata.google.internal/", "http://db.internal/"]:
        with pytest.raises(DestinationError):
            netpolicy.validate_destination(url)

    assert dns.calls == []


def test_ip_literal_checked_without_lookup(dns):
    assert netpolicy.resolve_checked("127.0.0.1", 80) == ["127.0.0.1"]
    assert netpolicy.resolve_checked("::ffff:127.0.0.1", 80) == ["::ffff:7f00:1"]

    assert dns.calls == []


def test_unknown_name_is_dns_failure():
    with pytest.raises(DestinationError) as excinfo:
        netpolicy.validate_destination("http://missing.test/h")

    assert excinfo.value.code == "dns_failed"
    assert str(excinfo.value) == "dns lookup of missing.test failed: name or service not known"


def test_empty_answer_is_dns_failure():
    with pytest.raises(DestinationError) as excinfo:
        netpolicy.resolve_checked("empty.test", 443)

    assert excinfo.value.code == "dns_failed"
    assert str(excinfo.value) == "dns lookup of empty.test returned no addresses"


def test_mixed_answer_rejected_whole():
    with pytest.raises(DestinationError) as excinfo:
        netpolicy.resolve_checked("mixed.attacker.test", 443)

    assert excinfo.value.code == BLOCKED
    assert str(excinfo.value) == (
        "destination mixed.attacker.test resolves to 10.0.0.7, which is not allowed: private address"
    )


def test_blocked_literal_message():
    with pytest.raises(DestinationError) as excinfo:
        netpolicy.validate_destination("http://[::ffff:127.0.0.2]:8080/")

    assert str(excinfo.value) == (
        "destination ::ffff:7f00:2 is not allowed: loopback address in ipv6 form; use a public address"
    )


def test_scheme_message():
    with pytest.raises(DestinationError) as excinfo:
        netpolicy.normalize_url("gopher://127.0.0.1:6379/_x")

    assert str(excinfo.value) == "url scheme must be http or https, e.g. https://example.com/webhook"


def test_numeric_host_message():
    with pytest.raises(DestinationError) as excinfo:
        netpolicy.normalize_url("http://2130706433/")

    assert str(excinfo.value) == "url host '2130706433' is not a canonical ipv4 address; write it as a.b.c.d"


# The deny table, including the addresses that Python 3.11's `is_global` gets wrong:
# 100.64.0.0/10 is neither private nor global there, and NAT64, 6to4, IPv4-compatible,
# site-local, global-scope multicast and 168.63.129.16 all report is_global == True.
DENIED_ADDRESSES = [
    ("0.0.0.0", "unspecified address"),
    ("0.255.255.255", "unspecified address"),
    ("10.1.2.3", "private address"),
    ("100.64.0.1", "shared address (carrier-grade nat)"),
    ("100.100.100.200", "shared address (carrier-grade nat)"),
    ("127.0.0.1", "loopback address"),
    ("127.0.0.2", "loopback address"),
    ("169.254.169.254", "cloud metadata address"),
    ("169.254.1.1", "link-local address"),
    ("168.63.129.16", "cloud metadata address"),
    ("172.16.0.1", "private address"),
    ("172.31.0.1", "private address"),
    ("192.0.0.170", "reserved address"),
    ("192.0.2.1", "documentation address"),
    ("192.88.99.1", "reserved address"),
    ("192.168.0.1", "private address"),
    ("198.18.0.1", "benchmarking address"),
    ("198.19.255.255", "benchmarking address"),
    ("198.51.100.1", "documentation address"),
    ("203.0.113.1", "documentation address"),
    ("224.0.0.251", "multicast address"),
    ("239.1.1.1", "multicast address"),
    ("240.0.0.1", "reserved address"),
    ("255.255.255.255", "broadcast address"),
    ("::", "unspecified address"),
    ("::1", "loopback address"),
    ("::127.0.0.1", "ipv4-compatible address"),
    ("::169.254.169.254", "ipv4-compatible address"),
    ("::8.8.8.8", "ipv4-compatible address"),
    ("::ffff:127.0.0.1", "loopback address in ipv6 form"),
    ("::ffff:7f00:2", "loopback address in ipv6 form"),
    ("::ffff:169.254.169.254", "cloud metadata address in ipv6 form"),
    ("::ffff:10.0.0.1", "private address in ipv6 form"),
    ("::ffff:0:127.0.0.1", "reserved address"),
    ("64:ff9b::a9fe:a9fe", "cloud metadata address in ipv6 form"),
    ("64:ff9b::127.0.0.1", "loopback address in ipv6 form"),
    ("64:ff9b::10.0.0.1", "private address in ipv6 form"),
    ("64:ff9b:1::a9fe:a9fe", "nat64 address"),
    ("2002:a9fe:a9fe::", "cloud metadata address in ipv6 form"),
    ("2002:7f00:1::1", "loopback address in ipv6 form"),
    ("2002:c0a8:101::1", "private address in ipv6 form"),
    ("100::1", "discard-only address"),
    ("2001::1", "reserved address"),
    ("2001:2::1", "reserved address"),
    ("2001:db8::1", "documentation address"),
    ("3fff::1", "documentation address"),
    ("fd00:ec2::254", "cloud metadata address"),
    ("fc00::1", "private address"),
    ("fd12:3456::1", "private address"),
    ("fe80::1", "link-local address"),
    ("fe80::1%eth0", "link-local address"),
    ("fec0::1", "site-local address"),
    ("ff02::1", "multicast address"),
    ("ff0e::1", "multicast address"),
    ("4000::1", "reserved address"),
    ("not-an-address", "invalid address"),
]


@pytest.mark.parametrize(("address", "reason"), DENIED_ADDRESSES)
def test_check_address_denies(address, reason, settings):
    settings.SSRF_ALLOWED_CIDRS = []

    assert netpolicy.check_address(address) == reason


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
     "2002:808:808::1"],
)
def test_check_address_allows_global(address, settings):
    settings.SSRF_ALLOWED_CIDRS = []

    assert netpolicy.check_address(address) is None


def test_allowlist_is_the_only_exception(settings):
    settings.SSRF_ALLOWED_CIDRS = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("fd00::/8")]

    assert netpolicy.check_address("127.0.0.1") is None
    assert netpolicy.check_address("::ffff:127.0.0.1") is None
    assert netpolicy.check_address("fd00::5") is None
    assert netpolicy.check_address("127.0.0.2") == "loopback address"
    assert netpolicy.check_address("::1") == "loopback address"


def test_allowlist_ignored_for_translated_forms(settings):
    settings.SSRF_ALLOWED_CIDRS = [ipaddress.ip_network("127.0.0.1/32")]

    assert netpolicy.check_address("64:ff9b::127.0.0.1") == "loopback address in ipv6 form"
    assert netpolicy.check_address("2002:7f00:1::1") == "loopback address in ipv6 form"


def test_real_resolver_returns_literals():
    assert REAL_RESOLVE("127.0.0.1", 80) == ["127.0.0.1"]
    assert REAL_RESOLVE("::1", 443) == ["::1"]
