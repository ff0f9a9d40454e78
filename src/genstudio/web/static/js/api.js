// The studio's REST client: one fetch wrapper that adds the API token, asks for it on a 401,
// and turns error answers into readable messages. Everything goes through fetch (SSE included)
// because EventSource and <img src> cannot send an Authorization header.

const TOKEN_KEY = "genstudio.apiToken";

export class ApiError extends Error {
  constructor(status, detail) {
    super(formatDetail(detail, status));
    this.status = status;
    this.detail = detail;
    this.fields = fieldsOf(detail);
  }
}

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* private mode: the token lives for this page only */
  }
  memoryToken = token || "";
  for (const fn of tokenListeners) fn(memoryToken);
}

let memoryToken = getToken();
const tokenListeners = new Set();
export function onTokenChange(fn) {
  tokenListeners.add(fn);
}
export function hasToken() {
  return Boolean(memoryToken);
}

// A 401 asks once: concurrent requests wait on the same question.
let askToken = null;
let pendingAsk = null;
export function setTokenPrompt(fn) {
  askToken = fn;
}

async function obtainToken(wrong) {
  if (!askToken) throw new ApiError(401, "an API token is required");
  if (!pendingAsk) {
    pendingAsk = Promise.resolve(askToken(wrong)).finally(() => {
      pendingAsk = null;
    });
  }
  const token = await pendingAsk;
  if (!token) throw new ApiError(401, "an API token is required");
  setToken(token);
  return token;
}

/** fetch() with the token; on 401 ask for a token and retry. Returns the Response (ok or not). */
export async function rawFetch(path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const sent = memoryToken;
    const headers = new Headers(options.headers || {});
    if (sent) headers.set("Authorization", `Bearer ${sent}`);
    const response = await fetch(path, { ...options, headers });
    if (response.status !== 401 || attempt >= 5) return response;
    if (memoryToken && memoryToken !== sent) continue; // someone else just entered a new token
    await obtainToken(Boolean(sent));
  }
}

/** fetch and decode JSON; a non-2xx answer throws an ApiError carrying the server's detail. */
export async function api(path, options = {}) {
  const opts = { ...options };
  if (opts.json !== undefined) {
    opts.body = JSON.stringify(opts.json);
    opts.headers = { ...(opts.headers || {}), "Content-Type": "application/json" };
    delete opts.json;
  }
  const response = await rawFetch(path, opts);
  if (!response.ok) throw await errorFrom(response);
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response;
}

export async function errorFrom(response) {
  let detail = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.detail !== undefined) detail = body.detail;
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(response.status, detail);
}

export function uploadForm(file) {
  const form = new FormData();
  form.append("file", file, file.name || "upload");
  return form;
}

/** A blob (for images and downloads when a token is needed). */
export async function fetchBlob(path) {
  const response = await rawFetch(path);
  if (!response.ok) throw await errorFrom(response);
  return response.blob();
}

/**
 * Read a Server-Sent Events stream with fetch; calls onEvent(name, data) per event.
 * Resolves when the server closes the stream or `signal` aborts.
 */
export async function readEvents(path, onEvent, signal) {
  const response = await rawFetch(path, { headers: { Accept: "text/event-stream" }, signal });
  if (!response.ok) throw await errorFrom(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = val;
        else if (field === "data") data.push(val);
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
}

function fieldOf(loc) {
  if (!Array.isArray(loc) || !loc.length) return null;
  const parts = loc.filter((p) => !["body", "query", "path"].includes(p));
  return parts.length ? parts.join(".") : null;
}

function fieldsOf(detail) {
  const fields = new Set();
  if (Array.isArray(detail)) {
    for (const item of detail) {
      const name = fieldOf(item && item.loc);
      if (name) fields.add(name.split(".")[0]);
    }
  } else if (typeof detail === "string") {
    const m = /^([a-z_]+):/.exec(detail);
    if (m) fields.add(m[1]);
  }
  return [...fields];
}

/** The server's `detail` (a string, or a list of {loc, msg}) as lines a person can read. */
export function detailLines(detail) {
  if (Array.isArray(detail)) {
    return detail.map((item) => {
      if (item && typeof item === "object") {
        const name = fieldOf(item.loc);
        return name ? `${name}: ${item.msg}` : String(item.msg ?? JSON.stringify(item));
      }
      return String(item);
    });
  }
  if (detail && typeof detail === "object") return [JSON.stringify(detail)];
  return [String(detail)];
}

function formatDetail(detail, status) {
  const lines = detailLines(detail);
  return lines.length ? lines.join("; ") : `request failed (${status})`;
}
