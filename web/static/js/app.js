// The inbox: state, data loading, live events, routing and keyboard.

import * as api from "./api.js";
import { Bulk } from "./bulk.js";
import { $, h, replace } from "./dom.js";
import { connectEvents } from "./events.js";
import { confirmDialog, finishToast, toast } from "./feedback.js";
import { count, plural } from "./format.js";
import { DeferredView } from "./deferred_view.js";
import { bindKeys } from "./keyboard.js";
import { MessageList } from "./list.js";
import { notificationsPossible, notificationsWanted, notifyNew, setFaviconBadge, setNotifications } from "./notify.js";
import { Selection } from "./selection.js";
import { bindThemeButton } from "./theme.js";

const PAGE_SIZES = [25, 50, 100, 200];
const PAGE_SIZE_COOKIE = "mailtrap_page_size"; // the server preloads the first page at this size
const RELOAD_DELAY = 150; // ms: coalesces a burst of events into one reload
const SEARCH_DELAY = 250; // ms after the last keystroke
const UNDO_DELAY = 4000; // ms a delete waits for Undo before it is sent

const state = {
  query: "",
  start: 0,
  pageSize: storedPageSize(),
  messages: [], // the current page
  total: 0, // in the mailbox
  unread: 0, // in the mailbox
  matching: 0, // in the current list (search results or everything)
  matchingUnread: 0,
  searchError: "", // why the server refused the query
  loaded: false,
  countedUntil: "", // Created of the newest message the loaded first page counted
  offline: false,
};

const layout = $("#layout");
const searchInput = $("#search");
const selection = new Selection(() => bulk.render());
const list = new MessageList($("#list"), {
  onOpen: (id) => openMessage(id),
  onSelect: (id, { range }) => select(id, range),
});
const bulk = new Bulk({ state, selection, list, refresh: () => scheduleReload(), deleteMessages, search, guard });
// The message pane's code loads after the first rows are painted (deferred_view.js).
const view = new DeferredView($("#view"), {
  onBack: () => closeMessage(),
  onDelete: (id) => deleteMessages([id]),
  onToggleRead: (id) => toggleRead(id),
  onTag: (tag) => bulk.filterByTag(tag),
  onAddTag: (summary) => bulk.tagMessages([summary]),
  onRemoveTag: (summary, tag) => bulk.retag([summary], tag, false),
  onLoaded: (summary) => showRead(find(summary.ID) || summary, true),
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
      limit: state.pageSize,
      signal: controller.signal,
    });
  } catch (error) {
    if (controller.signal.aborted) return;
    if (error.status === 400 && state.query) {
      // A query the server cannot parse (often one still being typed): say so in place.
      Object.assign(state, { messages: [], matching: 0, searchError: error.message, loaded: true });
      render();
    } else if (!error.offline) {
      toast(`Could not load messages: ${error.message}`);
    }
    return;
  } finally {
    if (loadController === controller) loadController = null;
  }
  // Messages waiting out their Undo stay out of sight.
  const hidden = pendingDelete ? pendingDelete.ids : new Set();
  const shown = (data.messages || []).filter((message) => !hidden.has(message.ID));
  const unreadHidden = pendingDelete ? pendingDelete.unread : 0;
  state.searchError = "";
  state.messages = shown;
  state.total = Math.max(0, (data.total ?? 0) - hidden.size);
  state.unread = Math.max(0, (data.unread ?? 0) - unreadHidden);
  state.matching = Math.max(0, (data.messages_count ?? shown.length) - hidden.size);
  state.matchingUnread = Math.max(0, (data.messages_unread ?? 0) - unreadHidden);
  state.loaded = true;
  // A "new" frame can arrive after a list that already counted its message
  // (the two travel on different connections): the newest message the list
  // knows tells them apart, since later mail is created later.
  state.countedUntil = !state.query && state.start === 0 && shown.length ? shown[0].Created : "";
  if (state.start > 0 && state.start >= state.matching) {
    // The page emptied under us (deletions): show the last one that has mail.
    state.start = Math.max(0, Math.floor((state.matching - 1) / state.pageSize) * state.pageSize);
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
  selection.keepOnly(new Set(state.messages.map((message) => message.ID)));
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
  renderPager();
  // During a search the top bar's actions touch the results only, and say how many.
  const deleteLabel = state.query ? `Delete ${plural(state.matching, "result")}` : "Delete all";
  $("#delete-all .label").textContent = deleteLabel;
  $("#delete-all").title = state.query ? `Delete the ${plural(state.matching, "matching message")}` : "Delete every message";
  $("#delete-all").disabled = state.offline || (state.query ? state.matching === 0 : state.total === 0);
  const unreadInScope = state.query ? state.matchingUnread : state.unread;
  $("#mark-all-read .label").textContent = state.query ? `Mark ${count(unreadInScope)} read` : "Mark all read";
  $("#mark-all-read").title = state.query
    ? `Mark the ${plural(unreadInScope, "unread result")} read`
    : "Mark every message read";
  $("#mark-all-read").disabled = state.offline || unreadInScope === 0;
  document.title = state.unread ? `(${count(state.unread)}) Mailtrap` : "Mailtrap";
  setFaviconBadge(state.unread);
  bulk.render();
}

function renderPager() {
  const size = state.pageSize;
  const first = state.matching ? state.start + 1 : 0;
  const last = Math.min(state.start + state.messages.length, state.matching);
  const paged = state.matching > size;
  $("#range").textContent = paged ? `${count(first)}–${count(last)} of ${count(state.matching)}` : "";
  $("#prev-page").disabled = state.start === 0;
  $("#next-page").disabled = state.start + size >= state.matching;
  $("#prev-page").hidden = $("#next-page").hidden = !paged;
  const pages = Math.max(1, Math.ceil(state.matching / size));
  $("#page-jump").hidden = pages === 1;
  const number = $("#page-number");
  number.max = String(pages);
  if (document.activeElement !== number) number.value = String(Math.floor(state.start / size) + 1);
  $("#page-count").textContent = `of ${count(pages)}`;
  $("#list-foot").hidden = !state.loaded || state.matching === 0;
}

// -- live events --------------------------------------------------------------

const MAX_PENDING = 2000; // more than this between two renders: reload instead
let pending = [];
let overflowed = false;

// Frames are applied in batches: a burst of mail renders once. A timer rather
// than requestAnimationFrame, so the title keeps counting in a background tab.
function onEvent(frame) {
  if (frame.Type === "relay") return relayFrame(frame.Data);
  if (pending.length >= MAX_PENDING) {
    overflowed = true;
    return;
  }
  pending.push(frame);
  if (pending.length === 1) setTimeout(applyEvents, 30);
}

/** Relay state, for the open message and a bulk release: release.js has it (loaded
 * after the first rows, or now if a frame comes before). */
function relayFrame(data) {
  import("./release.js").then(
    (release) => release.relayFrame(data),
    () => {}, // offline: what was missed is read again when a message opens
  );
}

function applyEvents() {
  const frames = pending;
  pending = [];
  if (overflowed) {
    overflowed = false;
    load();
    bulk.refreshTags();
    return;
  }
  for (const frame of frames) applyEvent(frame);
  render();
}

function applyEvent({ Type: type, Data: data }) {
  if (type !== "stats") eventsSeen += 1;
  if (type === "new" && data && data.ID) {
    const listed = state.messages.some((message) => message.ID === data.ID);
    const counted = listed || Boolean(state.countedUntil && data.Created && data.Created <= state.countedUntil);
    if (counted) return; // in the list already, or below its first page
    state.total += 1;
    if (!data.Read) state.unread += 1;
    notifyNew(data, (id) => openById(id));
    if ((data.Tags || []).length) bulk.refreshTags();
    if (!state.query && state.start === 0) {
      if (!state.messages.some((message) => message.ID === data.ID)) {
        state.messages.unshift(data);
        state.messages.length = Math.min(state.messages.length, state.pageSize);
        state.matching += 1;
        if (!data.Read) state.matchingUnread += 1;
        fresh.add(data.ID);
      }
    } else {
      scheduleReload(); // a search or a later page: the server knows where it goes
    }
  } else if (type === "delete" && data && data.ID) {
    const message = find(data.ID);
    state.messages = state.messages.filter((each) => each.ID !== data.ID);
    if (message && (message.Tags || []).length) bulk.refreshTags();
    if (view.openId === data.ID) closeMessage({ note: "This message was deleted", history: "replace" });
    // A gap in this page to refill, or a later page whose messages shifted. Old
    // mail pruned off the end of the first page needs nothing: "stats" recounts.
    if (message || state.start > 0 || state.query) scheduleReload();
  } else if (type === "update" && data && data.ID) {
    if (Array.isArray(data.Tags)) bulk.refreshTags();
    const message = find(data.ID);
    if (!message) {
      if (state.query) scheduleReload(); // it may match now, or no longer
      return; // not on this page: "stats" carries the new counts
    }
    if (typeof data.Read === "boolean" && data.Read !== message.Read) {
      message.Read = data.Read;
      state.unread = Math.max(0, state.unread + (data.Read ? -1 : 1));
      state.matchingUnread = Math.max(0, state.matchingUnread + (data.Read ? -1 : 1));
    }
    if (Array.isArray(data.Tags)) message.Tags = data.Tags;
    view.update(message);
  } else if (type === "prune") {
    scheduleReload(); // many messages changed at once (Mailpit's frame): reload what is shown
  } else if (type === "truncate") {
    Object.assign(state, { messages: [], total: 0, unread: 0, matching: 0, matchingUnread: 0, start: 0 });
    if (view.openId) closeMessage({ note: "This message was deleted", history: "replace" });
    bulk.refreshTags();
    scheduleReload();
  } else if (type === "stats" && data && typeof data.Total === "number") {
    state.total = Math.max(0, data.Total - (pendingDelete ? pendingDelete.ids.size : 0));
    if (typeof data.Unread === "number") state.unread = Math.max(0, data.Unread - (pendingDelete ? pendingDelete.unread : 0));
  }
}

let socketLive = false;

function onStatus(status, { reconnected }) {
  socketLive = status === "live";
  const element = $("#status");
  element.dataset.status = status;
  element.querySelector(".status-text").textContent = status === "live" ? "Live" : "Reconnecting…";
  element.title = status === "live" ? "New mail appears as it arrives" : "Lost the connection to the server; retrying";
  setOffline(!socketLive || !api.reachability.reachable);
  if (reconnected) {
    load(); // whatever happened while away
    bulk.refreshTags();
  }
}

/** Offline: actions that need the server are blocked and say so; the page keeps retrying. */
function setOffline(offline) {
  if (offline === state.offline) return;
  state.offline = offline;
  document.body.classList.toggle("offline", offline);
  $("#offline-banner").hidden = !offline;
  for (const button of document.querySelectorAll("[data-needs-server]")) button.disabled = offline;
  if (!offline) view.retry();
  render();
}

/** False (and a word why) when the server is away: the callers' actions wait for it. */
function guard() {
  if (!state.offline) return true;
  toast("The server cannot be reached: try again when it is back.");
  return false;
}

// -- actions ------------------------------------------------------------------

function find(id) {
  return state.messages.find((message) => message.ID === id);
}

/** What a key acts on: the open message when focus is in it, else the one under the cursor. */
function currentId(inView) {
  return view.openId && (inView || !list.cursorId) ? view.openId : list.cursorId;
}

function select(id, range) {
  if (range) selection.extend(id, state.messages.map((message) => message.ID));
  else selection.toggle(id);
}

function openMessage(id, { push = true } = {}) {
  const summary = find(id);
  if (!summary) return;
  cursorMoved = true;
  list.setCursor(id, { scroll: true });
  list.setOpen(id);
  layout.classList.add("show-message");
  view.open({ ...summary });
  if (push) navigate({ id });
}

function openById(id) {
  if (find(id)) return openMessage(id);
  navigate({ id });
  applyLocation();
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
  state.matchingUnread = Math.max(0, state.matchingUnread + (read ? -1 : 1));
  render();
  view.update(summary);
}

async function setRead(summary, read) {
  if (!guard()) return;
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

// A delete is shown at once and sent after UNDO_DELAY, unless Undo is pressed.
let pendingDelete = null; // {ids: Set, unread: number}

function deleteMessages(ids) {
  if (!guard()) return;
  finishToast(); // an earlier delete still waiting is sent now
  const doomed = new Set(ids);
  const index = state.messages.findIndex((message) => doomed.has(message.ID));
  const keep = state.messages.filter((message) => !doomed.has(message.ID));
  // The cursor stays in place: on the next (older) message, or the one before.
  const neighbour = keep[Math.min(Math.max(index, 0), keep.length - 1)];
  const removed = state.messages.length - keep.length;
  const unread = state.messages.filter((message) => doomed.has(message.ID) && !message.Read).length;
  state.unread -= unread;
  state.matchingUnread = Math.max(0, state.matchingUnread - unread);
  state.total -= removed;
  state.matching -= removed;
  state.messages = keep;
  if (view.openId && doomed.has(view.openId)) closeMessage({ history: "replace" });
  list.setCursor(neighbour ? neighbour.ID : null, { scroll: true });
  render();
  const mine = (pendingDelete = { ids: doomed, unread });
  const send = async () => {
    if (pendingDelete !== mine) return;
    try {
      await api.deleteMessages([...doomed]);
    } catch (error) {
      toast(`Could not delete: ${error.message}`);
    } finally {
      if (pendingDelete === mine) pendingDelete = null;
    }
    scheduleReload();
  };
  toast(`Deleted ${plural(doomed.size, "message")}`, {
    duration: UNDO_DELAY,
    action: {
      label: "Undo",
      run: () => {
        if (pendingDelete === mine) pendingDelete = null;
        load();
      },
    },
    onExpire: send,
  });
}

async function deleteEverything() {
  if (!guard()) return;
  const what = state.query ? plural(state.matching, "matching message") : plural(state.total, "message");
  const confirmed = await confirmDialog({
    title: state.query ? "Delete the search results?" : "Delete every message?",
    text: `${what} will be deleted for good.`,
    ok: state.query ? `Delete ${plural(state.matching, "result")}` : "Delete all",
  });
  if (!confirmed) return;
  try {
    if (state.query) await api.deleteSearch(state.query);
    else await api.deleteAll();
  } catch (error) {
    toast(`Could not delete: ${error.message}`);
  }
  selection.clear();
  if (view.openId) closeMessage({ history: "replace" });
  load();
}

async function markAllRead() {
  if (!guard()) return;
  for (const message of state.messages) message.Read = true;
  if (!state.query) state.unread = 0;
  state.matchingUnread = 0;
  render();
  const open = find(view.openId);
  if (open) view.update(open);
  try {
    await api.setReadAll(true, state.query);
  } catch (error) {
    toast(`Could not mark read: ${error.message}`);
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
  selection.clear();
  list.element.scrollTop = 0;
  navigate({ q: query }, { replace: !push });
  bulk.renderTagBar();
  load();
}

/** Load the page at `start`; a promise for it, or null when there is no such page. */
function goToPage(start) {
  if (start < 0 || (start >= state.matching && start > 0) || start === state.start) return null;
  state.start = start;
  selection.clear();
  list.element.scrollTop = 0;
  return load();
}

/** Move the cursor; past either end of the page, onto the next or previous page.
 * With a message open, the message under the cursor opens. */
async function moveCursor(delta) {
  cursorMoved = true;
  const opened = Boolean(view.openId);
  const index = state.messages.findIndex((message) => message.ID === list.cursorId);
  const target = index + delta;
  let landing = null;
  if (target >= 0 && target < state.messages.length) {
    landing = state.messages[target];
  } else {
    const size = state.pageSize;
    const page = target < 0 ? goToPage(state.start - size) : goToPage(state.start + size);
    if (!page) return;
    await page;
    landing = target < 0 ? state.messages.at(-1) : state.messages[0];
  }
  if (!landing) return;
  list.setCursor(landing.ID, { scroll: true });
  if (opened) openMessage(landing.ID);
}

function storedPageSize() {
  try {
    const size = Number(localStorage.getItem("mailtrap.pageSize"));
    return PAGE_SIZES.includes(size) ? size : 50;
  } catch {
    return 50;
  }
}

function setPageSize(size) {
  if (!PAGE_SIZES.includes(size) || size === state.pageSize) return;
  // The first message shown stays on the page shown.
  state.start = Math.floor(state.start / size) * size;
  state.pageSize = size;
  try {
    localStorage.setItem("mailtrap.pageSize", String(size));
  } catch {
    // storage disabled: the choice lasts until reload
  }
  const path = new URL(".", document.baseURI).pathname;
  document.cookie = `${PAGE_SIZE_COOKIE}=${size}; path=${path}; max-age=31536000; SameSite=Strict`;
  selection.clear();
  load();
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
    bulk.renderTagBar();
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
      } catch (error) {
        const note = error.offline ? "The server cannot be reached" : "That message no longer exists";
        closeMessage({ note, history: "none" });
      }
    }
  } else if (!id && view.openId) {
    closeMessage({ history: "none" });
  }
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
  $("#prev-page").addEventListener("click", () => goToPage(state.start - state.pageSize));
  $("#next-page").addEventListener("click", () => goToPage(state.start + state.pageSize));
  const sizeSelect = $("#page-size");
  sizeSelect.value = String(state.pageSize);
  sizeSelect.addEventListener("change", () => setPageSize(Number(sizeSelect.value)));
  $("#page-jump").addEventListener("submit", (event) => {
    event.preventDefault();
    const pages = Math.max(1, Math.ceil(state.matching / state.pageSize));
    const number = Math.min(pages, Math.max(1, Math.round(Number($("#page-number").value) || 1)));
    $("#page-number").value = String(number);
    goToPage((number - 1) * state.pageSize);
  });
  $("#delete-all").addEventListener("click", deleteEverything);
  $("#mark-all-read").addEventListener("click", markAllRead);
  $("#shortcuts-button").addEventListener("click", () => $("#shortcuts-dialog").showModal());
  $("#retry-now").addEventListener("click", () => {
    events.retryNow();
    load();
  });
  $("#copy-example").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("#smtp-example").textContent);
      toast("Copied to the clipboard");
    } catch {
      toast("Copying is not allowed here: select the text instead");
    }
  });
  bindThemeButton($("#theme-button"));
  bindNotifyButton($("#notify-button"));
  bulk.bind();
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
      remove: ({ inView }) => {
        if (!inView && (selection.size || selection.all)) bulk.deleteSelected();
        else if (currentId(inView)) deleteMessages([currentId(inView)]);
      },
      toggleRead: ({ inView }) => currentId(inView) && toggleRead(currentId(inView)),
      select: () => list.cursorId && selection.toggle(list.cursorId),
      tag: ({ inView }) => {
        if (!inView && (selection.size || selection.all)) bulk.tagSelected();
        else if (find(currentId(inView))) bulk.tagMessages([find(currentId(inView))]);
      },
      search: () => {
        searchInput.focus();
        searchInput.select();
      },
      newerPage: () => goToPage(state.start - state.pageSize),
      olderPage: () => goToPage(state.start + state.pageSize),
      tab: ({ key }) => view.selectTabNumber(Number(key)),
      escape: () => {
        if (view.openId) closeMessage();
        else if (selection.size || selection.all) selection.clear();
        else if (state.query) search("");
      },
      help: () => $("#shortcuts-dialog").showModal(),
      leaveSearch: () => {
        if (searchInput.value) search("");
        $("#list").focus({ preventScroll: true });
      },
    },
  });
  window.addEventListener("popstate", applyLocation);
  // A delete waiting for Undo is sent as the page goes.
  window.addEventListener("pagehide", () => {
    if (pendingDelete) api.deleteOnUnload([...pendingDelete.ids]);
  });
  api.reachability.onChange = (reachable) => {
    if (reachable && !socketLive) events.retryNow();
    setOffline(!reachable || !socketLive);
  };
  setInterval(() => list.refreshTimes(), 30000);

  applyLocation().finally(() => afterPaint(loadTheRest));
  bulk.refreshTags();
}

/** Run `call` once the frame being drawn is on screen (at once in a hidden tab, which draws none). */
function afterPaint(call) {
  if (document.hidden) setTimeout(call, 0);
  else requestAnimationFrame(() => setTimeout(call, 0));
}

/** What the first rows did not need: the message pane's code, relay settings, the empty
 * inbox's SMTP settings. */
function loadTheRest() {
  view.load().catch(() => {}); // offline: opening a message tries again
  bulk.learnRelay();
  import("./welcome.js").then(
    ({ showSmtpSettings }) => showSmtpSettings(),
    () => {}, // the welcome card just lacks the address
  );
}

function bindNotifyButton(button) {
  if (!notificationsPossible()) return;
  button.hidden = false;
  const show = () => {
    const on = notificationsWanted();
    button.setAttribute("aria-pressed", String(on));
    button.title = on ? "Notifications for new mail: on" : "Notify me of new mail";
    button.setAttribute("aria-label", "Notifications for new mail");
  };
  show();
  button.addEventListener("click", async () => {
    const on = await setNotifications(!notificationsWanted());
    if (!on && Notification.permission === "denied") toast("The browser blocks notifications for this page.");
    show();
  });
}

const events = connectEvents({ onEvent, onStatus });
start();
