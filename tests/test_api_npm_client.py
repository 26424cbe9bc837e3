"""Mailpit's npm client, ``mailpit-api``, run unchanged against Mailtrap.

``tests/js/mailpit_client.mjs`` calls the client (list, search, get, raw,
headers, attachments, read status, tags, send, wait, delete) and prints what
it received; this test checks it. ``.ci/run`` installs the package with npm.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from api_client import plain, send

from mailtrap import Server

JS = Path(__file__).parent / "js"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed (apt-get install nodejs)"),
    pytest.mark.skipif(
        not (JS / "node_modules" / "mailpit-api").is_dir(),
        reason="the npm client is not installed: npm install --prefix tests/js",
    ),
]

WELCOME = (
    b"From: Shop <shop@example.com>\r\nTo: new@example.com\r\nSubject: Welcome\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
    b"Glad to have you.\r\n--b\r\nContent-Type: application/pdf\r\n"
    b'Content-Disposition: attachment; filename="terms.pdf"\r\nContent-Transfer-Encoding: base64'
    b"\r\n\r\n" + base64.b64encode(b"%PDF terms") + b"\r\n--b--\r\n"
)


def run_client(server: Server) -> dict[str, Any]:
    assert NODE is not None
    completed = subprocess.run(
        [NODE, str(JS / "mailpit_client.mjs"), server.http_url],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_the_npm_client_works_against_mailtrap(server: Server):
    welcome = send(server, WELCOME)
    invoice = send(server, plain("Invoice 42", to="billing@example.com", body="Pay soon"))
    send(server, plain("Newsletter"))
    invoice_raw = server.store.raw(invoice)
    results = run_client(server)

    assert results["info"]["Messages"] == 3
    assert [m["Subject"] for m in results["list"]["messages"]] == [
        "Newsletter",
        "Invoice 42",
        "Welcome",
    ]
    assert results["list"]["total"] == 3
    assert [m["Subject"] for m in results["page"]["messages"]] == ["Invoice 42"]
    assert [m["ID"] for m in results["search"]["messages"]] == [invoice]
    assert results["get"]["ID"] == invoice
    assert results["get"]["To"] == [{"Name": "", "Address": "billing@example.com"}]
    assert results["latest"]["Subject"] == "Newsletter"
    assert results["raw"] == invoice_raw.decode()
    assert results["headers"]["Subject"] == ["Invoice 42"]
    assert results["attachment"] == {
        "type": "application/pdf",
        "base64": base64.b64encode(b"%PDF terms").decode(),
    }
    assert results["text"].strip() == "Glad to have you."
    assert results["setRead"] == results["setTags"] == "ok"
    assert results["tags"] == ["billing"]
    sent_id = results["sent"]["ID"]
    assert results["waited"]["ID"] == sent_id
    assert results["waited"]["From"] == {"Name": "Robot", "Address": "robot@example.test"}

    assert results["deleteOne"] == "ok"
    remaining = [m["ID"] for m in results["afterDeleteOne"]["messages"]]
    assert invoice not in remaining and welcome in remaining
    assert "Newsletter" not in [m["Subject"] for m in results["afterDeleteBySearch"]["messages"]]
    assert results["deleteAll"] == "ok"
    assert results["afterDeleteAll"]["total"] == 0
    assert "404" in results["missing"]
    assert server.store.count() == 0
