// The Mailpit-compatible JSON API (v1), as the rest of the UI uses it.
// Paths are relative so the inbox works under any --webroot.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const id = (value) => encodeURIComponent(value);

async function request(method, path, { params, json, as = "json", signal } = {}) {
  const url = new URL(path, document.baseURI);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const options = { method, signal, headers: { Accept: as === "json" ? "application/json" : "*/*" } };
  if (json !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(json);
  }
  const response = await fetch(url, options);
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
export function listMessages({ query = "", start = 0, limit = 50, signal } = {}) {
  return query.trim()
    ? request("GET", "api/v1/search", { params: { query, start, limit }, signal })
    : request("GET", "api/v1/messages", { params: { start, limit }, signal });
}

export const getMessage = (messageId, signal) => request("GET", `api/v1/message/${id(messageId)}`, { signal });

export const getHeaders = (messageId, signal) => request("GET", `api/v1/message/${id(messageId)}/headers`, { signal });

export const getRaw = (messageId, signal) =>
  request("GET", `api/v1/message/${id(messageId)}/raw`, { as: "text", signal });

export const rawUrl = (messageId) => `api/v1/message/${id(messageId)}/raw`;

export const partUrl = (messageId, partId) => `api/v1/message/${id(messageId)}/part/${id(partId)}`;

/** The rendered HTML body; remote images only when asked for. */
export const htmlUrl = (messageId, { remote = false } = {}) => `view/${id(messageId)}.html${remote ? "?remote=1" : ""}`;

export function setRead(ids, read) {
  if (!ids.length) throw new Error("setRead needs IDs: an empty list means every message");
  return request("PUT", "api/v1/messages", { json: { IDs: ids, Read: read }, as: "none" });
}

export const markAllRead = () => request("PUT", "api/v1/messages", { json: { Read: true }, as: "none" });

export function deleteMessages(ids) {
  if (!ids.length) throw new Error("deleteMessages needs IDs: an empty list means every message");
  return request("DELETE", "api/v1/messages", { json: { IDs: ids }, as: "none" });
}

export const deleteAll = () => request("DELETE", "api/v1/messages", { json: {}, as: "none" });

export const deleteSearch = (query) => request("DELETE", "api/v1/search", { params: { query }, as: "none" });

export const webUIConfig = () => request("GET", "api/v1/webui");

/** Mailpit's release: relay the message to `to` (addresses); refusals come back as ApiError. */
export const releaseMessage = (messageId, to) =>
  request("POST", `api/v1/message/${id(messageId)}/release`, { json: { To: to }, as: "none" });
