"""Response headers that make the browser save content instead of rendering it."""

from __future__ import annotations

import re
from urllib.parse import quote

_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\/;]')


def attachment_headers(filename: str) -> dict[str, str]:
    """``Content-Disposition: attachment`` with ``filename`` (RFC 6266), and no sniffing.

    The name comes from a message, so it is only ever a label: path separators,
    quotes and control characters are replaced, and non-ASCII travels percent-encoded.
    """
    name = _UNSAFE.sub("_", filename).strip(" .") or "attachment"
    fallback = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    disposition = f'attachment; filename="{fallback}"'
    if fallback != name:
        disposition += f"; filename*=UTF-8''{quote(name, safe='')}"
    return {
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        # Even opened directly, a part runs no script and reaches nothing.
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
