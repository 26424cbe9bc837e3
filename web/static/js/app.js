// The inbox: state, data loading, live events, routing and keyboard.

import * as api from "./api.js";
import { $, h, replace } from "./dom.js";
import { connectEvents } from "./events.js";
import { count, plural } from "./format.js";
import { bindKeys } from "./keyboard.js";
import { MessageList } from "./list.js";
import { relayFrame } from "./release.js";
import { MessageView } from "./view.js";

const PAGE_SIZE = 50;
const RELOAD_DELAY = 150; // ms: coalesces a burst of events into one reload
const SEARCH_DELAY = 250; // ms after the last keystroke

const state = {
  query: "",
  start: 0,
  messages: [], // the current page
  total: 0, // in the mailbox
  unread: 0, // in the mailbox
  matching: 0, // in the current list (search results or everything)
  searchError: "", // why the server refused the query
  loaded: false,
};

const layout = $("#layout");
const searchInput = $("#search");
const list = new MessageList($("#list"), { onOpen: (id) => openMessage(id) });
const view = new MessageView($("#view"), {
  onBack: () => closeMessage(),
  onDelete: (id) => deleteMessages([id]),
  onToggleRead: (id) => toggleRead(id),
  onTag: (tag) => search(/[\s"]/.test(tag) ? `tag:"${tag.replaceAll('"', "")}"` : `tag:${tag}`),
});

// -- loading ------------------------------------------------------------------

let loadController = null;
let reloadTimer = null;
let eventsSeen = 0; // events applied locally; a reload that raced one is repeated
let fresh = new Set(); // IDs that arrived live since the last render
let cursorMoved = false;

async function load() {
  clearTimeout(reloadTimer);
  reloadTimer = null;
  if (loadController) loadController.abort();
  const controller = (loadController = new AbortController());
  const seenBefore = eventsSeen;
  let data;
  try {
    data = await api.listMessages({
      query: state.query,
      start: state.start,
      limit: PAGE_SIZE,
      signal: controller.signal,
    });
  } catch (error) {
    if (controller.signal.aborted) return;
    if (error.status === 400 && state.query) {
      // A query the server cannot parse (often one still being typed): say so in place.
      Object.assign(state, { messages: [], matching: 0, searchError: error.message, loaded: true });
      render();
    } else {
      toast(`Could not load messages: ${error.message}`);
    }
    return;
  } finally {
    if (loadController === controller) loadController = null;
  }
  state.searchError = "";
  state.messages = data.messages || [];
  state.total = data.total ?? 0;
  state.unread = data.unread ?? 0;
  state.matching = data.messages_count ?? state.messages.length;
  state.loaded = true;
  if (state.start > 0 && state.start >= state.matching) {
    // The page emptied under us (deletions): show the last one that has mail.
    state.start = Math.max(0, Math.floor((state.matching - 1) / PAGE_SIZE) * PAGE_SIZE);
    return load();
  }
  render();
  if (eventsSeen !== seenBefore) scheduleReload();
}

function scheduleReload() {
  if (reloadTimer === null) reloadTimer = setTimeout(load, RELOAD_DELAY);
}

// -- rendering ----------------------------------------------------------------

function render() {
  list.render(state.messages, fresh);
  fresh = new Set();
  // Until someone moves it, the cursor stays on the newest message.
  if (!cursorMoved || !state.messages.some((message) => message.ID === list.cursorId)) {
    list.setCursor(state.messages.length ? state.messages[0].ID : null);
  }
  list.setOpen(view.openId);

  const empty = state.loaded && state.total === 0 && !state.query;
  layout.classList.toggle("is-empty", empty);
  $("#welcome").hidden = !empty;

  const noResults = $("#no-results");
  noResults.hidden = !(state.loaded && state.query && state.matching === 0);
  if (!noResults.hidden) {
    const query = h("code", { text: state.query });
    if (state.searchError) replace(noResults, "Cannot search for ", query, ": ", state.searchError);
    else replace(noResults, "No messages match ", query, ".");
  }

  $("#count").textContent = state.query
    ? `${plural(state.matching, "result")}`
    : `${plural(state.total, "message")}${state.unread ? ` · ${count(state.unread)} unread` : ""}`;
  const first = state.matching ? state.start + 1 : 0;
  const last = Math.min(state.start + state.messages.length, state.matching);
  $("#range").textContent =
    state.matching > PAGE_SIZE ? `${count(first)}–${count(last)} of ${count(state.matching)}` : "";
  $("#prev-page").disabled = state.start === 0;
  $("#next-page").disabled = state.start + PAGE_SIZE >= state.matching;
  $("#prev-page").hidden = $("#next-page").hidden = state.matching <= PAGE_SIZE;
  $("#delete-all .label").textContent = state.query ? "Delete results" : "Delete all";
  $("#delete-all").disabled = state.query ? state.matching === 0 : state.total === 0;
  $("#mark-all-read").disabled = state.unread === 0;
  document.title = state.unread ? `(${count(state.unread)}) Mailtrap` : "Mailtrap";
}

// -- live events --------------------------------------------------------------

const MAX_PENDING = 2000; // more than this between two renders: reload instead
let pending = [];
let overflowed = false;

// Frames are applied in batches: a burst of mail renders once. A timer rather
// than requestAnimationFrame, so the title keeps counting in a background tab.
function onEvent(frame) {
  if (frame.Type === "relay") return relayFrame(frame.Data); // the open message's relay state
  if (pending.length >= MAX_PENDING) {
    overflowed = true;
    return;
  }
  pending.push(frame);
  if (pending.length === 1) setTimeout(applyEvents, 30);
}

function applyEvents() {
  const frames = pending;
  pending = [];
  if (overflowed) {
    overflowed = false;
    load();
    return;
  }
  for (const frame of frames) applyEvent(frame);
  render();
}

function applyEvent({ Type: type, Data: data }) {
  if (type !== "stats") eventsSeen += 1;
  if (type === "new" && data && data.ID) {
    state.total += 1;
    if (!data.Read) state.unread += 1;
    if (!state.query && state.start === 0) {
      if (!state.messages.some((message) => message.ID === data.ID)) {
        state.messages.unshift(data);
        state.messages.length = Math.min(state.messages.length, PAGE_SIZE);
        state.matching += 1;
        fresh.add(data.ID);
      }
    } else {
      scheduleReload(); // a search or a later page: the server knows where it goes
    }
  } else if (type === "delete" && data && data.ID) {
    const shown = state.messages.some((message) => message.ID === data.ID);
    state.messages = state.messages.filter((message) => message.ID !== data.ID);
    if (view.openId === data.ID) closeMessage({ note: "This message was deleted", history: "replace" });
    // A gap in this page to refill, or a later page whose messages shifted. Old
    // mail pruned off the end of the first page needs nothing: "stats" recounts.
    if (shown || state.start > 0 || state.query) scheduleReload();
  } else if (type === "update" && data && data.ID) {
    const message = state.messages.find((item) => item.ID === data.ID);
    if (!message) return; // not on this page: "stats" carries the new counts
    if (typeof data.Read === "boolean" && data.Read !== message.Read) {
      message.Read = data.Read;
      state.unread = Math.max(0, state.unread + (data.Read ? -1 : 1));
    }
    if (Array.isArray(data.Tags)) message.Tags = data.Tags;
    view.update(message);
  } else if (type === "truncate") {
    Object.assign(state, { messages: [], total: 0, unread: 0, matching: 0, start: 0 });
    if (view.openId) closeMessage({ note: "This message was deleted", history: "replace" });
    scheduleReload();
  } else if (type === "stats" && data && typeof data.Total === "number") {
    state.total = data.Total;
    if (typeof data.Unread === "number") state.unread = data.Unread;
  }
}

function onStatus(status, { reconnected }) {
  const element = $("#status");
  element.dataset.status = status;
  element.querySelector(".status-text").textContent = status === "live" ? "Live" : "Reconnecting…";
  element.title = status === "live" ? "New mail appears as it arrives" : "Lost the connection to the server; retrying";
  if (reconnected) load(); // whatever happened while away
}

// -- actions ------------------------------------------------------------------

function find(id) {
  return state.messages.find((message) => message.ID === id);
}

/** What a key acts on: the open message when focus is in it, else the one under the cursor. */
function currentId(inView) {
  return view.openId && (inView || !list.cursorId) ? view.openId : list.cursorId;
}

function openMessage(id, { push = true } = {}) {
  const summary = find(id);
  if (!summary) return;
  cursorMoved = true;
  list.setCursor(id, { scroll: true });
  list.setOpen(id);
  layout.classList.add("show-message");
  view.open({ ...summary });
  // Fetching a message marks it read on the server (as in Mailpit): show that now.
  if (!summary.Read) showRead(summary, true);
  if (push) navigate({ id });
}

/** history: "push" (a step back is possible), "replace" (the message is gone) or "none". */
function closeMessage({ note = "", history = "push" } = {}) {
  const focusList = $("#view").contains(document.activeElement) || document.activeElement === document.body;
  view.showPlaceholder(note);
  list.setOpen(null);
  layout.classList.remove("show-message");
  if (history !== "none") navigate({ id: null }, { replace: history === "replace" });
  if (focusList) $("#list").focus({ preventScroll: true });
}

function showRead(summary, read) {
  if (summary.Read === read) return;
  summary.Read = read;
  state.unread = Math.max(0, state.unread + (read ? -1 : 1));
  render();
  view.update(summary);
}

async function setRead(summary, read) {
  showRead(summary, read);
  try {
    await api.setRead([summary.ID], read);
  } catch (error) {
    toast(`Could not mark the message ${read ? "read" : "unread"}: ${error.message}`);
    load();
  }
}

function toggleRead(id) {
  const summary = find(id);
  if (summary) setRead(summary, !summary.Read);
}

async function deleteMessages(ids) {
  const doomed = new Set(ids);
  const index = state.messages.findIndex((message) => doomed.has(message.ID));
  const keep = state.messages.filter((message) => !doomed.has(message.ID));
  // The cursor stays in place: on the next (older) message, or the one before.
  const neighbour = keep[Math.min(Math.max(index, 0), keep.length - 1)];
  const removed = state.messages.length - keep.length;
  state.unread -= state.messages.filter((message) => doomed.has(message.ID) && !message.Read).length;
  state.total -= removed;
  state.matching -= removed;
  state.messages = keep;
  if (view.openId && doomed.has(view.openId)) closeMessage({ history: "replace" });
  list.setCursor(neighbour ? neighbour.ID : null, { scroll: true });
  render();
  try {
    await api.deleteMessages(ids);
  } catch (error) {
    toast(`Could not delete: ${error.message}`);
  }
  scheduleReload();
}

async function deleteEverything() {
  const what = state.query ? plural(state.matching, "matching message") : plural(state.total, "message");
  const confirmed = await confirmDialog({
    title: state.query ? "Delete the search results?" : "Delete every message?",
    text: `${what} will be deleted for good.`,
    ok: state.query ? "Delete results" : "Delete all",
  });
  if (!confirmed) return;
  try {
    if (state.query) await api.deleteSearch(state.query);
    else await api.deleteAll();
  } catch (error) {
    toast(`Could not delete: ${error.message}`);
  }
  if (view.openId) closeMessage({ history: "replace" });
  load();
}

async function markAllRead() {
  for (const message of state.messages) message.Read = true;
  state.unread = 0;
  render();
  const open = find(view.openId);
  if (open) view.update(open);
  try {
    await api.markAllRead();
  } catch (error) {
    toast(`Could not mark all read: ${error.message}`);
  }
  scheduleReload();
}

function search(query) {
  searchInput.value = query;
  runSearch({ push: true });
}

function runSearch({ push = false } = {}) {
  clearTimeout(searchTimer);
  const query = searchInput.value.trim();
  if (query === state.query) return;
  state.query = query;
  state.start = 0;
  list.element.scrollTop = 0;
  navigate({ q: query }, { replace: !push });
  load();
}

/** Load the page at `start`; a promise for it, or null when there is no such page. */
function goToPage(start) {
  if (start < 0 || (start >= state.matching && start > 0) || start === state.start) return null;
  state.start = start;
  list.element.scrollTop = 0;
  return load();
}

/** Move the cursor; past either end of the page, onto the next or previous page. */
async function moveCursor(delta) {
  cursorMoved = true;
  const index = state.messages.findIndex((message) => message.ID === list.cursorId);
  const target = index + delta;
  if (target >= 0 && target < state.messages.length) {
    list.setCursor(state.messages[target].ID, { scroll: true });
    return;
  }
  const page = target < 0 ? goToPage(state.start - PAGE_SIZE) : goToPage(state.start + PAGE_SIZE);
  if (!page) return;
  await page;
  const landing = target < 0 ? state.messages.at(-1) : state.messages[0];
  if (landing) list.setCursor(landing.ID, { scroll: true });
}

// -- URL ------------------------------------------------------------------------

// ?q=QUERY&id=ID: a search and an open message survive reloads and can be shared.
function navigate(changes, { replace: replaceState = false } = {}) {
  const params = new URLSearchParams(location.search);
  for (const [key, value] of Object.entries(changes)) {
    if (value) params.set(key, value);
    else params.delete(key);
  }
  const search = params.toString() ? `?${params}` : "";
  if (search === location.search) return;
  const url = search || location.pathname;
  if (replaceState) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
}

async function applyLocation() {
  const params = new URLSearchParams(location.search);
  const query = params.get("q") || "";
  if (query !== state.query || !state.loaded) {
    searchInput.value = query;
    state.query = query;
    state.start = 0;
    await load();
  }
  const id = params.get("id");
  if (id && id !== view.openId) {
    if (find(id)) {
      openMessage(id, { push: false });
    } else {
      // Not on this page (an old link): open it from the API alone.
      try {
        const message = await api.getMessage(id);
        layout.classList.add("show-message");
        view.open({ ...message, Created: message.Date, Read: true });
      } catch {
        closeMessage({ note: "That message no longer exists", history: "none" });
      }
    }
  } else if (!id && view.openId) {
    closeMessage({ history: "none" });
  }
}

// -- little pieces ----------------------------------------------------------------

let toastTimer = null;

function toast(text) {
  const element = $("#toast");
  element.textContent = text;
  element.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (element.hidden = true), 5000);
}

function confirmDialog({ title, text, ok }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = ok;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) =>
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }),
  );
}

async function showSmtpSettings() {
  let config;
  try {
    config = await api.webUIConfig();
  } catch {
    return; // the page still works; the welcome card just lacks the address
  }
  const smtp = config.SMTP || {};
  // A wildcard bind is reached by the name this page was loaded from.
  const host = !smtp.Host || ["0.0.0.0", "::", "[::]"].includes(smtp.Host) ? location.hostname : smtp.Host;
  const hostText = host.includes(":") ? `[${host}]` : host;
  $("#smtp-host").textContent = host;
  $("#smtp-port").textContent = String(smtp.Port ?? "");
  $("#smtp-tls").textContent = smtp.RequireTLS ? "STARTTLS (required)" : smtp.STARTTLS ? "STARTTLS (optional)" : "None";
  $("#smtp-auth").textContent = smtp.Auth
    ? "The configured user names and passwords"
    : "Any user name and password, or none";
  $("#smtp-example").textContent = [
    "printf 'Subject: Hello\\n\\nIt works.\\n' |",
    `  curl -sS smtp://${hostText}:${smtp.Port} \\`,
    "    --mail-from app@example.com --mail-rcpt you@example.com -T -",
  ].join("\n");
  if (config.Label) document.querySelector(".brand-name").textContent = `Mailtrap · ${config.Label}`;
}

// -- start ----------------------------------------------------------------------

let searchTimer = null;

function start() {
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch({ push: true });
  });
  searchInput.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, SEARCH_DELAY);
  });
  $("#prev-page").addEventListener("click", () => goToPage(state.start - PAGE_SIZE));
  $("#next-page").addEventListener("click", () => goToPage(state.start + PAGE_SIZE));
  $("#delete-all").addEventListener("click", deleteEverything);
  $("#mark-all-read").addEventListener("click", markAllRead);
  $("#shortcuts-button").addEventListener("click", () => $("#shortcuts-dialog").showModal());
  $("#copy-example").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("#smtp-example").textContent);
      toast("Copied to the clipboard");
    } catch {
      toast("Copying is not allowed here: select the text instead");
    }
  });
  // The search syntax hint does not fit a phone's search box.
  const narrow = matchMedia("(max-width: 760px)");
  const wide = searchInput.placeholder;
  const fitPlaceholder = () => (searchInput.placeholder = narrow.matches ? "Search" : wide);
  narrow.addEventListener("change", fitPlaceholder);
  fitPlaceholder();
  bindKeys({
    searchInput,
    listElement: $("#list"),
    viewElement: $("#view"),
    commands: {
      next: () => moveCursor(1),
      previous: () => moveCursor(-1),
      open: () => list.cursorId && openMessage(list.cursorId),
      remove: ({ inView }) => currentId(inView) && deleteMessages([currentId(inView)]),
      toggleRead: ({ inView }) => currentId(inView) && toggleRead(currentId(inView)),
      search: () => {
        searchInput.focus();
        searchInput.select();
      },
      newerPage: () => goToPage(state.start - PAGE_SIZE),
      olderPage: () => goToPage(state.start + PAGE_SIZE),
      tab: ({ key }) => view.selectTabNumber(Number(key)),
      escape: () => (view.openId ? closeMessage() : state.query && search("")),
      help: () => $("#shortcuts-dialog").showModal(),
      leaveSearch: () => {
        if (searchInput.value) search("");
        $("#list").focus({ preventScroll: true });
      },
    },
  });
  window.addEventListener("popstate", applyLocation);
  setInterval(() => list.refreshTimes(), 30000);

  applyLocation();
  showSmtpSettings();
  connectEvents({ onEvent, onStatus });
}

start();
