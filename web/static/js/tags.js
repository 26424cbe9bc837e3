// Tags: a colour per tag name, chips, the dialog that adds or removes a tag on
// some messages, and the dialog that renames and deletes tags.

import { $, h, icon, replace } from "./dom.js";
import { count, hue } from "./format.js";

/** The search for one tag. */
export const tagQuery = (tag) => (/[\s"]/.test(tag) ? `tag:"${tag.replaceAll('"', "")}"` : `tag:${tag}`);

/** A tag's colour: the same name always gets the same hue (CSS picks the shades). */
export function paint(element, tag) {
  element.style.setProperty("--tag-hue", String(hue(tag)));
  return element;
}

export function tagChip(tag, { onClick = null, onRemove = null, extra = null, pressed = null } = {}) {
  const chip = paint(
    h(
      onClick ? "button" : "span",
      {
        type: onClick ? "button" : null,
        class: "tag",
        title: onClick ? `Show messages tagged ${tag}` : null,
        "aria-pressed": pressed === null ? null : String(pressed),
        onclick: onClick,
      },
      h("span", { class: "tag-name", text: tag }),
      extra,
    ),
    tag,
  );
  if (!onRemove) return chip;
  return paint(
    h(
      "span",
      { class: "tag editable" },
      h("span", { class: "tag-name", text: tag }),
      h(
        "button",
        { type: "button", class: "tag-remove", "aria-label": `Remove tag ${tag}`, title: `Remove tag ${tag}`, onclick: onRemove },
        icon("x"),
      ),
    ),
    tag,
  );
}

/** Tags as Mailtrap stores them: trimmed, single spaces, no commas. */
export const cleanTag = (text) => text.replaceAll(",", " ").split(/\s+/).filter(Boolean).join(" ");

/**
 * Ask which tag to add to or remove from `howMany` messages; resolves to
 * {tag, add: bool} or null. `known` suggests the tags in use.
 */
export function askTag({ howMany, known, present = [] }) {
  const dialog = $("#tag-dialog");
  const input = $("#tag-input");
  $("#tag-title").textContent = howMany === 1 ? "Tag the message" : `Tag ${count(howMany)} messages`;
  replace(
    $("#tag-suggestions"),
    known.map((tag) => h("option", { value: tag })),
  );
  replace(
    $("#tag-present"),
    present.length ? [h("span", { class: "tag-present-label", text: "Remove: " }), present.map((tag) => tagChip(tag, { onClick: () => finish(tag, false) }))] : null,
  );
  input.value = "";
  dialog.returnValue = "";
  let result = null;
  const finish = (tag, add) => {
    result = { tag, add };
    dialog.close();
  };
  const form = dialog.querySelector("form");
  const onSubmit = (event) => {
    const action = event.submitter ? event.submitter.value : "add";
    if (action !== "cancel" && !cleanTag(input.value)) {
      event.preventDefault(); // nothing typed: stay open
      input.focus();
    }
  };
  form.addEventListener("submit", onSubmit);
  dialog.showModal();
  input.focus();
  return new Promise((resolve) =>
    dialog.addEventListener(
      "close",
      () => {
        form.removeEventListener("submit", onSubmit);
        const action = dialog.returnValue;
        if (!result && (action === "add" || action === "remove")) {
          result = { tag: cleanTag(input.value), add: action === "add" };
        }
        resolve(result);
      },
      { once: true },
    ),
  );
}

/** The tags dialog: every tag with its count, to rename or delete. */
export function manageTags({ counts, onRename, onDelete }) {
  const dialog = $("#tags-dialog");
  const listElement = $("#tags-list");
  const render = () => {
    const names = Object.keys(counts).sort((a, b) => a.localeCompare(b));
    replace(
      listElement,
      names.length
        ? names.map((tag) => {
            const row = h(
              "li",
              { class: "tags-row" },
              tagChip(tag),
              h("span", { class: "tags-count", text: count(counts[tag]) }),
              h(
                "button",
                { type: "button", class: "button small", "aria-label": `Rename ${tag}`, onclick: () => rename(row, tag) },
                "Rename",
              ),
              h(
                "button",
                { type: "button", class: "button small danger-text", "aria-label": `Delete tag ${tag}`, onclick: () => remove(tag) },
                "Delete",
              ),
            );
            return row;
          })
        : h("li", { class: "tags-empty", text: "No message has a tag yet." }),
    );
  };
  const rename = (row, tag) => {
    const input = h("input", { type: "text", class: "tags-rename", value: tag, "aria-label": `New name for ${tag}`, maxlength: "100" });
    const save = async () => {
      const name = cleanTag(input.value);
      if (!name || name === tag) return render();
      if (await onRename(tag, name)) {
        counts[name] = (counts[name] || 0) + counts[tag];
        delete counts[tag];
      }
      render();
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        save();
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        render();
      }
    });
    replace(row, input, h("button", { type: "button", class: "button small primary", onclick: save }, "Save"));
    input.focus();
    input.select();
  };
  const remove = async (tag) => {
    if (await onDelete(tag)) delete counts[tag];
    render();
  };
  render();
  dialog.showModal();
}
