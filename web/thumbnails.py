"""``GET /api/v1/message/{ID}/part/{PartID}/thumb``: Mailpit's attachment thumbnail.

A 180x120 JPEG: an image at least that big is scaled and cropped to fill it, a
smaller one is scaled to fit and padded with white (so is a transparent one's
background); a part that is not an image, or not one we decode, gives a blank
white thumbnail, as in Mailpit.

An attachment is hostile input, so the cost of a thumbnail is bounded before
any pixel is decoded: at most MAX_INPUT_BYTES of the part are read (a bigger
part gets the blank thumbnail), only common raster formats are opened, the
dimensions in the image's header are checked against MAX_PIXELS before
decoding (Pillow's own ``MAX_IMAGE_PIXELS`` is set to the same bound as a
second guard), JPEGs are decoded at reduced scale, and every thumbnail is made
in a heavy-read slot (:mod:`mailtrap.web.heavy_reads`).
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app
from PIL import Image, ImageOps

from mailtrap.message import find_part
from mailtrap.web.heavy_reads import heavy_read

log = logging.getLogger(__name__)

bp = Blueprint("thumbnails", __name__, url_prefix="/api/v1")

WIDTH, HEIGHT = 180, 120  # Mailpit's size
QUALITY = 70  # Mailpit's JPEG quality
MAX_INPUT_BYTES = 16 * 1024 * 1024  # decoded bytes of an image read to make its thumbnail
MAX_PIXELS = 20_000_000  # width x height decoded at most: 80 MB as RGBA (Mailpit's bound)
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")  # only these decoders ever see attachment bytes
CACHE = "private, max-age=31536000, immutable"  # a message never changes under its ID

Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow refuses anything bigger that slipped past ours


def register(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/message/<message_id>/part/<part_id>/thumb")
@heavy_read
def thumbnail(message_id: str, part_id: str) -> Any:
    store = current_app.config["MAILTRAP_SERVER"].store
    latest = message_id == "latest"
    if latest:
        message_id = store.latest_id()
    _, source = store.source(message_id)
    part = find_part(source, part_id)
    if part is None:
        abort(404, f"message {message_id} has no part {part_id}")
    data = None
    if part.content_type.startswith("image/"):
        data = bounded(part.chunks(), MAX_INPUT_BYTES)
    headers = {
        "Cache-Control": "no-cache" if latest else CACHE,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    return Response(make_thumbnail(data), content_type="image/jpeg", headers=headers)


def bounded(chunks: Iterable[bytes], limit: int) -> bytes | None:
    """The bytes of ``chunks`` if they are at most ``limit``; None (stop reading) if more."""
    pieces: list[bytes] = []
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            return None
        pieces.append(chunk)
    return b"".join(pieces)


def make_thumbnail(data: bytes | None) -> bytes:
    """The JPEG thumbnail of the image ``data``; blank white for anything else."""
    canvas = Image.new("RGB", (WIDTH, HEIGHT), "white")
    image = _decoded(data) if data else None
    if image is not None:
        if image.width >= WIDTH and image.height >= HEIGHT:
            image = ImageOps.fit(image, (WIDTH, HEIGHT), Image.Resampling.LANCZOS)
        else:
            image = ImageOps.contain(image, (WIDTH, HEIGHT), Image.Resampling.LANCZOS)
        position = ((WIDTH - image.width) // 2, (HEIGHT - image.height) // 2)
        canvas.paste(image, position, image if image.mode == "RGBA" else None)
    output = io.BytesIO()
    canvas.save(output, "JPEG", quality=QUALITY)
    return output.getvalue()


def _decoded(data: bytes) -> Image.Image | None:
    """The first frame of ``data`` as RGB or RGBA, upright; None if it is no image we take."""
    try:
        with warnings.catch_warnings():
            # Pillow warns from MAX_IMAGE_PIXELS up: for us that is a refusal, not a warning.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
            if image.width * image.height > MAX_PIXELS:
                log.info("thumbnail refused: %dx%d pixels", image.width, image.height)
                return None
            # JPEG can decode at 1/2, 1/4 or 1/8 scale: a fraction of the time and memory.
            image.draft("RGB", (WIDTH * 2, HEIGHT * 2))
            image = ImageOps.exif_transpose(image)
            return image.convert("RGBA" if _has_alpha(image) else "RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Warning) as error:
        # Not an image, a truncated or broken one, or a bomb: the blank thumbnail.
        log.info("no thumbnail: %s: %s", type(error).__name__, error)
        return None


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
