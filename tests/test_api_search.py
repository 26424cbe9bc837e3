"""Search over HTTP: results and counts, deleting and marking by search, and the long poll."""

from __future__ import annotations

import smtplib
import threading
import time

import pytest
from api_client import Api, plain, send
from smtp_wire import deliver

from mailtrap import Server


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    return emptied_module_server


def test_search_results_and_counts(server: Server, api: Api):
    welcome = send(server, plain("Welcome aboard", to="new@example.com"))
    send(server, plain("Your invoice", to="billing@example.com"))
    api.message(send(server, plain("Welcome back", to="old@example.com")))  # now read
    result = api.search("welcome")
    assert [m["Subject"] for m in result["messages"]] == ["Welcome back", "Welcome aboard"]
    assert (result["messages_count"], result["messages_unread"]) == (2, 1)
    assert (result["total"], result["unread"]) == (3, 2)  # the whole mailbox, as Mailpit
    page = api.search("welcome", start=1, limit=1)
    assert [m["ID"] for m in page["messages"]] == [welcome]
    assert (page["start"], page["count"], page["messages_count"]) == (1, 1, 2)


def test_exact_address_negation_and_header_search(server: Server, api: Api):
    send(server, plain("To a", to="a@x.com", headers="X-Env: staging\r\n"))
    send(server, plain("To ba", to="ba@x.com", headers="X-Env: production\r\n"))
    assert api.subjects("to:a@x.com") == ["To a"]
    assert api.subjects("-to:a@x.com") == ["To ba"]
    assert api.subjects("to:@x.com") == ["To ba", "To a"]
    assert api.subjects("header:X-Env:prod") == ["To ba"]
    assert api.subjects('"to a"') == ["To a"]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({}, "no search query"),
        ({"query": "   "}, "no search query"),
        ({"query": "x " * 100}, "more than 64 terms"),
        ({"query": "x", "before": "someday"}, "before must be a date"),
        ({"query": "after:2024-01-01", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"query": "x", "limit": "5e3"}, "limit must be an integer"),
        ({"query": "x", "wait": "soon"}, "wait must be a number"),
        ({"query": "x", "wait": "301"}, "wait must be between 0 and 300"),
        ({"query": "x", "wait": "nan"}, "wait must be between"),
    ],
)
def test_bad_searches_are_400(api: Api, query: dict[str, str], error: str):
    reply = api.get("/api/v1/search", **query)
    assert reply.status == 400
    assert error in reply.error


def test_fts_syntax_in_the_query_is_plain_text(server: Server, api: Api):
    send(server, plain("NEAR the AND gate", body='say "hi" (now) * ^ {x}:'))
    for query in ["NEAR(the gate)", "AND", '"unbalanced', "x:y", "*", "(now)", '"hi" OR', "^"]:
        reply = api.get("/api/v1/search", query=query)
        assert reply.status == 200, (query, reply.body)
    assert api.subjects("NEAR AND") == ["NEAR the AND gate"]


def test_the_time_zone_of_before_and_after(server: Server, api: Api):
    send(server, plain("Now"))
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400 * 2))
    assert api.subjects(f"before:{today}") == ["Now"]
    assert api.search(f"after:{today}", tz="Pacific/Kiritimati")["messages_count"] == 0


def test_delete_by_search(server: Server, api: Api):
    send(server, plain("Keep"))
    send(server, plain("Drop one", headers="X-Tags: drop\r\n"))
    send(server, plain("Drop two", headers="X-Tags: drop\r\n"))
    assert api.ok("DELETE", "/api/v1/search", query="tag:drop") == "ok"
    assert [m["Subject"] for m in api.messages()["messages"]] == ["Keep"]


def test_delete_by_a_search_that_matches_everything_is_refused(server: Server, api: Api):
    send(server, plain("Keep"))
    for query in ("", "%3C%3E", "%2C"):  # nothing, "<>", ",": Mailpit would delete all
        reply = api.request("DELETE", f"/api/v1/search?query={query}")
        assert reply.status == 400
    assert api.messages()["total"] == 1


def test_mark_read_by_search(server: Server, api: Api):
    send(server, plain("Alpha"))
    send(server, plain("Beta"))
    assert api.ok("PUT", "/api/v1/messages", {"Search": "subject:alpha", "Read": True}) == "ok"
    assert api.subjects("is:read") == ["Alpha"]
    api.ok("PUT", "/api/v1/messages", {"Search": "subject:alpha", "Read": False})
    assert api.subjects("is:read") == []


# -- the long poll ------------------------------------------------------------------


def _search_in_background(api: Api, **params: str) -> tuple[threading.Thread, dict[str, object]]:
    outcome: dict[str, object] = {}

    def run() -> None:
        outcome["result"] = api.search(**params)  # type: ignore[arg-type]
        outcome["answered"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_waiting_search_answers_at_once_when_a_message_already_matches(server: Server, api: Api):
    send(server, plain("Ready"))
    started = time.monotonic()
    result = api.search("subject:ready", wait="30")
    assert time.monotonic() - started < 2
    assert [m["Subject"] for m in result["messages"]] == ["Ready"]


def test_a_waiting_search_answers_within_a_second_of_the_smtp_250(server: Server, api: Api):
    send(server, plain("Unrelated"))
    thread, outcome = _search_in_background(api, query="subject:signup to:new@x.com", wait="20")
    time.sleep(0.3)  # let the search start waiting
    assert thread.is_alive()
    send(server, plain("Signup", to="other@x.com"))  # not a match: it keeps waiting
    time.sleep(0.3)
    assert thread.is_alive()
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        deliver(client, plain("Signup", to="new@x.com"), rcpt_tos=("new@x.com",))
        acknowledged = time.monotonic()  # deliver returns once the 250 is read
    thread.join(timeout=10)
    assert not thread.is_alive()
    latency = outcome["answered"] - acknowledged  # type: ignore[operator]
    assert latency < 1.0, latency
    result = outcome["result"]
    assert [m["To"][0]["Address"] for m in result["messages"]] == ["new@x.com"]  # type: ignore[index]


def test_a_waiting_search_wakes_on_an_update_too(server: Server, api: Api):
    message_id = send(server, plain("Later read"))
    thread, outcome = _search_in_background(api, query="is:read", wait="20")
    time.sleep(0.3)
    assert thread.is_alive()
    api.ok("PUT", "/api/v1/messages", {"IDs": [message_id], "Read": True})
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert outcome["result"]["messages_count"] == 1  # type: ignore[index]


def test_a_waiting_search_gives_the_empty_result_after_the_timeout(api: Api):
    started = time.monotonic()
    result = api.search("subject:never", wait="0.7")
    elapsed = time.monotonic() - started
    assert 0.7 <= elapsed < 2.5, elapsed
    assert (result["messages"], result["messages_count"]) == ([], 0)


def test_a_waiting_search_leaves_no_subscription_behind(server: Server, api: Api):
    api.search("subject:never", wait="0.2")
    assert not server.store.hub.has_subscribers
