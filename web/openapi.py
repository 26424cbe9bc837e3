"""Our OpenAPI (Swagger 2.0) document, served at ``/api/v1/swagger.json`` as Mailpit serves its own.

Swagger 2.0 because that is what Mailpit's file at this path is, and what
tools pointed at a Mailpit read. The document describes what this server
does, not what Mailpit's does: errors are JSON ``{"Error": ...}``, the routes
beyond Mailpit's are in it and the ones Mailtrap lacks are not. A test
compares it with the Flask routes (tests/test_openapi.py), so a route added
without its entry, or an entry without its route, fails there.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from mailtrap import __version__

JSON = "application/json"
TEXT = "text/plain"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/definitions/{name}"}


def _object(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An object with these properties, every one present in our answers."""
    return {"type": "object", "required": sorted(properties), "properties": properties, **extra}


STRING = {"type": "string"}
INTEGER = {"type": "integer", "minimum": 0}
BOOLEAN = {"type": "boolean"}
STRINGS = {"type": "array", "items": STRING}
ADDRESSES = {"type": "array", "items": _ref("Address")}

ATTACHMENT = _object(
    {
        "PartID": STRING,
        "FileName": STRING,
        "ContentType": STRING,
        "ContentID": STRING,
        "Size": INTEGER,
        "Checksums": _object({"MD5": STRING, "SHA1": STRING, "SHA256": STRING}),
    }
)
SUMMARY_FIELDS = {
    "ID": STRING,
    "MessageID": STRING,
    "Read": BOOLEAN,
    "From": _ref("Address"),
    "To": ADDRESSES,
    "Cc": ADDRESSES,
    "Bcc": ADDRESSES,
    "ReplyTo": ADDRESSES,
    "Subject": STRING,
    "Created": {"type": "string", "format": "date-time"},
    "Username": STRING,
    "Tags": STRINGS,
    "Size": INTEGER,
    "Attachments": INTEGER,
    "Snippet": STRING,
}
MESSAGE_FIELDS = {
    **{name: SUMMARY_FIELDS[name] for name in SUMMARY_FIELDS if name != "Created"},
    "ReturnPath": STRING,
    "ListUnsubscribe": _object(
        {"Header": STRING, "Links": STRINGS, "Errors": STRING, "HeaderPost": STRING}
    ),
    "Date": {"type": "string", "format": "date-time"},
    "Text": STRING,
    "HTML": STRING,
    "Inline": {"type": "array", "items": _ref("Attachment")},
    "Attachments": {"type": "array", "items": _ref("Attachment")},
}
DEFINITIONS: dict[str, Any] = {
    "Address": _object({"Name": STRING, "Address": STRING}),
    "Attachment": ATTACHMENT,
    "MessageSummary": _object(SUMMARY_FIELDS),
    "Message": _object(MESSAGE_FIELDS),
    "MessagesSummary": _object(
        {
            "total": INTEGER,
            "unread": INTEGER,
            "count": INTEGER,
            "messages_count": INTEGER,
            "messages_unread": INTEGER,
            "start": INTEGER,
            "tags": STRINGS,
            "messages": {"type": "array", "items": _ref("MessageSummary")},
        }
    ),
    "AppInformation": _object(
        {
            "Version": STRING,
            "LatestVersion": STRING,
            "Database": STRING,
            "DatabaseSize": INTEGER,
            "Messages": INTEGER,
            "Unread": INTEGER,
            "Tags": {"type": "object", "additionalProperties": INTEGER},
            "RuntimeStats": _object(
                {
                    name: INTEGER
                    for name in (
                        "Uptime",
                        "Memory",
                        "MessagesDeleted",
                        "SMTPAccepted",
                        "SMTPAcceptedSize",
                        "SMTPRejected",
                        "SMTPIgnored",
                    )
                }
            ),
            "Mailtrap": _object({"Version": STRING}),
        }
    ),
    "WebUIConfiguration": _object(
        {
            "Label": STRING,
            "MessageRelay": {"type": "object"},
            "SpamAssassin": BOOLEAN,
            "ChaosEnabled": BOOLEAN,
            "DuplicatesIgnored": BOOLEAN,
            "HideDeleteAllButton": BOOLEAN,
            "Version": STRING,
            "SMTP": {"type": "object"},
        }
    ),
    "TagRule": _object({"Tags": STRINGS, "Match": STRING}),
    "Error": _object({"Error": STRING}),
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "schema": _ref("Error")}


ERRORS = {
    "400": _error("A bad request: what is wrong is in Error"),
    "401": _error("Credentials needed (--ui-auth-file)"),
    "403": _error("Refused: a foreign page, or a Host that is not allowed"),
    "404": _error("No such message, part, tag or route"),
    "413": _error("The request body is too large"),
    "415": _error("A form body where the API takes JSON"),
    "429": _error("Too many failed logins from this address"),
    "503": _error("The message store or the server is busy or unavailable; try again"),
}
OK = {"description": 'Plain text "ok"', "schema": STRING}
NOT_FOUND: dict[str, Any] = {}  # every operation can answer 404 (ERRORS)


def _operation(
    summary: str,
    responses: dict[str, Any],
    *,
    produces: tuple[str, ...] = (JSON,),
    parameters: tuple[dict[str, Any], ...] = (),
    consumes: tuple[str, ...] = (),
    tag: str = "messages",
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "produces": list(produces) if JSON in produces else [*produces, JSON],
        "parameters": list(parameters),
        "responses": {**ERRORS, **responses},
    }
    if consumes:
        operation["consumes"] = list(consumes)
    return operation


def _query(name: str, description: str, *, required: bool = False, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "required": required,
        **({"type": "string"} | schema),
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "type": "string",
        "description": description,
    }


def _body(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": "Body", "in": "body", "description": description, "schema": schema}


INT64 = {"type": "integer", "format": "int64", "minimum": -(2**63), "maximum": 2**63 - 1}
START = _query("start", "Pagination offset (negative: 0)", **(INT64 | {"maximum": 10_000_000}))
LIMIT = _query("limit", "Page size (0 or negative: Mailpit's meaning); at most 1000", **INT64)
BEFORE = _query(
    "before", "Only messages received before this moment: RFC 3339, a date or Unix time"
)
TZ = _query("tz", "IANA time zone for dates in the query (before:, after:)")
QUERY = _query("query", "A search (see the README's search syntax)", required=True, maxLength=4096)
ID = _path("ID", "A message ID, or latest")
LATEST_QUERY = _query("query", "With ID latest: the newest message this search finds")
IDS_BODY = _object({"IDs": STRINGS})
JSON_BODY = (JSON, "application/x-www-form-urlencoded")
SUMMARIES = {"200": {"description": "A page of summaries", "schema": _ref("MessagesSummary")}}


def _paths() -> dict[str, Any]:
    message = (ID, LATEST_QUERY, TZ)
    return {
        "/api/v1/messages": {
            "get": _operation(
                "List messages, newest first", SUMMARIES, parameters=(START, LIMIT, BEFORE, TZ)
            ),
            "put": _operation(
                "Mark messages (IDs, a Search, or all) read or unread",
                {"200": OK},
                produces=(TEXT,),
                consumes=JSON_BODY,
                parameters=(
                    _body(
                        "IDs or Search, and Read",
                        {
                            "type": "object",
                            "properties": {"IDs": STRINGS, "Search": STRING, "Read": BOOLEAN},
                        },
                    ),
                    TZ,
                ),
            ),
            "delete": _operation(
                "Delete messages by ID; no IDs: every message",
                {"200": OK},
                produces=(TEXT,),
                consumes=JSON_BODY,
                parameters=(_body("IDs", IDS_BODY),),
            ),
        },
        "/api/v1/messages/release": {
            "post": _operation(
                "Relay IDs, a Search's matches, or (neither) every message to To, at most "
                "10000 deliveries (Mailtrap; see the README's Relay)",
                {
                    "200": {
                        "description": "The messages queued, the recipients, IDs not found",
                        "schema": _object(
                            {
                                "Messages": {
                                    "type": "array",
                                    "items": _object({"ID": STRING, "Subject": STRING}),
                                },
                                "To": STRINGS,
                                "Missing": STRINGS,
                            }
                        ),
                    }
                },
                consumes=JSON_BODY,
                parameters=(
                    _body(
                        "To, and IDs or Search",
                        {
                            "type": "object",
                            "required": ["To"],
                            "properties": {"To": STRINGS, "IDs": STRINGS, "Search": STRING},
                        },
                    ),
                    TZ,
                ),
                tag="relay",
            )
        },
        "/api/v1/search": {
            "get": _operation(
                "Search messages, newest first",
                SUMMARIES,
                parameters=(
                    QUERY,
                    START,
                    LIMIT,
                    BEFORE,
                    TZ,
                    _query(
                        "wait",
                        "Seconds to wait for a first match (Mailtrap)",
                        type="number",
                        minimum=0,
                        maximum=300,
                    ),
                ),
            ),
            "delete": _operation(
                "Delete the messages a search finds",
                {"200": OK},
                produces=(TEXT,),
                parameters=(QUERY, TZ),
            ),
        },
        "/api/v1/message/{ID}": {
            "get": _operation(
                "A message (reading it marks it read)",
                {"200": {"description": "The message", "schema": _ref("Message")}, **NOT_FOUND},
                parameters=message,
            )
        },
        "/api/v1/message/{ID}/headers": {
            "get": _operation(
                "The header fields, by canonical name",
                {
                    "200": {
                        "description": "Headers",
                        "schema": {"type": "object", "additionalProperties": STRINGS},
                    },
                    **NOT_FOUND,
                },
                parameters=message,
            )
        },
        "/api/v1/message/{ID}/raw": {
            "get": _operation(
                "The message as received",
                {"200": {"description": "The source", "schema": STRING}, **NOT_FOUND},
                produces=(TEXT,),
                parameters=(*message, _query("dl", "1: as a download")),
            )
        },
        "/api/v1/message/{ID}/part/{PartID}": {
            "get": _operation(
                "A part's decoded content, as a download",
                {
                    "200": {"description": "The part, in its own type", "schema": {"type": "file"}},
                    **NOT_FOUND,
                },
                produces=("application/octet-stream", "*/*"),
                parameters=(*message, _path("PartID", "The part's PartID")),
            )
        },
        "/api/v1/message/{ID}/part/{PartID}/thumb": {
            "get": _operation(
                "A thumbnail of an image part (JPEG)",
                {"200": {"description": "The thumbnail", "schema": {"type": "file"}}},
                produces=("image/jpeg",),
                parameters=(*message, _path("PartID", "The part's PartID")),
            )
        },
        "/api/v1/message/{ID}/calendar": {
            "get": _operation(
                "The calendar invitations (text/calendar parts) of a message",
                {"200": {"description": "Invitations", "schema": {"type": "object"}}},
                parameters=message,
            )
        },
        "/api/v1/message/{ID}/release": {
            "post": _operation(
                "Relay the message to To (queued; see the README's Relay)",
                {"200": OK},
                produces=(TEXT,),
                consumes=JSON_BODY,
                parameters=(*message, _body("To", _object({"To": STRINGS}))),
                tag="relay",
            )
        },
        "/api/v1/message/{ID}/relay": {
            "get": _operation(
                "The message's relay deliveries (Mailtrap); with wait and changed, a long poll",
                {"200": {"description": "Deliveries, Version", "schema": {"type": "object"}}},
                parameters=(
                    *message,
                    _query(
                        "wait",
                        "Seconds to wait for a state other than changed",
                        type="number",
                        minimum=0,
                        maximum=300,
                    ),
                    _query("changed", "The Version last seen"),
                ),
                tag="relay",
            )
        },
        **{
            f"/api/v1/message/{{ID}}/{check}": {
                "get": _operation(
                    f"The {what} of a message (cached; ?refresh=1 checks again)",
                    {"200": {"description": "The result", "schema": {"type": "object"}}},
                    parameters=(
                        *message,
                        _query("refresh", "1: check again"),
                        *(
                            (_query("follow", "1: follow redirects"),)
                            if check == "link-check"
                            else ()
                        ),
                    ),
                    tag="checks",
                )
            }
            for check, what in (
                ("html-check", "HTML compatibility check"),
                ("link-check", "link check"),
                ("sa-check", "SpamAssassin check"),
                ("auth-check", "SPF, DKIM, DMARC and ARC check"),
            )
        },
        "/api/v1/checks": {
            "get": _operation(
                "Which message checks this server can run",
                {"200": {"description": "Check settings", "schema": {"type": "object"}}},
                tag="checks",
            )
        },
        "/api/v1/tags": {
            "get": _operation(
                "Every tag in use", {"200": {"description": "Tags", "schema": STRINGS}}, tag="tags"
            ),
            "put": _operation(
                "Set the tags of messages",
                {"200": OK},
                produces=(TEXT,),
                consumes=JSON_BODY,
                parameters=(
                    _body(
                        "IDs and Tags",
                        {"type": "object", "properties": {"IDs": STRINGS, "Tags": STRINGS}},
                    ),
                ),
                tag="tags",
            ),
        },
        "/api/v1/tags/{Tag}": {
            "put": _operation(
                "Rename a tag; refused when the new name is another tag's",
                {"200": OK},
                produces=(TEXT,),
                consumes=JSON_BODY,
                parameters=(
                    _path("Tag", "The tag (any case)"),
                    _body("Name", _object({"Name": STRING})),
                ),
                tag="tags",
            ),
            "delete": _operation(
                "Take a tag off every message",
                {"200": OK},
                produces=(TEXT,),
                parameters=(_path("Tag", "The tag (any case)"),),
                tag="tags",
            ),
        },
        "/api/v1/tag-rules": {
            "get": _operation(
                "The tag rules (--tag, --tags-config) (Mailtrap)",
                {
                    "200": {
                        "description": "Rules",
                        "schema": {"type": "array", "items": _ref("TagRule")},
                    }
                },
                tag="tags",
            )
        },
        "/api/v1/tag-rules/apply": {
            "post": _operation(
                "Apply the tag rules to the stored messages (Mailtrap)",
                {
                    "200": {
                        "description": "How many messages the rules found and how many got a tag",
                        "schema": _object(
                            {"Rules": INTEGER, "Matched": INTEGER, "Tagged": INTEGER}
                        ),
                    }
                },
                tag="tags",
            )
        },
        "/api/v1/send": {
            "post": _operation(
                "Compose a message and store it as if it came over SMTP",
                {"200": {"description": "Its ID", "schema": _object({"ID": STRING})}},
                consumes=(JSON,),
                parameters=(_body("Mailpit's SendRequest", {"type": "object"}),),
                tag="send",
            )
        },
        "/api/v1/info": {
            "get": _operation(
                "Versions, counts, database size and runtime statistics",
                {
                    "200": {
                        "description": "Application information",
                        "schema": _ref("AppInformation"),
                    }
                },
                tag="application",
            )
        },
        "/api/v1/webui": {
            "get": _operation(
                "Settings of the web inbox",
                {
                    "200": {
                        "description": "Web UI configuration",
                        "schema": _ref("WebUIConfiguration"),
                    }
                },
                tag="application",
            )
        },
        "/api/v1/chaos": {
            "get": _operation(
                "Mailpit's Chaos triggers (400 unless --enable-chaos)",
                {"200": {"description": "Triggers", "schema": {"type": "object"}}},
                tag="application",
            ),
            "put": _operation(
                "Set Mailpit's Chaos triggers (400 unless --enable-chaos)",
                {"200": {"description": "Triggers", "schema": {"type": "object"}}},
                consumes=(JSON,),
                parameters=(_body("Triggers", {"type": "object"}),),
                tag="application",
            ),
        },
        "/api/v1/swagger.json": {
            "get": _operation(
                "This document",
                {"200": {"description": "Swagger 2.0", "schema": {"type": "object"}}},
                tag="application",
            )
        },
        "/view/latest": {
            "get": _operation(
                "To the inbox with the newest (matching) message open",
                {"302": {"description": "Redirect"}},
                produces=("text/html",),
                parameters=(LATEST_QUERY, TZ),
                tag="view",
            )
        },
        "/view/{ID}": {
            "get": _operation(
                "To the inbox with this message open",
                {"302": {"description": "Redirect"}},
                produces=("text/html",),
                parameters=(_path("ID", "A message ID"),),
                tag="view",
            )
        },
        "/view/{ID}.html": {
            "get": _operation(
                "The HTML body alone, under a Content-Security-Policy that runs no script",
                {"200": {"description": "HTML", "schema": STRING}, **NOT_FOUND},
                produces=("text/html",),
                parameters=(
                    _path("ID", "A message ID, or latest"),
                    _query("remote", "1: load remote images"),
                ),
                tag="view",
            )
        },
        "/view/{ID}.txt": {
            "get": _operation(
                "The text body alone",
                {"200": {"description": "Text", "schema": STRING}, **NOT_FOUND},
                produces=(TEXT,),
                parameters=(_path("ID", "A message ID, or latest"),),
                tag="view",
            )
        },
        "/metrics": {
            "get": _operation(
                "Prometheus metrics",
                {"200": {"description": "Prometheus' text format", "schema": STRING}},
                produces=(TEXT, "text/plain; version=0.0.4"),
                tag="health",
            )
        },
        "/livez": {
            "get": _operation(
                "Alive",
                {"200": {"description": "ok", "schema": _object({"status": STRING})}},
                tag="health",
            )
        },
        "/readyz": {
            "get": _operation(
                "Ready: the database answers",
                {
                    "200": {
                        "description": "ok",
                        "schema": _object({"status": STRING, "version": STRING}),
                    }
                },
                tag="health",
            )
        },
    }


def document() -> dict[str, Any]:
    """The whole Swagger 2.0 document."""
    return {
        "swagger": "2.0",
        "info": {
            "title": "Mailtrap API (Mailpit-compatible)",
            "description": "Mailpit's API v1 as Mailtrap serves it (README: the differences).",
            "version": __version__,
        },
        "consumes": [JSON],
        "produces": [JSON],
        "schemes": ["http", "https"],
        "paths": _paths(),
        "definitions": DEFINITIONS,
    }


def register(app: Flask) -> None:
    app.add_url_rule("/api/v1/swagger.json", "openapi", _serve, methods=["GET"])


def _serve() -> Any:
    body = document()
    # Under --webroot the paths start there, as Mailpit's basePath does.
    root = request.script_root
    if root:
        body["basePath"] = root
    return jsonify(body)
