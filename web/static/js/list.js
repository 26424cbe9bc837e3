// The message list: one row per MessageSummary, reused across renders (keyed
// by ID) so live updates and paging move nodes instead of rebuilding them.

import { h, icon } from "./dom.js";
import { fullTime, personName, relativeTime } from "./format.js";
import { paint } from "./tags.js";

export class MessageList {
  /** onOpen(id); onSelect(id, {range}): a checkbox, Ctrl/Cmd-click or Shift-click. */
  constructor(element, { onOpen, onSelect }) {
    this.element = element;
    this.rows = new Map(); // ID -> row element
    this.cursorId = null;
    this.openId = null;
    element.addEventListener("click", (event) => {
      const row = event.target.closest(".row");
      if (!row) return;
      const box = event.target.closest(".select");
      if (box || event.ctrlKey || event.metaKey || event.shiftKey) {
        if (!box) event.preventDefault();
        onSelect(row.dataset.id, { range: event.shiftKey });
        return;
      }
      onOpen(row.dataset.id);
    });
    // The full date of a row is its time's tooltip, made when first pointed at.
    element.addEventListener("mouseover", (event) => {
      const time = event.target.closest && event.target.closest("time[datetime]");
      if (time && !time.title) time.title = fullTime(time.dateTime);
    });
    // Shift-click would select the page's text too.
    element.addEventListener("mousedown", (event) => {
      if (event.shiftKey) event.preventDefault();
    });
  }

  /** Tick the rows of `selection` (an object with has(id)). */
  showSelection(selection) {
    for (const [id, row] of this.rows) {
      const selected = selection.has(id);
      row.classList.toggle("selected", selected);
      row.setAttribute("aria-selected", String(selected));
    }
  }

  /** Show `messages` in order; `fresh` IDs get a brief highlight (they just arrived). */
  render(messages, fresh = new Set()) {
    const next = new Map();
    let previous = null;
    for (const message of messages) {
      let row = this.rows.get(message.ID);
      if (row) {
        updateRow(row, message);
      } else {
        row = createRow(message);
        if (fresh.has(message.ID)) row.classList.add("arrived");
      }
      next.set(message.ID, row);
      const expected = previous ? previous.nextElementSibling : this.element.firstElementChild;
      if (row !== expected) this.element.insertBefore(row, expected);
      previous = row;
    }
    for (const [id, row] of this.rows) if (!next.has(id)) row.remove();
    this.rows = next;
    this.setCursor(this.cursorId);
    this.setOpen(this.openId);
  }

  setCursor(id, { scroll = false } = {}) {
    this.rows.get(this.cursorId)?.classList.remove("cursor");
    this.cursorId = id;
    const row = this.rows.get(id);
    if (row) {
      row.classList.add("cursor");
      this.element.setAttribute("aria-activedescendant", row.id);
      if (scroll) row.scrollIntoView({ block: "nearest" });
    } else {
      this.element.removeAttribute("aria-activedescendant");
    }
  }

  setOpen(id) {
    this.rows.get(this.openId)?.classList.remove("open");
    this.openId = id;
    this.rows.get(id)?.classList.add("open");
  }

  /** Keep "5 min ago" true as time passes. */
  refreshTimes() {
    const now = Date.now();
    for (const time of this.element.querySelectorAll("time[datetime]")) {
      time.textContent = relativeTime(time.dateTime, now);
    }
  }
}

function createRow(message) {
  const row = h("div", {
    class: "row",
    role: "option",
    id: `msg-${message.ID}`,
    "aria-selected": "false",
    dataset: { id: message.ID },
  });
  const to = (message.To || [])[0];
  const more = (message.To || []).length + (message.Cc || []).length - 1;
  const who = personName(message.From) || "(no sender)";
  row.append(
    // A drawn box, not an input: an option holds no control of its own. Its
    // state is the option's aria-selected (x selects from the keyboard).
    h("span", { class: "select", "aria-hidden": "true", title: "Select" }),
    h("span", { class: "unread-dot", "aria-hidden": "true" }),
    h(
      "div",
      { class: "row-top" },
      h("span", { class: "from", text: who }),
      to ? h("span", { class: "to", text: `→ ${to.Address}${more > 0 ? ` +${more}` : ""}` }) : null,
      h(
        "span",
        { class: "row-meta" },
        message.Attachments > 0 ? icon("clip", "clip") : null,
        h("time", { datetime: message.Created, text: relativeTime(message.Created) }),
      ),
    ),
    h("div", { class: "subject" }, h("span", { class: "tags" }), h("span", { class: "subject-text" })),
    h("div", { class: "snippet", text: message.Snippet || "" }),
  );
  const subject = row.querySelector(".subject-text");
  subject.textContent = message.Subject || "(no subject)";
  subject.classList.toggle("none", !message.Subject);
  if (message.Attachments > 0) row.querySelector(".clip").append(titleOf(`${message.Attachments} attachment(s)`));
  updateRow(row, message);
  return row;
}

function titleOf(text) {
  const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
  title.textContent = text;
  return title;
}

// Only Read and Tags change after a message arrives.
function updateRow(row, message) {
  row.classList.toggle("unread", !message.Read);
  const tags = (message.Tags || []).join("\n");
  if (row.dataset.tags !== tags) {
    row.dataset.tags = tags;
    row
      .querySelector(".tags")
      .replaceChildren(...(message.Tags || []).map((tag) => paint(h("span", { class: "tag", text: tag }), tag)));
  }
}
