"""Which caniemail CSS features a style sheet or a ``style`` attribute uses (tinycss2).

Every walk over tokens is iterative, with an explicit stack, so deeply
nested blocks in hostile CSS cost linear time and no recursion.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import tinycss2
from tinycss2 import ast

# Properties whose caniemail slug is not css-<name>.
PROPERTY_SLUGS = {
    "margin-inline-start": "css-margin-inline-start-end",
    "margin-inline-end": "css-margin-inline-start-end",
    "margin-block-start": "css-margin-block-start-end",
    "margin-block-end": "css-margin-block-start-end",
    "padding-inline-start": "css-padding-inline-start-end",
    "padding-inline-end": "css-padding-inline-start-end",
    "padding-block-start": "css-padding-block-start-end",
    "padding-block-end": "css-padding-block-start-end",
    "margin-inline": "css-margin-inline-block",
    "margin-block": "css-margin-inline-block",
    "padding-inline": "css-padding-inline-block",
    "padding-block": "css-padding-inline-block",
    "border-inline": "css-border-inline-block",
    "border-block": "css-border-inline-block",
    "block-size": "css-block-inline-size",
    "left": "css-left-right-top-bottom",
    "right": "css-left-right-top-bottom",
    "top": "css-left-right-top-bottom",
    "bottom": "css-left-right-top-bottom",
    "columns": "css-column-layout-properties",
}
# Property-name prefixes that share one slug.
PREFIX_SLUGS = (
    ("border-inline-", "css-border-inline-block-individual"),
    ("border-block-", "css-border-inline-block-individual"),
    ("border-start-", "css-border-radius-logical"),
    ("border-end-", "css-border-radius-logical"),
    ("column-", "css-column-layout-properties"),
    ("grid-template", "css-grid-template"),
    ("animation", "css-animation"),
    ("transition", "css-transition"),
)
DISPLAY_SLUGS = {
    "flex": "css-display-flex",
    "inline-flex": "css-display-flex",
    "grid": "css-display-grid",
    "inline-grid": "css-display-grid",
    "none": "css-display-none",
}
FUNCTION_SLUGS = {
    "calc": "css-unit-calc",
    "rgb": "css-rgb",
    "rgba": "css-rgba",
    "linear-gradient": "css-linear-gradient",
    "radial-gradient": "css-radial-gradient",
    "conic-gradient": "css-conic-gradient",
    "clamp": "css-function-clamp",
    "min": "css-function-min",
    "max": "css-function-max",
    "light-dark": "css-function-light-dark",
    "var": "css-variables",
}
UNIT_SLUGS = {unit: f"css-unit-{unit}" for unit in ("ch", "cm", "em", "ex", "in", "mm", "pc")}
UNIT_SLUGS |= {unit: f"css-unit-{unit}" for unit in ("pt", "px", "rem", "vh", "vmax", "vmin", "vw")}
MEDIA_FEATURE_SLUGS = {
    "prefers-color-scheme": "css-at-media-prefers-color-scheme",
    "prefers-reduced-motion": "css-at-media-prefers-reduced-motion",
    "hover": "css-at-media-hover",
    "orientation": "css-at-media-orientation",
}
COMBINATOR_SLUGS = {
    ">": "css-selector-child",
    "+": "css-selector-adjacent-sibling",
    "~": "css-selector-general-sibling",
    ",": "css-selector-grouping",
    "*": "css-selector-universal",
}


def property_slug(name: str, known: set[str] | frozenset[str]) -> str | None:
    """The slug of a property: its own, a shared one, or its shorthand's (margin-top: margin)."""
    name = name.lower()
    if name.startswith("-") and not name.startswith("--"):  # -webkit-mask-image: mask-image
        name = name.split("-", 2)[-1]
    if name in PROPERTY_SLUGS:
        return PROPERTY_SLUGS[name]
    if name.endswith("-radius") and name.startswith("border-"):
        return "css-border-radius" if name.count("-") <= 3 else "css-border-radius-logical"
    for prefix, slug in PREFIX_SLUGS:
        if name.startswith(prefix) and name != "column-count":
            return slug
    while name:
        if f"css-{name}" in known:
            return f"css-{name}"
        name = name.rpartition("-")[0]
    return None


def stylesheet_features(css: str, known: frozenset[str]) -> Counter[str]:
    """Features of a ``<style>`` element's content."""
    found: Counter[str] = Counter()
    rules: list[Any] = list(tinycss2.parse_stylesheet(css, skip_comments=False))
    while rules:
        rule = rules.pop()
        if rule.type == "comment":
            found["css-comments"] += 1
        elif rule.type == "at-rule":
            _at_rule(rule, found, known)
            if rule.content is not None and rule.lower_at_keyword in ("media", "supports"):
                rules.extend(tinycss2.parse_rule_list(rule.content, skip_comments=False))
        elif rule.type == "qualified-rule":
            _selector(rule.prelude, found)
            items = tinycss2.parse_blocks_contents(rule.content, skip_comments=False)
            found += declaration_features(items, known, nested=rules)
    return found


def style_attribute_features(style: str, known: frozenset[str]) -> Counter[str]:
    """Features of a ``style="..."`` attribute."""
    return declaration_features(tinycss2.parse_blocks_contents(style, skip_comments=False), known)


def declaration_features(
    items: Iterable[Any], known: frozenset[str], nested: list[Any] | None = None
) -> Counter[str]:
    """Features of a parsed declaration list; nested rules (CSS nesting) go to ``nested``."""
    found: Counter[str] = Counter()
    for item in items:
        if item.type == "declaration":
            _declaration(item, found, known)
        elif item.type == "qualified-rule" and nested is not None:
            found["css-nesting"] += 1
            nested.append(item)
        elif item.type == "comment":
            found["css-comments"] += 1
    return found


def _declaration(declaration: Any, found: Counter[str], known: frozenset[str]) -> None:
    name = declaration.lower_name
    if name.startswith("--"):
        found["css-variables"] += 1
    else:
        slug = property_slug(name, known)
        if slug is not None:
            found[slug] += 1
    if declaration.important:
        found["css-important"] += 1
    for token in _tokens(declaration.value):
        if token.type == "ident":
            value = token.lower_value
            if name == "display" and value in DISPLAY_SLUGS:
                found[DISPLAY_SLUGS[value]] += 1
            elif value == "initial":
                found["css-unit-initial"] += 1
            elif value == "system-ui":
                found["css-sytem-ui"] += 1  # sic: caniemail's slug
        elif token.type == "dimension" and token.lower_unit in UNIT_SLUGS:
            found[UNIT_SLUGS[token.lower_unit]] += 1
        elif token.type == "percentage":
            found["css-unit-percent"] += 1
        elif token.type == "function" and token.lower_name in FUNCTION_SLUGS:
            found[FUNCTION_SLUGS[token.lower_name]] += 1


def _at_rule(rule: Any, found: Counter[str], known: frozenset[str]) -> None:
    keyword = rule.lower_at_keyword
    if keyword.endswith("keyframes"):  # -webkit-keyframes too
        keyword = "keyframes"
    if f"css-at-{keyword}" in known:
        found[f"css-at-{keyword}"] += 1
    if keyword != "media":
        return
    for token in _tokens(rule.prelude):
        if token.type == "ident":
            feature = token.lower_value
            if "device-pixel-ratio" in feature:
                found["css-at-media-device-pixel-ratio"] += 1
            elif feature in MEDIA_FEATURE_SLUGS:
                found[MEDIA_FEATURE_SLUGS[feature]] += 1


def _selector(prelude: list[Any], found: Counter[str]) -> None:
    colons = 0  # ":" literals just before this token: 1 pseudo-class, 2 pseudo-element
    compound = 0  # simple selectors in the current compound selector
    descendant = False  # white space after a compound: a descendant combinator, unless another
    for token in prelude:
        kind = token.type
        if descendant and kind != "whitespace":
            if not (kind == "literal" and token.value in COMBINATOR_SLUGS and token.value != "*"):
                found["css-selector-descendant"] += 1
            descendant = False
        if kind == "literal" and token.value == ":":
            colons += 1
            continue
        if colons:
            name = getattr(token, "lower_value", None) or getattr(token, "lower_name", None)
            if name:
                legacy = name in ("before", "after", "first-letter", "first-line")
                prefix = "element" if colons > 1 or legacy else "class"
                found[f"css-pseudo-{prefix}-{name}"] += 1
            colons = 0
            continue
        if kind == "hash" and token.is_identifier:
            found["css-selector-id"] += 1
            compound += 1
        elif kind == "literal" and token.value == ".":
            found["css-selector-class"] += 1
            compound += 1
        elif kind == "[] block":
            found["css-selector-attribute"] += 1
            compound += 1
        elif kind == "literal" and token.value in COMBINATOR_SLUGS:
            found[COMBINATOR_SLUGS[token.value]] += 1
            compound = compound + 1 if token.value == "*" else 0
        elif kind == "whitespace":
            descendant = descendant or compound > 0
            compound = 0
        elif kind == "ident":
            found["css-selector-type"] += 1
            compound += 1
        if compound == 2:
            found["css-selector-chaining"] += 1


def _tokens(tokens: Iterable[Any]) -> Iterator[Any]:
    """Every token, also inside functions and blocks, without recursion."""
    stack: list[Iterator[Any]] = [iter(tokens)]
    while stack:
        token = next(stack[-1], None)
        if token is None:
            stack.pop()
            continue
        yield token
        if isinstance(token, ast.FunctionBlock | ast.ParenthesesBlock | ast.SquareBracketsBlock):
            stack.append(iter(token.arguments if token.type == "function" else token.content))
        elif isinstance(token, ast.CurlyBracketsBlock):
            stack.append(iter(token.content))
