// HTML source as highlighted text: a linear scan into spans of tags, attribute
// names, values and comments. Everything goes in as Text nodes, never as markup.

import { h } from "./dom.js";

const HIGHLIGHT_LIMIT = 512 * 1024; // characters highlighted; the rest is shown plain
const NAME_END = /[\s/>=]/;

export function highlightHtml(source) {
  const nodes = [];
  const end = Math.min(source.length, HIGHLIGHT_LIMIT);
  let text = 0; // start of the plain text not yet emitted
  let i = 0;
  const span = (cls, from, to) => nodes.push(h("span", { class: cls, text: source.slice(from, to) }));
  const flush = (to) => {
    if (to > text) nodes.push(source.slice(text, to));
  };
  while (i < end) {
    const open = source.indexOf("<", i);
    if (open < 0 || open >= end) break;
    const next = source[open + 1] || "";
    if (source.startsWith("<!--", open)) {
      flush(open);
      const close = source.indexOf("-->", open + 4);
      const stop = close < 0 ? source.length : close + 3;
      span("hl-comment", open, stop);
      i = text = stop;
    } else if (/[A-Za-z/!?]/.test(next)) {
      flush(open);
      i = tag(source, open, span);
      text = i;
    } else {
      i = open + 1;
    }
  }
  text = Math.min(text, source.length);
  nodes.push(source.slice(text));
  return nodes;
}

/** Emit the tag at `open` (name, attributes, values); return where it ends. */
function tag(source, open, span) {
  let i = open + 1;
  while (i < source.length && !NAME_END.test(source[i])) i += 1;
  if (source[open + 1] === "/" && i === open + 2) {
    while (i < source.length && !NAME_END.test(source[i]) && source[i] !== ">") i += 1;
  }
  span("hl-tag", open, i);
  while (i < source.length && source[i] !== ">") {
    const char = source[i];
    if (/\s/.test(char)) {
      const start = i;
      while (i < source.length && /\s/.test(source[i])) i += 1;
      span("hl-space", start, i);
    } else if (char === "=") {
      span("hl-punct", i, i + 1);
      i += 1;
      const quote = source[i];
      const start = i;
      if (quote === '"' || quote === "'") {
        const close = source.indexOf(quote, i + 1);
        i = close < 0 ? source.length : close + 1;
      } else {
        while (i < source.length && !/[\s>]/.test(source[i])) i += 1;
      }
      span("hl-value", start, i);
    } else if (char === "/" || char === "<") {
      span("hl-tag", i, i + 1);
      i += 1;
    } else {
      const start = i;
      while (i < source.length && !NAME_END.test(source[i]) && source[i] !== "<") i += 1;
      span("hl-attr", start, Math.max(i, start + 1));
      i = Math.max(i, start + 1);
    }
  }
  if (i < source.length) {
    span("hl-tag", i, i + 1);
    i += 1;
  }
  return i;
}
