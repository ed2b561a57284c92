"""What the server believes of its peers: X-Forwarded-For only from configured proxies,
and connections kept open longer than a load balancer keeps them idle."""

from __future__ import annotations

import http.client
import secrets
import time
from urllib.parse import urlsplit

import pytest

from support.stack import TrackingServer
from support.waiting import wait_until

pytestmark = pytest.mark.docker
FORGED = "203.0.113.7"  # TEST-NET-3: nobody's address
PROXIED = "198.51.100.9"  # TEST-NET-2
IDLE_S = 7  # beyond uvicorn's 5 s default keep-alive: only KEEPALIVE_TIMEOUT keeps it open


def access_log_line(server: TrackingServer, marker: str) -> str:
    """The server's access-log line of the request whose path holds marker."""

    def lines() -> list[str]:
        stdout, stderr = server.container.get_logs()
        return [line for line in (stdout + stderr).decode().splitlines() if marker in line]

    return wait_until(lines, timeout=10, message=f"no access-log line for {marker}")[-1]


def test_forged_forwarded_for_from_an_untrusted_peer_is_ignored(
    tracking_server: TrackingServer,
) -> None:
    # From the host, through Docker's port mapping: the peer is no configured proxy.
    outside = f"forged-{secrets.token_hex(4)}"
    parts = urlsplit(tracking_server.uri_from_host)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", f"/health?{outside}", headers={"X-Forwarded-For": FORGED})
    assert connection.getresponse().status == 200
    connection.close()
    # From the container's own loopback, a trusted proxy by default: believed.
    inside = f"proxied-{secrets.token_hex(4)}"
    code, output = tracking_server.container.exec(
        [
            "python",
            "-c",
            "import urllib.request as u; u.urlopen(u.Request("
            f"'http://127.0.0.1:5000/health?{inside}', headers={{'X-Forwarded-For': '{PROXIED}'}}"
            "), timeout=10)",
        ]
    )
    assert code == 0, output

    outside_line = access_log_line(tracking_server, outside)
    assert FORGED not in outside_line, outside_line
    assert PROXIED in access_log_line(tracking_server, inside)


def test_idle_connections_stay_open_longer_than_a_few_seconds(
    tracking_server: TrackingServer,
) -> None:
    parts = urlsplit(tracking_server.uri_from_host)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", "/health")
        assert connection.getresponse().read() == b"OK"
        socket_before = connection.sock
        time.sleep(IDLE_S)
        connection.request("GET", "/health")  # on the same connection, had it stayed open
        assert connection.getresponse().read() == b"OK"
        assert connection.sock is socket_before
    finally:
        connection.close()
