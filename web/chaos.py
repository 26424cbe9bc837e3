"""``GET/PUT /api/v1/chaos``: Mailpit's chaos triggers (see :mod:`mailtrap.hooks.chaos`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify

from mailtrap.hooks.chaos import ChaosError
from mailtrap.web.params import json_body

if TYPE_CHECKING:
    from mailtrap.server import Server

NOT_ENABLED = "Chaos is not enabled (start the server with --enable-chaos)"


def register(app: Flask) -> None:
    server: Server = app.config["MAILTRAP_SERVER"]
    chaos = server.chaos

    @app.get("/api/v1/chaos")
    def get_chaos() -> Any:
        if not chaos.enabled:
            return jsonify({"Error": NOT_ENABLED}), 400
        return jsonify(chaos.to_json())

    @app.put("/api/v1/chaos")
    def set_chaos() -> Any:
        if not chaos.enabled:
            return jsonify({"Error": NOT_ENABLED}), 400
        body = json_body()
        try:
            chaos.set_from_json({} if body is None else body)
        except ChaosError as error:
            return jsonify({"Error": str(error)}), 400
        return jsonify(chaos.to_json())
