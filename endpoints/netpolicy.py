"""Destination address policy: which webhook URLs and addresses deliveries may reach.

Endpoint create and update call `validate_destination`. The delivery HTTP module calls
`normalize_url` and `resolve_checked` on every attempt, and connects only to the addresses
that `resolve_checked` returned. Every lookup goes through `resolve`, the one resolver seam,
which tests replace with a table (callers look it up through this module at call time).
"""

import ipaddress
import logging
import re
import socket
import unicodedata
from urllib.parse import quote, urlsplit

import idna
from django.conf import settings

logger = logging.getLogger(__name__)

ALLOWED_SCHEMES = {"http": 80, "https": 443}  # scheme -> default port
MAX_URL_LENGTH = 2048  # characters
MAX_HOST_LENGTH = 253  # characters, the DNS limit for a name

# Unicode categories rejected anywhere in a URL: controls, format characters (zero-width and
# bidi marks, which IDNA silently drops), separators (every kind of space), surrogates,
# private-use and unassigned code points.
_REJECTED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"}

# Characters kept as they are in the path and query. Every other character is percent-encoded
# (UTF-8), so the stored URL is plain ASCII that the HTTP client sends unchanged.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%?"

_HOST_LABEL_RE = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_LABEL_RE = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")
_CANONICAL_OCTET_RE = re.compile(r"^(?:0|[1-9][0-9]{0,2})$")

# Host names rejected before any lookup: the exact names, and every name under the suffixes.
BLOCKED_HOST_NAMES = {"localhost", "metadata", "metadata.google.internal"}
BLOCKED_HOST_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain")


class DestinationError(ValueError):
    """A URL or address that deliveries must not reach, with a stable machine `code`."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message: str) -> DestinationError:
    return DestinationError("invalid_url", message)


def _blocked(message: str) -> DestinationError:
    return DestinationError("blocked_destination", message)


# --- URL normalization -------------------------------------------------------------------


def normalize_url(raw: str) -> str:
    """Validate a webhook URL and return its normalized form, the string the client is given.

    The normalized form has a lowercase scheme and host, an ASCII (IDNA) host, IPv6 hosts
    in brackets and compressed, no default port, and a non-empty path. URLs with a fragment
    (`#`) are rejected rather than trimmed, because a receiver never receives the fragment and a
    `#` before an `@` is a known trick to make parsers disagree on the host.
    """
    _check_characters(raw)
    try:
        parts = urlsplit(raw)
    except ValueError:
        raise _invalid(f"url {raw!r} cannot be parsed; check the brackets around the host") from None
    scheme = parts.scheme
    if scheme not in ALLOWED_SCHEMES or not raw.lower().startswith(scheme + "://"):
        raise _invalid("url scheme must be http or https, e.g. https://example.com/webhook")
    if "@" in parts.netloc:
        raise _invalid("url must not contain a user name or password (@); put credentials in a header")

    host, port = _split_netloc(parts.netloc)
    host = normalize_host(host)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != ALLOWED_SCHEMES[scheme]:
        netloc = f"{netloc}:{port}"

    path = quote(parts.path or "/", safe=_PATH_SAFE)
    query = quote(parts.query, safe=_PATH_SAFE)
    normalized = f"{scheme}://{netloc}{path}?{query}" if query else f"{scheme}://{netloc}{path}"
    # Percent-encoding can make the stored form several times longer than the input.
    if len(normalized) > MAX_URL_LENGTH:
        raise _invalid(f"url is longer than {MAX_URL_LENGTH} characters once percent-encoded; shorten it")
    return normalized


def _check_characters(raw: object) -> None:
    if not isinstance(raw, str):
        raise _invalid("url must be a string")
    if not raw:
        raise _invalid("url must not be empty")
    if len(raw) > MAX_URL_LENGTH:
        raise _invalid(f"url is longer than {MAX_URL_LENGTH} characters; shorten it")
    if "\\" in raw:
        raise _invalid("url must not contain a backslash; use / in paths")
    if "#" in raw:
        raise _invalid("url must not contain a fragment (#); remove it")
    for char in raw:
        if unicodedata.category(char) in _REJECTED_CATEGORIES:
            raise _invalid(f"url contains whitespace or a control character ({ascii(char)}); remove it")


def _split_netloc(netloc: str) -> tuple[str, int | None]:
    """Split `host[:port]` or `[ipv6][:port]` without the lenient parsing of urllib."""
    if netloc.startswith("["):
        host, bracket, rest = netloc[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise _invalid(f"url host {netloc!r} is not a valid bracketed ipv6 address")
        return host, _parse_port(rest[1:]) if rest else None

    if netloc.count(":") > 1:
        raise _invalid(f"url host {netloc!r} is invalid; put ipv6 addresses in brackets")
    host, colon, port_text = netloc.partition(":")
    return host, _parse_port(port_text) if colon else None


def _parse_port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise _invalid(f"url port {text!r} is invalid; use a number from 1 to 65535")
    return int(text)


def normalize_host(host: str) -> str:
    """Return the lowercase ASCII form of a URL host, or raise DestinationError("invalid_url").

    IPv6 is returned without brackets. Hosts that only look like numbers must be a canonical
    dotted quad, because the system resolver reads `2130706433`, `0x7f000001`, `0177.0.0.1`
    and `127.1` as IPv4 addresses that `ipaddress` does not recognize.
    """
    if not host:
        raise _invalid("url has no host; use a url such as https://example.com/webhook")
    if "%" in host:
        raise _invalid(f"url host {host!r} must not be percent-encoded or carry an ipv6 zone")
    if ":" in host:
        return _normalize_ipv6(host)

    ascii_host = _to_ascii(host).lower()
    if ascii_host.endswith("."):
        ascii_host = ascii_host[:-1]
    labels = ascii_host.split(".")
    if _NUMERIC_LABEL_RE.match(labels[-1]):
        if not host.isascii():
            raise _invalid(f"url host {host!r} maps to an ip address; write the address in ascii digits")
        return _canonical_ipv4(host, labels)
    if len(ascii_host) > MAX_HOST_LENGTH or not all(_HOST_LABEL_RE.match(label) for label in labels):
        raise _invalid(f"url host {host!r} is not a valid host name")
    return ascii_host


def _normalize_ipv6(host: str) -> str:
    try:
        return ipaddress.IPv6Address(host).compressed
    except ValueError:
        raise _invalid(f"url host {host!r} is not a valid ipv6 address") from None


def _to_ascii(host: str) -> str:
    """Map a host to its IDNA A-label form, as the HTTP client would before connecting."""
    if host.isascii():
        return host
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        raise _invalid(f"url host {host!r} is not a valid internationalized host name") from None


def _canonical_ipv4(host: str, labels: list[str]) -> str:
    if len(labels) != 4 or not all(_CANONICAL_OCTET_RE.match(label) for label in labels):
        raise _invalid(f"url host {host!r} is not a canonical ipv4 address; write it as a.b.c.d")
    if not all(int(label) <= 255 for label in labels):
        raise _invalid(f"url host {host!r} is not a valid ipv4 address")
    return ".".join(labels)


# --- address policy ------------------------------------------------------------------------

# Networks that deliveries never reach, checked in order (the first match names the reason).
# `ipaddress.is_global` alone is not enough: on Python 3.11 it calls 100.64.0.0/10 neither
# private nor global, and calls NAT64, 6to4, IPv4-compatible, site-local and 168.63.129.16
# global. IPv4-mapped, NAT64 (64:ff9b::/96) and 6to4 addresses are unwrapped before this table
# is used, so their embedded IPv4 address is checked. Global IPv6 unicast is 2000::/3 only.
DENIED_NETWORKS = [
    (ipaddress.ip_network(network), reason)
    for network, reason in [
        ("0.0.0.0/8", "unspecified address"),
        ("10.0.0.0/8", "private address"),
        ("100.64.0.0/10", "shared address (carrier-grade nat)"),
        ("127.0.0.0/8", "loopback address"),
        ("169.254.169.254/32", "cloud metadata address"),
        ("169.254.0.0/16", "link-local address"),
        ("168.63.129.16/32", "cloud metadata address"),
        ("172.16.0.0/12", "private address"),
        ("192.0.0.0/24", "reserved address"),
        ("192.0.2.0/24", "documentation address"),
        ("192.88.99.0/24", "reserved address"),
        ("192.168.0.0/16", "private address"),
        ("198.18.0.0/15", "benchmarking address"),
        ("198.51.100.0/24", "documentation address"),
        ("203.0.113.0/24", "documentation address"),
        ("224.0.0.0/4", "multicast address"),
        ("255.255.255.255/32", "broadcast address"),
        ("240.0.0.0/4", "reserved address"),
        ("::/128", "unspecified address"),
        ("::1/128", "loopback address"),
        ("::/96", "ipv4-compatible address"),
        ("64:ff9b:1::/48", "nat64 address"),
        ("::/8", "reserved address"),
        ("100::/64", "discard-only address"),
        ("2001::/23", "reserved address"),
        ("2001:db8::/32", "documentation address"),
        ("3fff::/20", "documentation address"),
        ("5f00::/16", "reserved address"),
        ("fd00:ec2::254/128", "cloud metadata address"),
        ("fc00::/7", "private address"),
        ("fe80::/10", "link-local address"),
        ("fec0::/10", "site-local address"),
        ("ff00::/8", "multicast address"),
    ]
]

_NAT64_NETWORK = ipaddress.ip_network("64:ff9b::/96")
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_address(ip: str) -> str | None:
    """Return None if deliveries may connect to `ip`, else a short reason such as "loopback address".

    An address inside one of `settings.SSRF_ALLOWED_CIDRS` is always allowed.
    """
    try:
        address = ipaddress.ip_address(ip.partition("%")[0])
    except ValueError:
        return "invalid address"
    return _check(address)


def _check(address: Address, use_allowlist: bool = True) -> str | None:
    if use_allowlist and _is_allowlisted(address):
        return None

    if address.version == 6 and address.ipv4_mapped is not None:
        # The kernel connects to the mapped IPv4 address itself, so the allowlist applies to it.
        reason = _check(address.ipv4_mapped, use_allowlist)
        return f"{reason} in ipv6 form" if reason else None
    translated = _translated_ipv4(address)
    if translated is not None:
        # A NAT64 gateway or 6to4 relay reaches the embedded address from its own network,
        # so an allowlisted IPv4 network does not make the translated form reachable.
        reason = _check(translated, use_allowlist=False)
        return f"{reason} in ipv6 form" if reason else None

    for network, reason in DENIED_NETWORKS:
        if address.version == network.version and address in network:
            return reason
    if address.version == 6 and address not in _GLOBAL_UNICAST_V6:
        return "reserved address"
    if not address.is_global:
        return "reserved address"
    return None


def _translated_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address inside a NAT64 (64:ff9b::/96) or 6to4 address, else None."""
    if address.version != 6:
        return None
    if address in _NAT64_NETWORK:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _is_allowlisted(address: Address) -> bool:
    for network in getattr(settings, "SSRF_ALLOWED_CIDRS", None) or []:
        if isinstance(network, str):
            network = ipaddress.ip_network(network, strict=False)
        if address.version == network.version and address in network:
            return True
    return False


def check_host_name(host: str) -> None:
    """Raise DestinationError("blocked_destination") for local and metadata names."""
    name = host.lower().rstrip(".")
    if name in BLOCKED_HOST_NAMES or name.endswith(BLOCKED_HOST_SUFFIXES):
        raise _blocked(f"destination {host} is a local or metadata host name; use a public host")


# --- resolution ----------------------------------------------------------------------------


def resolve(host: str, port: int) -> list[str]:
    """Resolve `host` to its IPv4 and IPv6 addresses for TCP, in resolver order, without repeats.

    Raises OSError (socket.gaierror) when the lookup fails. This is the one resolver seam:
    validation and delivery both reach it as `netpolicy.resolve`, and tests replace it.
    """
    infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    addresses = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    return addresses


def resolve_checked(host: str, port: int) -> list[str]:
    """Resolve `host` and return its addresses if every one of them may be reached.

    Raises DestinationError "blocked_destination" if any address is blocked (so a mixed result
    is rejected as a whole), and "dns_failed" if the lookup fails or returns nothing. An IP literal
    is checked as it is, without a lookup. `host` is a normalized host without brackets.
    """
    literal = _parse_literal(host)
    if literal is not None:
        reason = check_address(literal)
        if reason is not None:
            raise _blocked(f"destination {literal} is not allowed: {reason}; use a public address")
        return [literal]

    check_host_name(host)
    addresses = _lookup(host, port)
    for address in addresses:
        reason = check_address(address)
        if reason is not None:
            raise _blocked(f"destination {host} resolves to {address}, which is not allowed: {reason}")
    return addresses


def _parse_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _lookup(host: str, port: int) -> list[str]:
    # `resolve` is read from the module globals at call time, so a test's replacement is used.
    try:
        addresses = list(resolve(host, port))
    except (OSError, UnicodeError) as exc:
        raise DestinationError("dns_failed", f"dns lookup of {host} failed: {_dns_reason(exc)}") from None
    if not addresses:
        raise DestinationError("dns_failed", f"dns lookup of {host} returned no addresses")
    return addresses


def _dns_reason(exc: Exception) -> str:
    if isinstance(exc, socket.gaierror) and exc.args and len(exc.args) > 1:
        return str(exc.args[1]).lower()
    return str(exc).lower() or type(exc).__name__


def validate_destination(raw_url: str) -> str:
    """Normalize a webhook URL and check that its host resolves only to allowed addresses.

    Returns the normalized URL to store; raises DestinationError with code "invalid_url",
    "blocked_destination" or "dns_failed".
    """
    # NOTE: the lookup runs in the calling thread with no deadline of its own, so a slow
    # resolver blocks the API request for as long as getaddrinfo takes (resolv.conf limits).
    url = normalize_url(raw_url)
    parts = urlsplit(url)
    port = parts.port or ALLOWED_SCHEMES[parts.scheme]
    host = parts.hostname or ""
    resolve_checked(host, port)
    return url
