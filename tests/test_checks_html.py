"""HTML check: features found with lxml and tinycss2, support from the shipped caniemail data,
answered over the API in Mailpit's shape and cached per message."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from importlib import resources

from api_client import Api, send

from mailtrap import Server
from mailtrap.checks.caniemail import catalog
from mailtrap.checks.html import html_check

# Mailpit's swagger (server/ui/api/v1/swagger.json): HTMLCheckResponse and its parts.
RESPONSE_KEYS = {"Warnings", "Platforms", "Total"}
WARNING_KEYS = {
    "Slug", "Title", "Description", "URL", "Category", "Tags", "Keywords", "Results",
    "NotesByNumber", "Score",
}  # fmt: skip
RESULT_KEYS = {"Name", "Platform", "Family", "Version", "Support", "NoteNumber"}
SCORE_KEYS = {"Found", "Supported", "Partial", "Unsupported"}
TOTAL_KEYS = {"Tests", "Nodes", "Supported", "Partial", "Unsupported"}

NEWSLETTER = """<!DOCTYPE html><html><head><style>
  @media (prefers-color-scheme: dark) { .card:hover { color: white } }
  .grid > div::before { display: flex; margin-inline-start: 2rem !important; }
</style></head><body>
  <h1 style="border-top-left-radius: 4px; margin-top: 10px; --brand: red">Sale</h1>
  <div class="grid"><div>a</div><div>b</div></div>
  <img src="https://cdn.test/hero.webp?v=2" alt=""><svg></svg>
  <script>track()</script><script type="application/ld+json">{}</script>
  <a href="#top">top</a>
</body></html>"""


def slugs(result: dict) -> dict[str, int]:  # type: ignore[type-arg]
    return {warning["Slug"]: warning["Score"]["Found"] for warning in result["Warnings"]}


def test_features_of_the_markup_the_style_sheet_and_style_attributes_are_found() -> None:
    found = slugs(html_check(NEWSLETTER))

    assert found["html-script"] == 1  # the JSON-LD one is data, not a script
    for slug in (
        "css-at-media", "css-at-media-prefers-color-scheme", "css-pseudo-class-hover",
        "css-pseudo-element-before", "css-selector-child", "css-display-flex",
        "css-margin-inline-start-end", "css-important", "css-unit-rem", "css-border-radius",
        "css-margin", "css-variables", "html-svg", "image-webp", "html-anchor-links",
        "html-doctype", "html-style", "html-h1-h6",
    ):  # fmt: skip
        assert slug in found, slug
    assert found["html-div"] == 3


def test_each_feature_lists_the_latest_support_of_each_client_with_notes() -> None:
    result = html_check('<p style="aspect-ratio: 16 / 9">x</p>')
    (warning,) = [w for w in result["Warnings"] if w["Slug"] == "css-aspect-ratio"]

    assert set(warning) == WARNING_KEYS and set(warning["Score"]) == SCORE_KEYS
    assert warning["URL"] == "https://www.caniemail.com/features/css-aspect-ratio/"
    assert warning["Results"] and all(set(r) == RESULT_KEYS for r in warning["Results"])
    assert {r["Support"] for r in warning["Results"]} <= {"yes", "partial", "no"}
    pairs = [(r["Family"], r["Platform"]) for r in warning["Results"]]
    assert len(pairs) == len(set(pairs))  # one result per client: its latest test
    noted = [r for r in warning["Results"] if r["NoteNumber"]]
    assert all(r["NoteNumber"] in warning["NotesByNumber"] for r in noted)
    score = warning["Score"]
    assert round(score["Supported"] + score["Partial"] + score["Unsupported"]) == 100


def test_the_total_is_mailpits_weighted_score() -> None:
    plain = html_check("<p>Just text</p>")["Total"]
    scripted = html_check("<p>Text</p><script>x()</script>")["Total"]

    assert set(plain) == TOTAL_KEYS
    assert plain["Tests"] == len(catalog().features)
    # The worst feature, weighted by its share of the document's elements: here <script>,
    # which no client runs, is one of two elements.
    assert scripted["Nodes"] == 2 and scripted["Unsupported"] == 50.0
    assert plain["Unsupported"] < scripted["Unsupported"]
    assert plain["Supported"] + plain["Partial"] + plain["Unsupported"] == 100.0


def test_descriptions_from_markdown_are_safe_html() -> None:
    (warning,) = [w for w in html_check("<h2>x</h2>")["Warnings"] if w["Slug"] == "html-h1-h6"]
    assert "<code>&lt;h1&gt;</code>" in warning["Description"]


def test_the_route_answers_mailpits_shape_caches_and_refuses_text_only_mail(
    make_server: Callable[..., Server],
) -> None:
    server = make_server()
    raw = f"Subject: html\r\nContent-Type: text/html\r\n\r\n{NEWSLETTER}\r\n".encode()
    html_id = send(server, raw)
    text_id = send(server, b"Subject: text\r\n\r\nplain words\r\n")
    api = Api(server)

    result = api.ok("GET", f"/api/v1/message/{html_id}/html-check")
    assert set(result) == RESPONSE_KEYS
    assert "ios" in result["Platforms"] and "Gmail" in result["Platforms"]["ios"]
    assert api.ok("GET", "/api/v1/message/latest/html-check", query="subject:html") == result

    # Writes commit in order: once this one is in, the cached result is too.
    server.store.set_read([html_id]).result(10)
    cached = (
        sqlite3.connect(server.store.path)
        .execute("SELECT name, result FROM check_results")
        .fetchall()
    )
    assert [name for name, _ in cached] == ["html"]
    assert json.loads(cached[0][1]) == result

    reply = api.get(f"/api/v1/message/{text_id}/html-check")
    assert reply.status == 400 and reply.error == "message does not contain HTML"
    assert api.get("/api/v1/message/nosuchid/html-check").status == 404


def test_the_shipped_data_has_its_licence_and_a_refresh_script() -> None:
    data = resources.files("mailtrap.checks").joinpath("data")
    assert "MIT License" in data.joinpath("LICENSE.caniemail").read_text()
    assert json.loads(data.joinpath("caniemail.json").read_text())["data"]
    tools = resources.files("mailtrap").joinpath("..", "tools", "refresh_caniemail.py")
    assert "npm" in tools.read_text()
