"""Outbound HTTP: every request Leadflow makes to a URL that a person typed
(webhook nodes, Slack posts, anything else that posts out) goes through
``outbound_post``.

A URL someone typed must not turn the worker into a port scanner of the network
it runs in: targets on loopback, link-local (cloud metadata), private, shared,
multicast, unspecified or reserved addresses are refused, unless the host is in
``OUTBOUND_ALLOWED_HOSTS``. The host is resolved once and the connection goes to
the address that was checked (with the Host header and TLS SNI of the name), so a
DNS answer that changes between the check and the connect cannot slip through.
Redirects are not followed: a 3xx is a failed send. Responses are read up to a
limit, within a total time limit.

Nothing here imports an app: it is the bottom layer for anything that sends.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.utils.translation import gettext

CONNECT_TIMEOUT = 5.0
# The whole exchange, headers and body, however slowly a receiver drips bytes.
TOTAL_TIMEOUT = 15.0
MAX_RESPONSE_BYTES = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundRefused(Exception):
    """The target may not be reached from here: retrying will not help."""


class OutboundFailed(Exception):
    """The send did not succeed (network error, timeout, non-2xx): worth a retry."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    # At most MAX_RESPONSE_BYTES of it.
    body: bytes


def _allowed_entries() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names: set[str] = set()
    networks = []
    for entry in settings.OUTBOUND_ALLOWED_HOSTS:
        entry = entry.strip().lower().strip("[]")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry)
    return names, networks


def _address_blocked(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # is_global is False for loopback, link-local, private, shared (100.64/10),
    # unspecified, reserved and documentation ranges; multicast can be "global".
    return not address.is_global or address.is_multicast


def _address_problem(address: IPAddress, host: str) -> str | None:
    _, networks = _allowed_entries()
    if any(address in network for network in networks):
        return None
    if _address_blocked(address):
        return gettext(
            "%(host)s is a local or private address (%(address)s); Leadflow does not send "
            "there unless an administrator allows it in OUTBOUND_ALLOWED_HOSTS."
        ) % {"host": host, "address": address}
    return None


def _split(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of ``url``, or OutboundRefused with the reason."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(gettext("The URL is not valid.")) from exc
    if parts.scheme not in ("http", "https"):
        raise OutboundRefused(gettext("Use an http:// or https:// URL."))
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise OutboundRefused(gettext("The URL has no host."))
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused(gettext("Put no user name or password in the URL."))
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundFailed(gettext("%(host)s could not be resolved.") % {"host": host}) from exc
    # An IPv6 answer may carry a zone ("fe80::1%eth0"): drop it before parsing.
    found = (ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    return list(dict.fromkeys(found))


def outbound_target(url: str) -> tuple[str, str, int, IPAddress]:
    """Check ``url`` and pick the address to connect to: (scheme, host, port, address).

    Raises OutboundRefused for a target that is not allowed (every address a name
    resolves to must be allowed, so a name cannot mix a public and a private
    answer), OutboundFailed when the name does not resolve."""
    scheme, host, port = _split(url)
    names, _ = _allowed_entries()
    addresses = _resolve(host, port)
    if host in names:
        return scheme, host, port, addresses[0]
    for address in addresses:
        problem = _address_problem(address, host)
        if problem:
            raise OutboundRefused(problem)
    return scheme, host, port, addresses[0]


def outbound_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a target, for forms and config validation; None when
    it can. A name that does not resolve now is let through: it is checked again at
    every send, and a temporary DNS failure should not block saving."""
    try:
        outbound_target(url)
    except OutboundRefused as exc:
        return str(exc)
    except OutboundFailed:
        return None
    return None


def outbound_post(url: str, *, body: bytes, headers: dict[str, str]) -> OutboundResponse:
    """POST ``body`` to ``url``; a 2xx answer or OutboundRefused / OutboundFailed."""
    scheme, host, port, address = outbound_target(url)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = 443 if scheme == "https" else 80
    host_header = host if ":" not in host else f"[{host}]"
    if port != default_port:
        host_header += f":{port}"
    timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=TOTAL_TIMEOUT)
    pool: urllib3.HTTPConnectionPool
    if scheme == "https":
        # The socket goes to the checked address; the certificate must still match
        # the name, which is also sent as SNI.
        pool = urllib3.HTTPSConnectionPool(
            str(address),
            port,
            timeout=timeout,
            maxsize=1,
            retries=False,
            server_hostname=host,
            assert_hostname=host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            str(address), port, timeout=timeout, maxsize=1, retries=False
        )
    deadline = time.monotonic() + TOTAL_TIMEOUT
    try:
        response = pool.urlopen(
            "POST",
            path,
            body=body,
            headers={**headers, "Host": host_header, "User-Agent": "Leadflow"},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            content = _read_limited(response, deadline)
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise OutboundFailed(_network_error(exc)) from exc
    finally:
        pool.close()
    if not 200 <= response.status < 300:
        message = f"HTTP {response.status}"
        if 300 <= response.status < 400:
            message += " " + gettext("(redirects are not followed)")
        raise OutboundFailed(message, status=response.status)
    return OutboundResponse(status=response.status, body=content)


def _read_limited(response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < MAX_RESPONSE_BYTES:
        if time.monotonic() > deadline:
            raise OutboundFailed(
                gettext("No full answer within %(seconds)s seconds.") % {"seconds": TOTAL_TIMEOUT}
            )
        chunk = response.read(min(8192, MAX_RESPONSE_BYTES - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _network_error(exc: urllib3.exceptions.HTTPError) -> str:
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return gettext("No connection within %(seconds)s seconds.") % {"seconds": CONNECT_TIMEOUT}
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return gettext("No answer within %(seconds)s seconds.") % {"seconds": TOTAL_TIMEOUT}
    reason = getattr(exc, "reason", None) or exc
    return f"{type(exc).__name__}: {reason}"
