// Actions on several messages: the selection bar, "select all results", tags
// on a selection, and the tag bar with counts above the list.

import * as api from "./api.js";
import { $, h, icon, linkStylesheet, replace } from "./dom.js";
import { confirmDialog, toast } from "./feedback.js";
import { count, plural } from "./format.js";
import { askTag, manageTags, tagChip, tagQuery } from "./tags.js";

const FETCH_PAGE = 1000; // summaries per request when tagging every result (the API's maximum)
const TAG_REFRESH_DELAY = 300; // ms: a burst of tag changes recounts once

export class Bulk {
  /** ctx: {state, selection, list, refresh(), deleteMessages(ids), search(query), guard()} */
  constructor(ctx) {
    Object.assign(this, ctx);
    this.tagCounts = {};
    this.relayEnabled = false; // until /api/v1/webui says relay is on
    this.tagTimer = null;
  }

  bind() {
    $("#select-page").addEventListener("change", (event) => {
      if (event.target.checked) this.selection.setPage(this.state.messages.map((message) => message.ID));
      else this.selection.clear();
    });
    $("#bulk-read").addEventListener("click", () => this.markSelected(true));
    $("#bulk-unread").addEventListener("click", () => this.markSelected(false));
    $("#bulk-tag").addEventListener("click", () => this.tagSelected());
    $("#bulk-delete").addEventListener("click", () => this.deleteSelected());
    $("#bulk-release").addEventListener("click", () => this.releaseSelected());
    $("#bulk-clear").addEventListener("click", () => this.selection.clear());
  }

  /** Release is offered only when the server relays, as in the message view. Asked
   * after the first rows: the relay code (release.js) is not needed for them. */
  async learnRelay() {
    let relay;
    try {
      const { relaySettings } = await import("./release.js");
      relay = await relaySettings();
    } catch {
      relay = { Enabled: false }; // offline: as when /api/v1/webui fails, no Release button
    }
    this.relayEnabled = Boolean(relay.Enabled);
    $("#bulk").dataset.relay = this.relayEnabled ? "on" : "off";
    this.render();
  }

  /** How many the selection touches, and a phrase for it. */
  get howMany() {
    return this.selection.count(this.state.matching);
  }

  render() {
    const { state, selection } = this;
    this.list.showSelection(selection);
    const n = this.howMany;
    const active = n > 0;
    $("#bulk").hidden = !active;
    $("#count").hidden = active;
    const box = $("#select-page");
    const onPage = state.messages.filter((message) => selection.has(message.ID)).length;
    box.checked = active && onPage === state.messages.length;
    box.indeterminate = active && onPage > 0 && onPage < state.messages.length;
    box.hidden = state.messages.length === 0;
    const what = plural(n, "message");
    $("#bulk-count").textContent = selection.all ? `All ${count(n)} selected` : `${count(n)} selected`;
    for (const [id, label] of [
      ["#bulk-read", `Mark ${what} read`],
      ["#bulk-unread", `Mark ${what} unread`],
      ["#bulk-tag", `Tag or untag ${what}`],
      ["#bulk-delete", `Delete ${what}`],
      ["#bulk-release", `Release ${what}`],
    ]) {
      $(id).title = label;
      $(id).setAttribute("aria-label", label);
    }
    $("#bulk-release").hidden = !this.relayEnabled;
    this.renderSelectAll(onPage);
  }

  /** "All 50 on this page are selected. Select all 1,234 results" (and back). */
  renderSelectAll(onPage) {
    const { state, selection } = this;
    const bar = $("#select-all-bar");
    const wholePage = onPage === state.messages.length && onPage > 0;
    const more = state.matching > state.messages.length;
    bar.hidden = !(wholePage && more);
    if (bar.hidden) return;
    const results = state.query ? plural(state.matching, "result") : plural(state.matching, "message");
    if (selection.all) {
      replace(
        bar,
        `All ${results} are selected. `,
        h("button", { type: "button", class: "link-button", onclick: () => selection.clear(), text: "Clear the selection" }),
      );
    } else {
      replace(
        bar,
        `All ${count(onPage)} on this page are selected. `,
        h("button", {
          type: "button",
          class: "link-button",
          id: "select-all-results",
          onclick: () => selection.selectAll(state.messages.map((message) => message.ID)),
          text: `Select all ${results}`,
        }),
      );
    }
  }

  /** The selected summaries on this page (every one of them when all results are selected). */
  selectedOnPage() {
    return this.state.messages.filter((message) => this.selection.has(message.ID));
  }

  async markSelected(read) {
    if (!this.guard()) return;
    const { state, selection } = this;
    const targets = this.selectedOnPage();
    for (const message of targets) message.Read = read;
    try {
      if (selection.all) await api.setReadAll(read, state.query);
      else await api.setRead([...selection.ids], read);
      toast(`Marked ${plural(this.howMany, "message")} ${read ? "read" : "unread"}`);
    } catch (error) {
      toast(`Could not mark them ${read ? "read" : "unread"}: ${error.message}`);
    }
    this.refresh();
  }

  async deleteSelected() {
    if (!this.guard()) return;
    const { state, selection } = this;
    if (!selection.all) {
      const ids = [...selection.ids];
      selection.clear();
      this.deleteMessages(ids);
      return;
    }
    const n = this.howMany;
    const confirmed = await confirmDialog({
      title: state.query ? `Delete all ${plural(n, "result")}?` : `Delete all ${plural(n, "message")}?`,
      text: `${plural(n, "message")} will be deleted for good.`,
      ok: `Delete ${count(n)}`,
    });
    if (!confirmed) return;
    try {
      if (state.query) await api.deleteSearch(state.query);
      else await api.deleteAll();
      toast(`Deleted ${plural(n, "message")}`);
    } catch (error) {
      toast(`Could not delete: ${error.message}`);
    }
    selection.clear();
    this.refresh();
  }

  /** Relay the selection (every result, during a search) to recipients asked for once. */
  async releaseSelected() {
    if (!this.guard() || !this.relayEnabled) return;
    const { state, selection } = this;
    const n = this.howMany;
    if (!n) return;
    const everyResult = selection.all && state.query;
    let releaseSelection;
    try {
      [{ releaseSelection }] = await Promise.all([
        import("./bulk_release.js"),
        linkStylesheet(new URL("../release.css", import.meta.url).href),
      ]);
    } catch {
      toast("The server cannot be reached: try again when it is back.");
      return;
    }
    releaseSelection({
      target: selection.all ? { query: state.query } : { ids: [...selection.ids] },
      howMany: n,
      what: everyResult
        ? `${n === 1 ? "the result" : `the ${plural(n, "result")}`} of “${state.query}”`
        : n === 1
          ? "the selected message"
          : `the ${plural(n, "selected message")}`,
    });
  }

  async tagSelected() {
    if (!this.guard()) return;
    const targets = this.selection.all ? null : this.selectedOnPage();
    await this.tagMessages(targets);
  }

  /** Ask for a tag, then add it to (or remove it from) `summaries` (null: every result). */
  async tagMessages(summaries) {
    if (!this.guard()) return;
    const howMany = summaries ? summaries.length : this.howMany;
    if (!howMany) return;
    const present = [...new Set((summaries || this.selectedOnPage()).flatMap((message) => message.Tags || []))].sort();
    const answer = await askTag({ howMany, known: Object.keys(this.tagCounts), present });
    if (answer) await this.retag(summaries, answer.tag, answer.add);
  }

  /**
   * Add `tag` to, or remove it from, `summaries` (null: every result of the list).
   * Mailpit's PUT /api/v1/tags sets a message's whole list, so messages are
   * grouped by the list they end up with: one request per group.
   */
  async retag(summaries, tag, add) {
    if (!this.guard()) return;
    try {
      const targets = summaries || (await this.everyResult());
      const groups = new Map();
      for (const message of targets) {
        const tags = new Set(message.Tags || []);
        if (add === tags.has(tag)) continue; // nothing to change
        if (add) tags.add(tag);
        else tags.delete(tag);
        const next = [...tags].sort();
        const key = JSON.stringify(next);
        if (!groups.has(key)) groups.set(key, { tags: next, ids: [] });
        groups.get(key).ids.push(message.ID);
        message.Tags = next;
      }
      for (const { tags, ids } of groups.values()) await api.setTags(ids, tags);
      const changed = [...groups.values()].reduce((sum, group) => sum + group.ids.length, 0);
      toast(`${add ? "Tagged" : "Untagged"} ${plural(changed, "message")} ${add ? "with" : "from"} “${tag}”`);
    } catch (error) {
      toast(`Could not change the tags: ${error.message}`);
    }
    this.refreshTags();
    this.refresh();
  }

  /** Every summary of the list (all results of the search), a page of FETCH_PAGE at a time. */
  async everyResult() {
    const all = [];
    for (let start = 0; ; start += FETCH_PAGE) {
      const data = await api.listMessages({ query: this.state.query, start, limit: FETCH_PAGE });
      all.push(...(data.messages || []));
      if (!data.messages || data.messages.length < FETCH_PAGE) return all;
    }
  }

  filterByTag(tag) {
    const query = tagQuery(tag);
    this.search(this.state.query === query ? "" : query);
  }

  /** Recount the tags soon (after a burst of changes, once). */
  refreshTags() {
    clearTimeout(this.tagTimer);
    this.tagTimer = setTimeout(async () => {
      try {
        this.tagCounts = await api.tagCounts();
      } catch {
        return; // offline: the bar keeps what it had
      }
      this.renderTagBar();
    }, TAG_REFRESH_DELAY);
  }

  renderTagBar() {
    const bar = $("#tag-bar");
    const names = Object.keys(this.tagCounts).sort((a, b) => a.localeCompare(b));
    bar.hidden = names.length === 0;
    if (bar.hidden) return;
    replace(
      bar,
      h("span", { class: "tag-bar-label", text: "Tags" }),
      names.map((tag) =>
        tagChip(tag, {
          onClick: () => this.filterByTag(tag),
          pressed: this.state.query === tagQuery(tag),
          extra: h("span", { class: "tag-count", text: count(this.tagCounts[tag]) }),
        }),
      ),
      h(
        "button",
        { type: "button", class: "button ghost small", id: "manage-tags", onclick: () => this.manage(), title: "Rename or delete tags" },
        icon("tag"),
        "Edit",
      ),
    );
  }

  manage() {
    manageTags({
      counts: { ...this.tagCounts },
      onRename: async (tag, name) => this.tagCall(() => api.renameTag(tag, name), `Renamed “${tag}” to “${name}”`),
      onDelete: async (tag) => this.tagCall(() => api.deleteTag(tag), `Removed the tag “${tag}” from every message`),
    });
  }

  async tagCall(call, done) {
    if (!this.guard()) return false;
    try {
      await call();
      toast(done);
      return true;
    } catch (error) {
      toast(`Could not change the tag: ${error.message}`);
      return false;
    } finally {
      this.refreshTags();
      this.refresh();
    }
  }
}
