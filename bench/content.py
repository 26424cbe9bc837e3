"""Summarizing hostile messages: CPU time of ``mailtrap.mime.summarize``, before and after.

The cases of issue 13 (an HTML body of repeated ``<script>`` tags, a header
of spaces) and a few more from tests/test_attack_content.py, each summarized
by this tree's ``mailtrap.mime`` and, with ``--before REV``, by the
``mailtrap/mime.py`` of git revision REV loaded beside it (it needs only the
standard library). Times are this thread's CPU time, best of ``--repeat``
runs; ``budget`` shows the parse_error when the CPU budget cut the work short.

Usage:
    python bench/content.py [--before c12e6ea] [--repeat 3] [--cases script-128k,...]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailtrap import mime  # noqa: E402

HEAD = b"Subject: hostile\r\nFrom: eve@example.com\r\nTo: bob@example.com\r\n"
HTML = HEAD + b"Content-Type: text/html\r\n\r\n"

CASES: dict[str, Callable[[], bytes]] = {
    "script-128k": lambda: HTML + b"<script>" * (128 * 1024 // 8),
    "script-256k": lambda: HTML + b"<script>" * (256 * 1024 // 8),
    "header-spaces-47k": lambda: HEAD + b"X-Spaces: x" + b" " * (47 * 1024) + b"y\r\n\r\nbody\r\n",
    "unclosed-tags-96k": lambda: HTML + b"<a " * (32 * 1024),
    "encoded-words-10k": lambda: HEAD.replace(b"hostile", b"=?utf-8?q?a?= " * 10_000) + b"\r\n",
    "parts-100k": lambda: (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        + b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 100_000
    ),
    "html-4mb-ordinary": lambda: HTML + b"<p>Some <b>plain</b> words &amp; a link.</p>\n" * 85_000,
}


def load_before(revision: str) -> types.ModuleType:
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:mailtrap/mime.py"],
        check=True,
        capture_output=True,
    ).stdout
    spec = importlib.util.spec_from_loader(f"mime_{revision}", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{revision}:mailtrap/mime.py", "exec"), module.__dict__)
    return module


def cost(module: types.ModuleType, raw: bytes, repeat: int) -> tuple[float, str]:
    best, error = float("inf"), ""
    for _ in range(repeat):
        start = time.thread_time()
        summary = module.summarize(raw, ["bob@example.com"])
        best = min(best, time.thread_time() - start)
        error = summary.parse_error or ""
        if best > 5:  # one run of a quadratic case is enough
            break
    return best, error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="git revision to compare with, e.g. c12e6ea")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    options = parser.parse_args()
    before = load_before(options.before) if options.before else None
    print(f"{'case':20} {'size':>9} {'before':>10} {'after':>10}  note")
    for name in options.cases.split(","):
        raw = CASES[name]()
        after, error = cost(mime, raw, options.repeat)
        was = f"{cost(before, raw, 1)[0]:9.3f}s" if before else f"{'-':>10}"
        note = error[:70]
        print(f"{name:20} {len(raw):9,} {was} {after:9.3f}s  {note}", flush=True)


if __name__ == "__main__":
    main()
