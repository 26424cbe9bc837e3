"""The Mailpit-compatible JSON API, v1: the paths, parameters and field names of Mailpit.

Mailpit's clients (the npm packages ``mailpit-api`` and ``cypress-mailpit``,
pytest helpers) work against it unchanged. Successful writes answer ``ok`` in
plain text as Mailpit does; every error is JSON ``{"Error": "..."}`` with a
status that says what went wrong. Beyond Mailpit: ``GET /api/v1/search``
takes ``wait=SECONDS`` and then answers as soon as a message matches.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request

from mailtrap import __version__
from mailtrap.compose import ComposeError, compose
from mailtrap.errors import MailtrapError, MessageNotFound, StorageError
from mailtrap.message import find_part, headers_map, message_detail, summary
from mailtrap.relay import queue as relay_queue
from mailtrap.rows import IncomingMessage
from mailtrap.search import Search, SearchSyntaxError, parse, parse_date
from mailtrap.store import Page
from mailtrap.tags.names import MAX_TAG_LENGTH, clean_tag
from mailtrap.web import heavy_reads, invites, security, thumbnails, views
from mailtrap.web.downloads import attachment_headers
from mailtrap.web.heavy_reads import heavy_read
from mailtrap.web.params import fields_body, int_arg, json_body, seconds_arg, time_zone

if TYPE_CHECKING:
    from mailtrap.server import Server
    from mailtrap.store import Store

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api/v1")

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_START = 10_000_000
MAX_WAIT = 300.0  # seconds a long-poll search may wait
STOP_CHECK_INTERVAL = 1.0  # how soon a waiting search notices the server stopping
WRITE_TIMEOUT = 30.0  # seconds to wait for the store to commit a write
MAX_IDS = 100_000
# The Mailpit release whose API this one follows (its routes, fields and frames).
MAILPIT_API_VERSION = "v1.30.5"
APPLY_CHUNK = 500  # messages tagged per write when rules are applied on demand


def register(app: Flask) -> None:
    """Add the API routes (thumbnails and invitations too), and the ``/view`` routes, to ``app``."""
    heavy_reads.register(app)
    app.register_blueprint(bp)
    thumbnails.register(app)
    invites.register(app)
    views.register(app)


def _server() -> Server:
    return current_app.config["MAILTRAP_SERVER"]


def _store() -> Store:
    return _server().store


def _ok() -> Response:
    return Response("ok", content_type="text/plain; charset=utf-8")


def _committed(future: Future[Any]) -> Any:
    return future.result(timeout=WRITE_TIMEOUT)


@bp.errorhandler(MailtrapError)
def _mailtrap_error(error: MailtrapError) -> Any:
    """Our own errors as JSON; the blueprint sees them before the app's handlers do."""
    if isinstance(error, SearchSyntaxError | ComposeError):
        return jsonify({"Error": str(error)}), 400
    if isinstance(error, MessageNotFound):
        return jsonify({"Error": f"message not found: {error}"}), 404
    if isinstance(error, StorageError):
        log.error("storage error answering %s %s: %s", request.method, request.path, error)
        return jsonify({"Error": "the message store is unavailable; try again"}), 503
    log.error("error answering %s %s", request.method, request.path, exc_info=error)
    return jsonify({"Error": "internal error"}), 500


# -- request parsing ---------------------------------------------------------


def _start_limit(*, zero_is_all: bool) -> tuple[int, int]:
    """``start`` and ``limit`` as Mailpit reads them, within our bounds.

    A negative start is 0 and a negative limit the default. ``limit=0`` is
    every message in a listing (``zero_is_all``; here: MAX_LIMIT) and none in
    a search, as in Mailpit; a limit above MAX_LIMIT is MAX_LIMIT.
    """
    start = max(int_arg("start", 0, -(2**63), 2**63), 0)
    if start > MAX_START:
        abort(400, f"start must be at most {MAX_START}")
    limit = int_arg("limit", DEFAULT_LIMIT, -(2**63), 2**63)
    if limit < 0:
        limit = DEFAULT_LIMIT
    elif limit == 0 and zero_is_all:
        limit = MAX_LIMIT
    return start, min(limit, MAX_LIMIT)


def _before() -> Search:
    """Mailpit's ``before=`` (received before that moment): a date, RFC 3339 or Unix time."""
    text = request.args.get("before", "").strip()
    if not text:
        return Search()
    try:
        moment = parse_date(text, time_zone(request.args.get("tz", "")))
    except SearchSyntaxError as error:
        abort(400, str(error))
    if moment is None:
        abort(400, f"before must be a date or time (RFC 3339, YYYY-MM-DD...), not {text[:40]!r}")
    return Search("created < ?", (moment,))


def _search(text: str | None = None, *, required: bool = True) -> Search:
    """The search of the ``query`` argument (or ``text``), in the ``tz`` time zone."""
    query = (request.args.get("query", "") if text is None else text).strip()
    if not query:
        if required:
            abort(400, "no search query")
        return Search()
    return parse(query, timezone=time_zone(request.args.get("tz", "")))


def _json_object() -> dict[str, Any]:
    """The body as an object: JSON, or the form fields of a PUT or DELETE."""
    return fields_body() or {}


def _field(body: dict[str, Any], key: str) -> Any:
    """``body[key]``, the key in any case: Go's JSON decoder, and so Mailpit, ignores case."""
    if key in body:
        return body[key]
    wanted = key.lower()
    return next((value for name, value in body.items() if name.lower() == wanted), None)


def _strings(body: dict[str, Any], key: str, maximum: int = MAX_IDS) -> list[str]:
    value = _field(body, key)
    if value is None:
        return []
    if isinstance(value, str) and not request.is_json:  # one form field
        value = [value] if value else []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        abort(400, f"{key} must be an array of strings")
    if len(value) > maximum:
        abort(400, f"{key} may hold at most {maximum} items")
    return value


def _message_id(message_id: str) -> str:
    """The ID itself, or for ``latest`` the newest message's (matching ``query``, if given)."""
    if message_id != "latest":
        return message_id
    return latest_id(_search(required=False))


def latest_id(search: Search) -> str:
    """The newest message's ID (matching ``search``); MessageNotFound if there is none."""
    return _store().latest_id(search)


# -- messages ----------------------------------------------------------------


def _messages_summary(page: Page, start: int) -> dict[str, Any]:
    """Mailpit's MessagesSummary; ``total`` and ``unread`` count the whole mailbox."""
    store = _store()
    total, unread = store.counts()
    messages = [summary(row) for row in page.rows]
    return {
        "total": total,
        "unread": unread,
        "count": len(messages),  # undocumented by Mailpit, kept for old clients
        "messages_count": page.total,
        "messages_unread": page.unread,
        "start": start,
        "tags": store.tags(),
        "messages": messages,
    }


@bp.get("/messages")
def list_messages() -> Any:
    start, limit = _start_limit(zero_is_all=True)
    before = _before()
    page = _store().page(before, start, limit)
    if not before.matches_everything:  # Mailpit counts the whole mailbox even so
        page.total, page.unread = _store().counts()
    return jsonify(_messages_summary(page, start))


@bp.delete("/messages")
def delete_messages() -> Any:
    """Delete the messages with the given ``IDs``; no IDs (or no body): every message."""
    ids = _strings(_json_object(), "IDs")
    store = _store()
    _committed(store.delete(ids) if ids else store.delete_all())
    return _ok()


@bp.put("/messages")
def set_read_status() -> Any:
    """Mark ``IDs``, the matches of ``Search``, or (neither) every message read or unread."""
    body = _json_object()
    ids = _strings(body, "IDs")
    read = _field(body, "Read")
    if isinstance(read, str) and not request.is_json:  # a form field
        read = read.strip().lower() in ("true", "1", "on", "yes")
    if read is None:
        read = False
    if not isinstance(read, bool):
        abort(400, "Read must be true or false")
    search = _field(body, "Search")
    if search is not None and not isinstance(search, str):
        abort(400, "Search must be a string")
    if ids and search:
        abort(400, "give either IDs or Search, not both")
    store = _store()
    if search and search.strip():
        query = _search(search)
        if query.matches_everything:  # nothing Mailpit could search for: all messages
            query = Search()
        targets = None if query.matches_everything else store.matching_ids(query)
        _committed(store.set_read(targets, read))
    else:
        _committed(store.set_read(ids or None, read))
    return _ok()


# -- search ------------------------------------------------------------------


@bp.get("/search")
def search_messages() -> Any:
    """Mailpit's search; with ``wait=SECONDS``, the answer waits for a first match."""
    query = _search()
    start, limit = _start_limit(zero_is_all=False)
    wait = seconds_arg("wait", MAX_WAIT)
    store = _store()
    query = query.also(_before())

    def run() -> Page:
        return store.page(query, start, limit)

    page = _wait_for_match(run, wait) if wait else run()
    return jsonify(_messages_summary(page, start))


def _wait_for_match(run: Callable[[], Page], seconds: float) -> Page:
    """Run the search; until it matches, run it again after each new or updated message.

    The subscription starts before the first run, so a message arriving in
    between still wakes us: nothing is missed and nothing polls.
    """
    hub = _store().hub
    stopping = current_app.config["MAILTRAP_STOPPING"]
    deadline = time.monotonic() + seconds
    subscription = hub.subscribe()
    try:
        while True:
            page = run()
            if page.total or stopping.is_set():
                return page
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or stopping.is_set():
                    return page
                # Woken by events; the interval only bounds how late a shutdown is noticed.
                event = subscription.get(timeout=min(remaining, STOP_CHECK_INTERVAL))
                if subscription.overflowed:  # dropped for falling behind: start over
                    subscription = hub.subscribe()
                    break
                if event is not None and event.type in ("new", "update"):
                    break
    finally:
        subscription.close()


@bp.delete("/search")
def delete_search() -> Any:
    """Delete every message matching ``query``."""
    query = _search()
    if query.matches_everything:
        # Only punctuation Mailpit ignores ("<>", ","), where Mailpit deletes everything.
        abort(400, "the query matches every message; DELETE /api/v1/messages deletes them all")
    store = _store()
    _committed(store.delete(store.matching_ids(query)))
    return _ok()


# -- one message -------------------------------------------------------------


@bp.get("/message/<message_id>")
@heavy_read
def get_message(message_id: str) -> Any:
    """Mailpit's Message; like Mailpit, reading it marks it read, unless a foreign page asked."""
    store = _store()
    message_id = _message_id(message_id)
    row, source = store.source(message_id)
    detail = message_detail(row, source)
    # Beyond Mailpit: each relay delivery of the message and how it went.
    detail["Relay"] = relay_queue.of_message(store.reader, message_id)
    if not row["read"] and not security.from_foreign_page():
        _committed(store.set_read([message_id], True))
    return jsonify(detail)


@bp.get("/message/<message_id>/raw")
def message_source(message_id: str) -> Any:
    """The message byte for byte as it was received."""
    message_id = _message_id(message_id)
    size, chunks = _store().raw_chunks(message_id)
    response = Response(chunks, content_type="text/plain; charset=utf-8")
    response.content_length = size
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.args.get("dl") == "1":
        response.headers.update(attachment_headers(f"{message_id}.eml"))
    return response


@bp.get("/message/<message_id>/headers")
def message_headers(message_id: str) -> Any:
    message_id = _message_id(message_id)
    _, source = _store().source(message_id)
    return jsonify(headers_map(source))


@bp.get("/message/<message_id>/part/<part_id>")
def message_part(message_id: str, part_id: str) -> Any:
    """A part's decoded content, always as a download: never rendered on our origin."""
    message_id = _message_id(message_id)
    _, source = _store().source(message_id)
    part = find_part(source, part_id)
    if part is None:
        abort(404, f"message {message_id} has no part {part_id}")
    response = Response(part.chunks(), content_type=part.content_type)
    response.headers.update(attachment_headers(part.filename or part.content_id or part_id))
    return response


# -- tags ----------------------------------------------------------------------


@bp.get("/tags")
def list_tags() -> Any:
    return jsonify(_store().tags())


def _clean(names: list[str]) -> list[str]:
    """Names as Mailpit cleans them (see mailtrap.tags.names), blanks dropped."""
    return [cleaned for cleaned in map(clean_tag, names) if cleaned]


@bp.put("/tags")
def set_tags() -> Any:
    """Replace the tags of ``IDs`` with ``Tags`` (none: remove them all); no IDs: nothing."""
    body = _json_object()
    ids = _strings(body, "IDs")
    tags = _clean(_strings(body, "Tags", 1000))
    if ids:
        _committed(_store().set_tags(ids, tags))
    return _ok()


@bp.put("/tags/<path:tag>")
def rename_tag(tag: str) -> Any:
    """Rename a tag (any case finds it); refused if the new name is another tag's."""
    name = _field(_json_object(), "Name")
    if not isinstance(name, str):
        abort(400, "Name must be a string")
    cleaned = clean_tag(name)
    if not cleaned:
        abort(400, f"invalid tag name: {name[:MAX_TAG_LENGTH]!r}")
    if cleaned == tag:
        return _ok()  # as Mailpit: nothing to do
    status, _ = _committed(_store().rename_tag(tag, cleaned))
    if status == "not found":
        abort(400, f"tag not found: {tag}")
    if status == "exists":
        abort(400, f"tag already exists: {cleaned}")
    return _ok()


@bp.delete("/tags/<path:tag>")
def delete_tag(tag: str) -> Any:
    """Remove a tag from every message that has it; the messages stay."""
    status, _ = _committed(_store().delete_tag(tag))
    if status == "not found":
        abort(400, f"tag not found: {tag}")
    return _ok()


@bp.get("/tag-rules")
def list_tag_rules() -> Any:
    """The rules of ``--tag`` and ``--tags-config`` (beyond Mailpit)."""
    return jsonify([rule.to_json() for rule in _store().tagging.rules])


@bp.post("/tag-rules/apply")
def apply_tag_rules() -> Any:
    """Apply the tag rules to the messages already stored, as they are applied on arrival.

    Answers how many messages the rules found and how many got a tag they
    did not have. Tags are added, never taken away.
    """
    store = _store()
    matched: set[str] = set()
    futures = []
    for rule in store.tagging.rules:
        ids = store.matching_ids(rule.search())
        matched.update(ids)
        for start in range(0, len(ids), APPLY_CHUNK):  # other writes get their turn between
            futures.append(store.add_tags(ids[start : start + APPLY_CHUNK], list(rule.tags)))
    changed = {message_id for future in futures for message_id, _ in _committed(future)}
    return jsonify(
        {"Rules": len(store.tagging.rules), "Matched": len(matched), "Tagged": len(changed)}
    )


# -- send and info -------------------------------------------------------------


@bp.post("/send")
def send_message() -> Any:
    """Compose a message from Mailpit's SendRequest and store it as if it came over SMTP."""
    max_size = _server().config.max_message_size
    # Base64 makes attachments a third bigger in the request than in the message.
    composed = compose(json_body(limit=max_size * 2 + 64 * 1024))
    if len(composed.raw) > max_size:
        abort(413, f"the message is larger than the limit of {max_size} bytes")
    authorization = request.authorization
    message = IncomingMessage(
        raw=composed.raw,
        mail_from=composed.mail_from,
        rcpt_tos=composed.rcpt_tos,
        peer=request.remote_addr or "",
        helo="HTTP API",
        tls=request.is_secure,
        auth_user=authorization.username if authorization else None,
    )
    return jsonify({"ID": _committed(_store().add(message))})


@bp.get("/info")
def info() -> Any:
    """Mailpit's AppInformation, plus ``Mailtrap`` (what this server really is).

    ``Version`` is the Mailpit version whose API this one follows, so that
    Mailpit's clients, which gate features on it, treat Mailtrap as current.
    Its runtime counters are integers since this server started.
    """
    server = _server()
    store = server.store
    stats = server.stats
    total, unread = store.counts()
    return jsonify(
        {
            "Version": MAILPIT_API_VERSION,
            "LatestVersion": "disabled",  # Mailtrap never calls out to find newer releases
            "Database": str(store.path),
            "DatabaseSize": store.database_size(),
            "Messages": total,
            "Unread": unread,
            "Tags": store.tag_counts(),
            "RuntimeStats": {
                "Uptime": int(stats.uptime),
                "Memory": _resident_memory(),
                "MessagesDeleted": store.deleted,
                "SMTPAccepted": stats.smtp_accepted,
                "SMTPAcceptedSize": stats.smtp_accepted_bytes,
                "SMTPRejected": stats.smtp_rejected_total,
                "SMTPIgnored": 0,  # Mailpit's --ignore-duplicate-ids; Mailtrap keeps every copy
            },
            "Mailtrap": {"Version": __version__},
        }
    )


def _resident_memory() -> int:
    """Bytes of memory this process uses now (its peak where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
