// Every request of the client goes through here: same-origin cookies, the session's CSRF token on writes,
// OGC exception bodies turned into ApiError with the server's own description.
let csrfToken = null;

export function setCsrf(token) { csrfToken = token; }

export class ApiError extends Error {
  constructor(status, code, description, body) {
    super(description || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

export async function request(url, { method = "GET", body, headers = {}, contentType } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD" && csrfToken) init.headers["X-CSRF-Token"] = csrfToken;
  if (body !== undefined) {
    init.headers["Content-Type"] = contentType || "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, "NetworkError", err.message);
  }
  const type = resp.headers.get("Content-Type") || "";
  const data = resp.status === 204 ? null : type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    const code = data && typeof data === "object" ? data.code : undefined;
    const description = data && typeof data === "object" ? data.description : String(data || resp.statusText);
    throw new ApiError(resp.status, code, description, data);
  }
  return { data, etag: resp.headers.get("ETag"), status: resp.status, headers: resp.headers };
}

export const getJSON = async (url) => (await request(url)).data;

export function escapeHtml(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function toast(message, kind = "info", ms = 4000) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = `toast ${kind}`;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, ms);
}
