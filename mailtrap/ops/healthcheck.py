"""``mailtrap healthcheck``: whether a running server's SMTP, HTTP and database answer.

The Docker image's HEALTHCHECK runs it beside the server, with the same
``MAILTRAP_*`` environment, so the listen addresses it reads are the server's.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl

from mailtrap.config import Address

# A wildcard listen address is reached through the loopback address of its family.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def reachable(address: Address) -> Address:
    """Where to connect to reach a server listening on ``address``."""
    return Address(_WILDCARDS.get(address.host, address.host), address.port)


def check_smtp(address: Address, timeout: float) -> str | None:
    """None when the server greets with 220; else what went wrong."""
    target = reachable(address)
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout) as conn:
            greeting = conn.makefile("rb").readline(1024)
            conn.sendall(b"QUIT\r\n")
    except OSError as error:
        return f"SMTP on {target}: {error}"
    if not greeting.startswith(b"220"):
        return f"SMTP on {target} greeted with {greeting[:80]!r}"
    return None


def check_http(address: Address, webroot: str, timeout: float, tls: bool) -> str | None:
    """None when ``/readyz`` (a read of the database) answers 200; else what went wrong."""
    target = reachable(address)
    connection: http.client.HTTPConnection
    if tls:
        # Our own server on loopback: its certificate is the operator's business.
        context = ssl._create_unverified_context()
        connection = http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    try:
        connection.request("GET", f"{webroot}readyz", headers={"Host": "localhost"})
        response = connection.getresponse()
        body = response.read(4096)
    except (OSError, http.client.HTTPException) as error:
        return f"HTTP on {target}: {error}"
    finally:
        connection.close()
    if response.status != 200:
        return f"HTTP on {target}: /readyz answered {response.status} {body[:200]!r}"
    try:
        status = json.loads(body).get("status")
    except (ValueError, AttributeError):
        status = None
    if status != "ok":
        return f"HTTP on {target}: /readyz answered {body[:200]!r}"
    return None


def problems(
    smtp: Address, http: Address | None, *, webroot: str = "/", tls: bool = False, timeout: float
) -> list[str]:
    """Everything that does not answer; empty when the server is healthy."""
    found = [check_smtp(smtp, timeout)]
    if http is not None:
        found.append(check_http(http, webroot, timeout, tls))
    return [problem for problem in found if problem is not None]
