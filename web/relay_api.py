"""The relay routes: Mailpit's release of one message, and beyond Mailpit a message's
relay state (a long poll) and the release of many messages in one request.

Every release is checked whole before anything is queued: the recipients (each
an address, none refused by the relay config) and, for many messages, how many
deliveries it would make. A refusal is a 400 that names what was refused, and
nothing is queued. The answer comes once the deliveries are queued, never after
delivery: how each goes is in the message's ``Relay`` and the websocket's
"relay" frames.
"""

from __future__ import annotations

import unicodedata
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, abort, current_app, jsonify, request

from mailtrap.relay.watch import relay_state, wait_for_change
from mailtrap.relay.worker import delivery_addresses
from mailtrap.search import Search
from mailtrap.web.api import (
    MAX_WAIT,
    _field,
    _json_object,
    _message_id,
    _ok,
    _search,
    _server,
    _store,
    _strings,
)
from mailtrap.web.params import seconds_arg

if TYPE_CHECKING:
    from mailtrap.relay.worker import RelayService

bp = Blueprint("relay", __name__, url_prefix="/api/v1")

MAX_RELEASE_RECIPIENTS = 100
# What one bulk release may queue, messages times recipients: one write, one
# "relay" frame per message, and this many SMTP transactions to come.
MAX_RELEASE_DELIVERIES = 10_000


def register(app: Flask) -> None:
    app.register_blueprint(bp)


def _relay() -> RelayService:
    relay = _server().relay
    if relay is None:
        abort(400, "relay is not configured (start the server with --relay-config)")
    return relay


def _recipients(relay: RelayService, body: dict[str, Any]) -> list[str]:
    """The addresses of ``To``; a 400 naming the entry that is none, or each refused one."""
    addresses = []
    for entry in _strings(body, "To", MAX_RELEASE_RECIPIENTS):
        # parseaddr reads past control characters; an entry with one is not an address.
        address = "" if any(unicodedata.category(c) == "Cc" for c in entry) else parseaddr(entry)[1]
        if "@" not in address or not address.strip():
            abort(400, f"Invalid email address: {entry!r}")
        addresses.append(address)
    if not addresses:
        abort(400, "No valid addresses found")
    refused = relay.refusals(addresses)
    if refused:
        reasons = ", ".join(f"{address} ({reason})" for address, reason in refused.items())
        abort(400, f"Failed: {'address' if len(refused) == 1 else 'addresses'} refused: {reasons}")
    return addresses


@bp.post("/message/<message_id>/release")
def release_message(message_id: str) -> Any:
    """Mailpit's release: queue the message for ``To``; the answer does not wait for delivery."""
    relay = _relay()
    message_id = _message_id(message_id)
    _store().get(message_id)  # 404 for an unknown ID, before the body is judged
    relay.release(message_id, _recipients(relay, _json_object()))
    return _ok()


@bp.post("/messages/release")
def release_messages() -> Any:
    """Beyond Mailpit: queue ``IDs``, the matches of ``Search``, or (neither) every
    message for ``To``, in one write; answers which messages were queued."""
    relay = _relay()
    body = _json_object()
    to = delivery_addresses(_recipients(relay, body))  # each mailbox once, as queued
    ids = list(dict.fromkeys(_strings(body, "IDs", MAX_RELEASE_DELIVERIES)))  # each once
    text = _field(body, "Search")
    if text is not None and not isinstance(text, str):
        abort(400, "Search must be a string")
    searching = bool(text and text.strip())
    if ids and searching:
        abort(400, "give either IDs or Search, not both")
    most = MAX_RELEASE_DELIVERIES // len(to)
    store = _store()
    if ids:
        targets = ids
        matched = len(ids)
    else:
        # A query of nothing but punctuation Mailpit drops finds every message, as in PUT.
        query = _search(text) if searching else Search()
        targets = store.matching_ids(query, most + 1)
        matched = len(targets) if len(targets) <= most else store.page(query, 0, 0).total
    if matched > most:
        abort(
            400,
            f"a release queues at most {MAX_RELEASE_DELIVERIES} deliveries (messages times "
            f"recipients): {matched} messages to {len(to)} recipients would be "
            f"{matched * len(to)}",
        )
    if not targets:
        abort(404, "no message matches the search" if searching else "there are no messages")
    queued = relay.release_many(targets, to)
    if not queued:
        abort(404, f"message not found: {', '.join(targets[:10])}")
    subjects = store.subjects(queued)
    released = set(queued)
    return jsonify(
        {
            "Messages": [{"ID": each, "Subject": subjects.get(each, "")} for each in queued],
            "To": to,
            "Missing": [each for each in targets if each not in released],
        }
    )


@bp.get("/message/<message_id>/relay")
def message_relay(message_id: str) -> Any:
    """Beyond Mailpit: the message's relay deliveries and their ``Version``; with
    ``wait=SECONDS&changed=VERSION`` the answer waits until the state is another one."""
    message_id = _message_id(message_id)
    store = _store()
    store.get(message_id)  # 404 for an unknown ID
    wait = seconds_arg("wait", MAX_WAIT)
    seen = request.args.get("changed", "")[:64]
    if wait and seen:
        stopping = current_app.config["MAILTRAP_STOPPING"]
        deliveries, version = wait_for_change(store, message_id, seen, wait, stopping)
    else:
        deliveries, version = relay_state(store, message_id)
    return jsonify({"ID": message_id, "Relay": deliveries, "Version": version})
