"""The OpenAPI document at /api/v1/swagger.json: it matches the routes, and schemathesis
finds no request it answers with a 500 or with a response the document does not allow."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
import schemathesis
from api_client import Api, plain, send
from hypothesis import HealthCheck, given, settings
from schemathesis import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mailtrap import Server
from mailtrap.web.openapi import document

# Served, and on purpose not in the document: the inbox page and its files (not an
# API), and the websocket, which Swagger 2.0 cannot describe (its frames: README).
UNDOCUMENTED = {("GET", "/"), ("GET", "/static/{filename}"), ("GET", "/api/events")}


def _flask_routes(server: Server) -> set[tuple[str, str]]:
    assert server.app is not None
    routes = set()
    for rule in server.app.url_map.iter_rules():
        # Flask's <converter:name> as OpenAPI's {Name}, named as the document names them.
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{" + _PARAMETER_NAMES[m[1]] + "}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                routes.add((method, path))
    return routes


_PARAMETER_NAMES = {"message_id": "ID", "part_id": "PartID", "tag": "Tag", "filename": "filename"}


def _documented() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in document()["paths"].items()
        for method in operations
    }


def test_every_route_is_in_the_document_and_every_entry_is_a_route(server: Server):
    served = _flask_routes(server) - UNDOCUMENTED
    documented = _documented()
    assert served - documented == set(), "routes missing from web/openapi.py"
    assert documented - served == set(), "web/openapi.py documents routes that do not exist"


def test_the_document_is_served_where_mailpit_serves_its_own(server: Server):
    api = Api(server)
    served = api.ok("GET", "/api/v1/swagger.json")
    assert served["swagger"] == "2.0"
    assert set(served["paths"]) == set(document()["paths"])


# -- schemathesis against a live server ------------------------------------------------------


@pytest.fixture(scope="module")
def schema_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from mailtrap.config import Address

    ephemeral = Address("127.0.0.1", 0)
    server = Server(
        db=tmp_path_factory.mktemp("openapi") / "mail.db",
        smtp=ephemeral,
        http=ephemeral,
        pop3=None,
        tag=(),
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(schema_server: Server) -> BaseSchema:
    # Some mail for the operations that read one, sent once: schemathesis deletes freely.
    for number in range(3):
        send(schema_server, plain(f"Schema {number}", headers="X-Tags: one, Two\r\n"))
    url = f"{schema_server.http_url.rstrip('/')}/api/v1/swagger.json"
    return schemathesis.openapi.from_url(url)


CHECKS: list[Callable[..., object]] = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 8  # per operation: ~30 operations, a few hundred requests in all


def test_no_generated_request_gets_a_500_or_an_undocumented_answer(api_schema: BaseSchema):
    # Hypothesis directly, a test per operation: schemathesis' pytest integration
    # reads a pytest internal that pytest 9.2 no longer has.
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,  # the same requests every run
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call(timeout=30)
            assert response.status_code < 500 or response.status_code == 503, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
            )
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Exception as error:  # each operation's first failure, all reported together
            failures.append(f"{operation.label}: {error}"[:2000])
    assert not failures, "\n\n".join(failures)
