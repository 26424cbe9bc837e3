"""Attack suite for the message checks: hostile content costs time linear in its size.

As in test_attack_content: each function is timed on an input of size n and
of 8n in the same test (CPU time, best of a few runs); linear work costs about
8x, quadratic about 64x, and the bound is LINEAR_BOUND. No absolute time is
asserted.
"""

from __future__ import annotations

from collections.abc import Callable

import dkim.canonicalization
import pytest
from test_attack_content import LINEAR_BOUND, _ratio

from mailtrap.checks.caniemail import catalog
from mailtrap.checks.css_features import stylesheet_features
from mailtrap.checks.html import html_check
from mailtrap.checks.links import extract_links
from mailtrap.checks.signatures import too_large

KNOWN = frozenset(catalog().features)


def _text(function: Callable[[str], object]) -> Callable[[bytes], object]:
    return lambda data: function(data.decode())


CASES: dict[str, tuple[Callable[[bytes], object], Callable[[int], bytes], int]] = {
    "html: a long style attribute": (
        _text(html_check),
        lambda n: b'<p style="' + b"margin:1px;" * (n // 11) + b'">x</p>',
        16_000,
    ),
    "html: many elements with styles": (
        _text(html_check),
        lambda n: b'<td style="display:flex" align=left>x</td>' * (n // 42),
        16_000,
    ),
    "css: nested brackets": (
        _text(lambda css: stylesheet_features(css, KNOWN)),
        lambda n: b"a{b:" + b"(" * n + b"}",
        16_000,
    ),
    "css: many pseudo-classes": (
        _text(lambda css: stylesheet_features(css, KNOWN)),
        lambda n: b":hover" * (n // 6) + b"{color:red}",
        16_000,
    ),
    "links: a text of URL beginnings": (
        lambda data: extract_links("", data.decode()),
        lambda n: b"http://" * (n // 7),
        32_000,
    ),
    # dkimpy's own regular expression took 1.4 s for 20,000 spaces, 3.4 s for 40,000.
    "dkim: a body line of spaces": (
        lambda data: dkim.canonicalization.Relaxed.canonicalize_body(data),
        lambda n: b" " * n + b"x\r\n",
        10_000,
    ),
    "dkim: a header folded over many lines": (
        lambda data: too_large(len(data), data),
        lambda n: b"Subject: x\r\n" + b" y\r\n" * (n // 4),
        64_000,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_costs_grow_linearly_with_hostile_input(name: str) -> None:
    function, make, n = CASES[name]
    ratio = _ratio(function, make, n)
    assert ratio < LINEAR_BOUND, f"{name}: 8x the input cost {ratio:.1f}x the time"


def test_linear_strip_gives_the_same_bytes_as_dkimpys_expression() -> None:
    import re

    samples = [b"a \t\r\nb\r\n", b"  \r\n\r\n", b"x  ", b"", b"\t\r\n \r\nend \t"]
    for sample in samples:
        expected = re.sub(b"[\t ]+\r\n", b"\r\n", sample)
        assert dkim.canonicalization.strip_trailing_whitespace(sample) == expected
