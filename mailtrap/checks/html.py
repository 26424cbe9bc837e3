"""HTML check: which HTML and CSS features a message's HTML uses, and which clients support them.

A pure function of the HTML body, answering in the shape of Mailpit's
``GET /api/v1/message/{ID}/html-check``. The HTML is parsed by lxml
(libxml2) and the CSS by tinycss2; each element, attribute and declaration
is looked at once, so the cost is linear in the body (which the message
reader has already cut at :data:`mailtrap.message.MAX_BODY_BYTES`). Styles
are not fetched: ``<link rel=stylesheet>`` counts as a feature, its content
does not.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import lxml.html
from lxml import etree

from mailtrap.checks.caniemail import Catalog, catalog
from mailtrap.checks.css_features import style_attribute_features, stylesheet_features

# Elements whose slug is not html-<tag>.
ELEMENT_SLUGS = {f"h{level}": "html-h1-h6" for level in range(1, 7)}
ELEMENT_SLUGS |= {tag: "html-lists" for tag in ("ul", "ol", "dl")}
ELEMENT_SLUGS |= {"embed": "html-object", "map": "html-image-maps", "script": "html-script"}
ELEMENT_SLUGS |= {
    tag: "html-semantics"
    for tag in (
        "article", "aside", "details", "figcaption", "figure", "footer", "header", "main",
        "mark", "nav", "section", "summary", "time",
    )
}  # fmt: skip
NOT_FEATURES = {"html", "head", "body", "meta", "title"}  # always there, or slugs of their own
ATTRIBUTE_SLUGS = {
    name: f"html-{name}"
    for name in (
        "align", "background", "cellpadding", "cellspacing", "dir", "height", "hidden", "lang",
        "popover", "required", "role", "srcset", "target", "valign", "width",
    )
}  # fmt: skip
ATTRIBUTE_SLUGS |= {"loading": "html-loading-attribute", "inert": "css-inert-attribute"}
ATTRIBUTE_SLUGS |= {"bgcolor": "css-background-color"}  # as Mailpit counts it
IMAGE_EXTENSIONS = {"jpeg": "jpg", "tif": "tiff", "heic": "heif"}
NOT_SCRIPTS = {"application/ld+json", "application/json"}  # data, not code


def html_check(html: str, data: Catalog | None = None) -> dict[str, Any]:
    """Mailpit's HTMLCheckResponse for an HTML body."""
    data = data or catalog()
    found, nodes = features(html, frozenset(data.features))
    warnings = [
        data.features[slug].warning(count) for slug, count in found.items() if slug in data.features
    ]
    nodes = max(nodes, 1)
    partial = unsupported = 0.0
    for warning in warnings:
        score = warning["Score"]
        # As Mailpit: the worst feature, weighted by how much of the document uses it.
        partial = max(partial, score["Partial"] * score["Found"] / nodes)
        unsupported = max(unsupported, score["Unsupported"] * score["Found"] / nodes)
    partial, unsupported = min(partial, 100.0), min(unsupported, 100.0 - min(partial, 100.0))

    def weight(warning: dict[str, Any]) -> float:
        score = warning["Score"]
        return (score["Partial"] + score["Unsupported"]) * score["Found"]

    warnings.sort(key=lambda warning: (-weight(warning), warning["Slug"]))
    return {
        "Warnings": warnings,
        "Platforms": data.platforms,
        "Total": {
            "Tests": len(data.features),
            "Nodes": nodes,
            "Supported": round(100.0 - partial - unsupported, 2),
            "Partial": round(partial, 2),
            "Unsupported": round(unsupported, 2),
        },
    }


def features(html: str, known: frozenset[str]) -> tuple[Counter[str], int]:
    """How often each feature is used, and how many elements the document has."""
    found: Counter[str] = Counter()
    if not html.strip():
        return found, 0
    try:
        document = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return found, 0
    if document.getroottree().docinfo.doctype:
        found["html-doctype"] += 1
    if "<body" in html.lower():  # lxml adds a body when there is none
        found["html-body"] += 1
    nodes = 0
    for element in document.iter():
        if not isinstance(element.tag, str):
            if element.tag is etree.Comment:
                found["html-comments"] += 1
            continue
        tag = element.tag.lower()
        if tag not in NOT_FEATURES:
            nodes += 1
        _element(element, tag, found, known)
    return found, nodes


def _element(element: Any, tag: str, found: Counter[str], known: frozenset[str]) -> None:
    attributes = {str(name).lower(): str(value) for name, value in element.attrib.items()}
    slug = ELEMENT_SLUGS.get(tag, f"html-{tag}")
    if tag == "script" and attributes.get("type", "").lower() in NOT_SCRIPTS:
        slug = ""
    if slug in known and tag not in NOT_FEATURES:
        found[slug] += 1
    if tag == "style":
        found += stylesheet_features(element.text or "", known)
    elif tag == "meta" and attributes.get("name", "").lower() == "color-scheme":
        found["html-meta-color-scheme"] += 1
    elif tag == "a":
        href = attributes.get("href", "").strip().lower()
        if href.startswith("#"):
            found["html-anchor-links"] += 1
        elif href.startswith("mailto:"):
            found["html-mailto-links"] += 1
    elif tag == "input":
        kind = attributes.get("type", "text").lower()
        if f"html-input-{kind}" in known:
            found[f"html-input-{kind}"] += 1
    elif tag == "button":
        kind = attributes.get("type", "submit").lower()
        if f"html-button-{kind}" in known:
            found[f"html-button-{kind}"] += 1
    elif tag == "img":
        _image(attributes, found, known)
    for name, value in attributes.items():
        if name == "style":
            found += style_attribute_features(value, known)
        elif name in ATTRIBUTE_SLUGS:
            found[ATTRIBUTE_SLUGS[name]] += 1
        elif name.startswith("aria-") and f"html-{name}" in known:
            found[f"html-{name}"] += 1


def _image(attributes: dict[str, str], found: Counter[str], known: frozenset[str]) -> None:
    if "usemap" in attributes:
        found["html-image-maps"] += 1
    source = attributes.get("src", "").strip()
    if source[:11].lower() == "data:image/":
        found["image-base64"] += 1
        return
    try:
        path = urlsplit(source).path
    except ValueError:  # such as an unclosed "[" of an IPv6 host
        return
    extension = path.rpartition(".")[2].lower() if "." in path.rpartition("/")[2] else ""
    extension = IMAGE_EXTENSIONS.get(extension, extension)
    if extension and f"image-{extension}" in known:
        found[f"image-{extension}"] += 1
