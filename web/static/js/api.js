// The Mailpit-compatible JSON API (v1), as the rest of the UI uses it.
// Paths are relative so the inbox works under any --webroot.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status; // 0: no answer at all (the server is down or unreachable)
  }

  get offline() {
    return this.status === 0;
  }
}

/** Told of every request that got no answer, and of the next one that did. */
export const reachability = { onChange: () => {}, reachable: true };

function reached(yes) {
  if (reachability.reachable === yes) return;
  reachability.reachable = yes;
  reachability.onChange(yes);
}

const id = (value) => encodeURIComponent(value);

async function request(method, path, { params, json, as = "json", signal, accept = true } = {}) {
  const url = new URL(path, document.baseURI);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  // No Accept header where a preload may answer: the browser reuses only a like request.
  const options = { method, signal, headers: accept ? { Accept: as === "json" ? "application/json" : "*/*" } : {} };
  if (json !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    reached(false);
    throw new ApiError(0, "the server cannot be reached");
  }
  reached(true);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.Error) message = body.Error;
    } catch {
      // Not JSON: keep the status line.
    }
    throw new ApiError(response.status, message);
  }
  if (as === "text") return response.text();
  if (as === "none") return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** A page of summaries, newest first; a search when `query` is not blank. */
// The first page's URL is the one the page preloads (web/ui.py): keep them alike.
export function listMessages({ query = "", start = 0, limit = 50, signal } = {}) {
  return query.trim()
    ? request("GET", "api/v1/search", { params: { query, start, limit }, signal })
    : request("GET", "api/v1/messages", { params: { start, limit }, signal, accept: false });
}

export const getMessage = (messageId, signal) => request("GET", `api/v1/message/${id(messageId)}`, { signal });

export const getHeaders = (messageId, signal) => request("GET", `api/v1/message/${id(messageId)}/headers`, { signal });

export const getRaw = (messageId, signal) =>
  request("GET", `api/v1/message/${id(messageId)}/raw`, { as: "text", signal });

export const rawUrl = (messageId) => `api/v1/message/${id(messageId)}/raw`;

export const thumbUrl = (messageId, partId) => `${partUrl(messageId, partId)}/thumb`;

/** A body as a download: `kind` is "html" or "txt". */
export const bodyDownloadUrl = (messageId, kind) => `view/${id(messageId)}.${kind}?dl=1`;

export const getCalendar = (messageId, signal) => request("GET", `api/v1/message/${id(messageId)}/calendar`, { signal });

export const partUrl = (messageId, partId) => `api/v1/message/${id(messageId)}/part/${id(partId)}`;

/** The rendered HTML body; remote images only when asked for. */
export const htmlUrl = (messageId, { remote = false } = {}) => `view/${id(messageId)}.html${remote ? "?remote=1" : ""}`;

export function setRead(ids, read) {
  if (!ids.length) throw new Error("setRead needs IDs: an empty list means every message");
  return request("PUT", "api/v1/messages", { json: { IDs: ids, Read: read }, as: "none" });
}

/** Mark every message, or with a `query` every match, read or unread. */
export const setReadAll = (read, query = "") =>
  request("PUT", "api/v1/messages", { json: query ? { Search: query, Read: read } : { Read: read }, as: "none" });

export function deleteMessages(ids) {
  if (!ids.length) throw new Error("deleteMessages needs IDs: an empty list means every message");
  return request("DELETE", "api/v1/messages", { json: { IDs: ids }, as: "none" });
}

export const deleteAll = () => request("DELETE", "api/v1/messages", { json: {}, as: "none" });

export const deleteSearch = (query) => request("DELETE", "api/v1/search", { params: { query }, as: "none" });

export const webUIConfig = () => request("GET", "api/v1/webui");

// -- tags (Mailpit's routes) ----------------------------------------------------------

/** Replace the tags of `ids` with `tags` (Mailpit's PUT /api/v1/tags). */
export function setTags(ids, tags) {
  if (!ids.length) throw new Error("setTags needs IDs");
  return request("PUT", "api/v1/tags", { json: { IDs: ids, Tags: tags }, as: "none" });
}

export const renameTag = (tag, name) => request("PUT", `api/v1/tags/${id(tag)}`, { json: { Name: name }, as: "none" });

export const deleteTag = (tag) => request("DELETE", `api/v1/tags/${id(tag)}`, { as: "none" });

/** {tag: count} for every tag in use (from Mailpit's AppInformation). */
export const tagCounts = async () => (await request("GET", "api/v1/info")).Tags || {};

/** Delete `ids` once the page is going away (a pending undo must not be lost). */
export function deleteOnUnload(ids) {
  fetch(new URL("api/v1/messages", document.baseURI), {
    method: "DELETE",
    keepalive: true,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ IDs: ids }),
  }).catch(() => {});
}

/** Mailpit's release: relay the message to `to` (addresses); refusals come back as ApiError. */
export const releaseMessage = (messageId, to) =>
  request("POST", `api/v1/message/${id(messageId)}/release`, { json: { To: to }, as: "none" });

/**
 * Beyond Mailpit: relay many messages to `to` in one request. `target` is {ids},
 * {query} (every result of that search) or {} (every message). Answers
 * {Messages: [{ID, Subject}], To: [addresses as queued], Missing: [IDs gone]}.
 */
export function releaseMessages(target, to) {
  const body = { To: to };
  if (target.ids) body.IDs = target.ids;
  else if (target.query) body.Search = target.query;
  return request("POST", "api/v1/messages/release", { json: body });
}
