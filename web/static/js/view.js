// The message pane: headers at the top, then tabs for the HTML rendering
// (a sandboxed frame), plain text, source, headers and attachments.

import * as api from "./api.js";
import { showChecks } from "./checks.js";
import { attachmentList, bodyDownload, calendarCards, htmlSource, recipientList, unsubscribeLine } from "./details.js";
import { h, icon, replace } from "./dom.js";
import { fullTime, hue, initials, mediumTime, personName, size } from "./format.js";
import { showRelay } from "./release.js";
import { tagChip } from "./tags.js";

const TABS = ["html", "html-source", "text", "source", "headers", "attachments", "checks"];
const TAB_LABELS = {
  html: "HTML",
  "html-source": "HTML source",
  text: "Text",
  source: "Raw",
  headers: "Headers",
  attachments: "Attachments",
  checks: "Checks",
};
const WIDTHS = [
  ["phone", "Phone (375 px)"],
  ["tablet", "Tablet (768 px)"],
  ["desktop", "Desktop (full width)"],
];
const LARGE_SOURCE = 2 * 1024 * 1024; // ask before putting more than this into the page
// src="http...", background="//...", url(http...): what only loads when remote images are allowed.
const REMOTE_IMAGE = /(?:\bsrc|\bbackground|\bposter)\s*=\s*["']?\s*(?:https?:)?\/\/|url\(\s*["']?\s*(?:https?:)?\/\//i;
const URL_IN_TEXT = /\bhttps?:\/\/[^\s<>"'`]+[^\s<>"'`.,;:!?)\]]/g;

function stored(key, fallback, allowed) {
  try {
    const value = localStorage.getItem(key);
    return allowed.includes(value) ? value : fallback;
  } catch {
    return fallback; // storage disabled
  }
}

function store(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // storage disabled: the choice lasts until reload
  }
}

export class MessageView {
  constructor(element, actions) {
    this.element = element;
    // {onBack, onDelete(id), onToggleRead(id), onTag(tag), onRemoveTag(summary, tag),
    //  onAddTag(summary), onLoaded(summary)}
    this.actions = actions;
    this.failed = false; // the last open got no answer: retry() when the server is back
    this.summary = null;
    this.message = null;
    this.tab = stored("mailtrap.tab", "html", TABS);
    this.width = stored(
      "mailtrap.width",
      "desktop",
      WIDTHS.map(([name]) => name),
    );
    this.loading = null;
  }

  get openId() {
    return this.summary ? this.summary.ID : null;
  }

  /** Stop showing the message (the caller draws what replaces it). */
  close() {
    this.abort();
    this.summary = this.message = null;
  }

  abort() {
    if (this.loading) this.loading.abort();
    if (this.panelLoading) this.panelLoading.abort();
    this.loading = this.panelLoading = null;
  }

  /** Show a message; `summary` is its list entry (shown at once while the rest loads). */
  async open(summary) {
    this.abort();
    const loading = (this.loading = new AbortController());
    this.summary = summary;
    this.message = null;
    this.failed = false;
    this.renderShell();
    try {
      this.message = await api.getMessage(summary.ID, loading.signal);
    } catch (error) {
      if (loading.signal.aborted) return;
      this.failed = error.offline;
      const text =
        error.status === 404
          ? "This message no longer exists."
          : error.offline
            ? "The server cannot be reached. The message opens when it is back."
            : `Could not load the message: ${error.message}`;
      replace(this.panel, h("p", { class: `panel-note ${error.offline ? "offline-note" : "error"}`, text }));
      return;
    }
    if (loading.signal.aborted) return;
    // Fetching it marked it read on the server (as in Mailpit): only now is it read.
    this.actions.onLoaded(this.summary);
    this.renderShell();
    this.loadCalendar(this.message, loading.signal);
  }

  /** Open again what failed for want of a server. */
  retry() {
    if (this.failed && this.summary) this.open(this.summary);
  }

  async loadCalendar(message, signal) {
    try {
      const { Calendars: calendars } = await api.getCalendar(message.ID, signal);
      const cards = calendarCards(calendars || []);
      if (cards && this.message === message) this.calendarSlot.replaceChildren(cards);
    } catch {
      // No card: the message itself is shown all the same.
    }
  }

  /** The list's copy changed (read state, tags): refresh what depends on it. */
  update(summary) {
    if (!this.summary || summary.ID !== this.summary.ID) return;
    this.summary = summary;
    this.renderToolbar();
    this.renderTags();
  }

  renderShell() {
    const summary = this.summary;
    const message = this.message;
    const from = (message || summary).From;
    this.toolbar = h("div", { class: "message-toolbar" });
    this.tagsElement = h("div", { class: "message-tags" });
    this.tabBar = h("div", { class: "tabs" });
    this.panel = h("div", { class: "tab-panel", role: "tabpanel", id: "message-panel", tabindex: "-1" });
    const recipients = recipientList(message || summary);
    this.calendarSlot = h("div", { class: "calendar-slot" });
    const avatar = h("div", { class: "avatar", "aria-hidden": "true", text: initials(from) });
    avatar.style.setProperty("--hue", hue(from && from.Address));
    const date = (message && message.Date) || summary.Created;
    replace(
      this.element,
      h(
        "article",
        { class: "message", "aria-label": summary.Subject || "(no subject)" },
        h(
          "header",
          { class: "message-head" },
          h(
            "div",
            { class: "title-row" },
            h(
              "button",
              {
                type: "button",
                class: "button ghost back",
                onclick: () => this.actions.onBack(),
                title: "Back to the list (Esc)",
              },
              icon("back"),
              h("span", { class: "label", text: "Inbox" }),
            ),
            h("h2", {
              class: `message-subject${summary.Subject ? "" : " none"}`,
              text: summary.Subject || "(no subject)",
            }),
            this.toolbar,
          ),
          this.tagsElement,
          h(
            "div",
            { class: "people" },
            avatar,
            h(
              "div",
              { class: "people-text" },
              h(
                "div",
                { class: "from-line" },
                h("span", { class: "from-name", text: personName(from) || "(no sender)" }),
                from && from.Name ? h("span", { class: "from-address", text: `<${from.Address}>` }) : null,
              ),
              recipients,
            ),
            h(
              "div",
              { class: "message-date" },
              h("time", { datetime: date, title: fullTime(date), text: mediumTime(date) }),
              h("span", { class: "message-size", text: size(summary.Size) }),
            ),
          ),
          message ? unsubscribeLine(message.ListUnsubscribe) : null,
          this.calendarSlot,
        ),
        this.tabBar,
        this.panel,
      ),
    );
    this.renderToolbar();
    this.renderTags();
    showRelay(this.element.querySelector(".message-head"), message); // relay state and the Release dialog
    if (!message) {
      this.panel.append(h("p", { class: "panel-note loading", text: "Loading…" }));
      return;
    }
    this.selectTab(this.available().includes(this.tab) ? this.tab : this.available()[0], { remember: false });
  }

  renderToolbar() {
    const summary = this.summary;
    replace(
      this.toolbar,
      h(
        "button",
        {
          type: "button",
          class: "button ghost toggle-read",
          onclick: () => this.actions.onToggleRead(summary.ID),
          title: summary.Read ? "Mark unread (r)" : "Mark read (r)",
        },
        icon(summary.Read ? "mail" : "mail-open"),
        h("span", { class: "label", text: summary.Read ? "Mark unread" : "Mark read" }),
      ),
      h(
        "a",
        {
          class: "button ghost",
          href: api.rawUrl(summary.ID),
          download: `${summary.ID}.eml`,
          title: "Download the source (.eml)",
        },
        icon("download"),
        h("span", { class: "label", text: ".eml" }),
      ),
      h(
        "button",
        {
          type: "button",
          class: "button ghost danger delete",
          onclick: () => this.actions.onDelete(summary.ID),
          title: "Delete (Delete)",
        },
        icon("trash"),
        h("span", { class: "label", text: "Delete" }),
      ),
    );
  }

  renderTags() {
    const summary = this.summary;
    const tags = summary.Tags || [];
    replace(
      this.tagsElement,
      tags.map((tag) =>
        tagChip(tag, { onClick: () => this.actions.onTag(tag), onRemove: () => this.actions.onRemoveTag(summary, tag) }),
      ),
      h(
        "button",
        { type: "button", class: "button ghost small add-tag", onclick: () => this.actions.onAddTag(summary), title: "Add a tag (t)" },
        icon("tag"),
        h("span", { text: tags.length ? "Tag" : "Add tag" }),
      ),
    );
  }

  available() {
    const message = this.message;
    const tabs = [];
    if (message.HTML) tabs.push("html", "html-source");
    if (message.Text || !message.HTML) tabs.push("text");
    tabs.push("source", "headers");
    if ((message.Attachments || []).length + (message.Inline || []).length > 0) tabs.push("attachments");
    tabs.push("checks");
    return tabs;
  }

  /** Switch tab by number (1-6, as the keyboard shortcuts do). */
  selectTabNumber(number) {
    const name = TABS[number - 1];
    if (this.message && this.available().includes(name)) this.selectTab(name);
  }

  selectTab(name, { remember = true } = {}) {
    if (!this.message) return;
    if (remember) {
      this.tab = name;
      store("mailtrap.tab", name);
    }
    this.shownTab = name;
    this.renderTabBar(name);
    const message = this.message;
    if (name === "html") this.showHtml(message);
    else if (name === "html-source") this.showHtmlSource(message);
    else if (name === "text") this.showText(message);
    else if (name === "source") this.showSource(message);
    else if (name === "headers") this.showHeaders(message);
    else if (name === "checks") showChecks(this.panel, message.ID);
    else this.showAttachments(message);
  }

  renderTabBar(current) {
    const message = this.message;
    const attachments = (message.Attachments || []).length + (message.Inline || []).length;
    const tabs = this.available().map((name) =>
      h(
        "button",
        {
          type: "button",
          role: "tab",
          class: "tab",
          id: `tab-${name}`,
          "aria-selected": String(name === current),
          "aria-controls": "message-panel",
          tabindex: name === current ? "0" : "-1",
          onclick: () => this.selectTab(name),
        },
        TAB_LABELS[name],
        name === "attachments" ? h("span", { class: "badge", text: String(attachments) }) : null,
      ),
    );
    const widths =
      current === "html"
        ? h(
            "div",
            { class: "widths", role: "group", "aria-label": "Preview width" },
            WIDTHS.map(([width, label]) =>
              h(
                "button",
                {
                  type: "button",
                  class: "button ghost icon-only",
                  title: label,
                  "aria-label": label,
                  "aria-pressed": String(width === this.width),
                  dataset: { width },
                  onclick: () => this.setWidth(width),
                },
                icon(width),
              ),
            ),
          )
        : null;
    const tablist = h("div", { class: "tablist", role: "tablist", "aria-label": "Message parts" }, tabs);
    replace(this.tabBar, tablist, h("span", { class: "spacer" }), widths);
    this.panel.setAttribute("aria-labelledby", `tab-${current}`);
  }

  setWidth(width) {
    this.width = width;
    store("mailtrap.width", width);
    for (const button of this.tabBar.querySelectorAll("[data-width]")) {
      button.setAttribute("aria-pressed", String(button.dataset.width === width));
    }
    const stage = this.panel.querySelector(".preview");
    if (stage) stage.className = `preview width-${width}`;
  }

  showHtml(message, remote = false) {
    // No allow-scripts: nothing in the mail runs. No allow-same-origin: the
    // frame cannot reach this page or the API. Popups only so links can open
    // in a new tab, outside the sandbox.
    const frame = h("iframe", {
      class: "html-frame",
      title: "HTML body",
      sandbox: "allow-popups allow-popups-to-escape-sandbox",
      referrerpolicy: "no-referrer",
      src: api.htmlUrl(message.ID, { remote }),
    });
    const banner =
      !remote && REMOTE_IMAGE.test(message.HTML)
        ? h(
            "div",
            { class: "remote-banner" },
            icon("image"),
            h("span", { text: "Remote images are blocked, so opening this message told no one." }),
            h(
              "button",
              { type: "button", class: "button small", onclick: () => this.showHtml(message, true) },
              "Load remote images",
            ),
          )
        : null;
    replace(
      this.panel,
      banner,
      h("div", { class: `preview width-${this.width}` }, h("div", { class: "device" }, frame)),
    );
    this.panel.classList.add("flush");
  }

  showHtmlSource(message) {
    this.panel.classList.remove("flush");
    replace(this.panel, htmlSource(message));
  }

  showText(message) {
    this.panel.classList.remove("flush");
    replace(
      this.panel,
      message.Text
        ? [bodyDownload(message, "txt"), h("pre", { class: "text-body" }, linkify(message.Text))]
        : h("p", { class: "panel-note", text: "This message has no text part." }),
    );
  }

  async showSource(message, force = false) {
    this.panel.classList.remove("flush");
    if (message.Size > LARGE_SOURCE && !force) {
      replace(
        this.panel,
        h(
          "div",
          { class: "panel-note" },
          h("p", { text: `The source is ${size(message.Size)}.` }),
          h(
            "button",
            { type: "button", class: "button", onclick: () => this.showSource(message, true) },
            "Show it anyway",
          ),
          " ",
          h("a", { class: "button", href: api.rawUrl(message.ID), download: `${message.ID}.eml` }, "Download"),
        ),
      );
      return;
    }
    await this.load(
      (signal) => api.getRaw(message.ID, signal),
      (raw) => h("pre", { class: "source", text: raw }),
    );
  }

  async showHeaders(message) {
    this.panel.classList.remove("flush");
    await this.load(
      (signal) => api.getHeaders(message.ID, signal),
      (headers) =>
        h(
          "table",
          { class: "headers" },
          h(
            "tbody",
            {},
            Object.entries(headers).flatMap(([name, values]) =>
              (Array.isArray(values) ? values : [values]).map((value) =>
                h("tr", {}, h("th", { scope: "row", text: name }), h("td", { text: value })),
              ),
            ),
          ),
        ),
    );
  }

  showAttachments(message) {
    this.panel.classList.remove("flush");
    replace(
      this.panel,
      attachmentList(message, "Attachments", message.Attachments || []),
      attachmentList(message, "Inline", message.Inline || []),
    );
  }

  /** Fetch something for the current tab, with a quiet "Loading…" and errors shown in place. */
  async load(fetcher, render) {
    if (this.panelLoading) this.panelLoading.abort();
    const loading = (this.panelLoading = new AbortController());
    const note = h("p", { class: "panel-note loading", text: "Loading…" });
    replace(this.panel, note);
    let value;
    try {
      value = await fetcher(loading.signal);
    } catch (error) {
      if (!loading.signal.aborted)
        replace(this.panel, h("p", { class: "panel-note error", text: `Could not load: ${error.message}` }));
      return;
    }
    // Still showing what was asked for (not another tab or message)?
    if (!loading.signal.aborted && this.panel.contains(note)) replace(this.panel, render(value));
  }
}

/** Plain text with http(s) links made clickable; everything else stays text. */
function linkify(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(URL_IN_TEXT)) {
    let url;
    try {
      url = new URL(match[0]);
    } catch {
      continue;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") continue;
    nodes.push(text.slice(last, match.index));
    nodes.push(h("a", { href: url.href, target: "_blank", rel: "noopener noreferrer", text: match[0] }));
    last = match.index + match[0].length;
  }
  nodes.push(text.slice(last));
  return nodes;
}
