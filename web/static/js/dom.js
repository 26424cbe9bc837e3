// Element builders. Text always goes in through Text nodes and attributes
// through setAttribute, so nothing taken from a message is ever parsed as HTML.

const SVG = "http://www.w3.org/2000/svg";

/** h("div", {class: "x", text: "..."}, child, ...) */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An icon from the sprite in index.html. */
export function icon(name, extraClass = "") {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", `icon ${extraClass}`.trim());
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS(SVG, "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

/** Replace every child of `element`. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Add the stylesheet at `href` (once); resolves when it applies. */
export function linkStylesheet(href) {
  let link = [...document.querySelectorAll('link[rel="stylesheet"]')].find((each) => each.href === href);
  if (link && link.sheet) return Promise.resolve();
  if (!link) {
    link = h("link", { rel: "stylesheet", href });
    document.head.append(link);
  }
  return new Promise((resolve, reject) => {
    link.addEventListener("load", () => resolve(), { once: true });
    link.addEventListener(
      "error",
      () => {
        link.remove(); // a later call adds it afresh
        reject(new Error(`could not load ${href}`));
      },
      { once: true },
    );
  });
}
