"""The ``/metrics`` route: Prometheus' text format (see :mod:`mailtrap.ops.metrics`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, Response
from prometheus_client import CONTENT_TYPE_LATEST

from mailtrap.ops.metrics import exposition, registry

if TYPE_CHECKING:
    from mailtrap.server import Server


def register(app: Flask) -> None:
    server: Server = app.config["MAILTRAP_SERVER"]
    metrics = registry(server)

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(exposition(metrics), content_type=CONTENT_TYPE_LATEST)
