// The console's only way to the service: the public /v1 API (docs/api.md), over fetch, with
// the credential in the Authorization header and never in a URL. Errors come back as
// ApiError with the problem document's detail (RFC 9457), which the views show as it is.

import { encodeParams } from "./query.js";

export class ApiError extends Error {
  constructor(status, detail, { title = "", retryAfter = null, errors = [] } = {}) {
    super(detail);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.retryAfter = retryAfter;
    this.errors = errors;
  }
}

/** An ApiError from a response that is not 2xx, reading its problem document if it has one. */
export async function errorOf(response) {
  let detail = `the service answered ${response.status} ${response.statusText}`.trim();
  let title = "";
  let errors = [];
  try {
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("json")) {
      const problem = await response.json();
      if (problem && typeof problem.detail === "string") detail = problem.detail;
      if (problem && typeof problem.title === "string") title = problem.title;
      if (problem && Array.isArray(problem.errors)) errors = problem.errors;
    }
  } catch {
    // a body that is not JSON: the status line says what there is to say
  }
  const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  return new ApiError(response.status, detail, {
    title,
    retryAfter: Number.isNaN(retry) ? null : retry,
    errors,
  });
}

function networkError(error) {
  if (error && error.name === "AbortError") return error;
  return new ApiError(
    0,
    "The service did not answer. Check the network connection, or whether the server is " +
      "running, and try again.",
  );
}

/** Ids that GET /v1/events/{id} cannot name: routes of their own (docs/api.md, Routes). */
const ROUTE_NAMES = new Set(["export", "stream"]);

export class Api {
  /**
   * `token()` gives the current credential (or null); `onUnauthorized(error)` is told of any
   * 401 to a request made with it: the credential expired or was revoked.
   */
  constructor({ token, onUnauthorized }) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  authHeaders(token = this.token()) {
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  /** A fetch of `path` (with `params`, [name, value] pairs); the Response when it is 2xx,
   * else an ApiError. `token: false` sends no credential; a string sends that one. */
  async fetch(path, { method = "GET", params = [], body, accept, token, signal } = {}) {
    const query = params.length ? `?${encodeParams(params)}` : "";
    const headers = token === false ? {} : this.authHeaders(token || this.token());
    if (accept) headers.Accept = accept;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(`/v1/${path}${query}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      throw networkError(error);
    }
    if (response.ok) return response;
    const error = await errorOf(response);
    if (response.status === 401 && token === undefined) this.onUnauthorized(error);
    throw error;
  }

  async json(path, options) {
    const response = await this.fetch(path, { accept: "application/json", ...options });
    return response.json();
  }

  // -- signing in ------------------------------------------------------------------------

  /** POST /v1/auth/token: `{access_token, expires_in}` for a username and password. */
  login(username, password) {
    return this.json("auth/token", {
      method: "POST",
      body: { username, password },
      token: false,
    });
  }

  /** GET /v1/auth/whoami, with `token` if given (a credential being tried), else the current. */
  whoami(token) {
    return this.json("auth/whoami", { token });
  }

  /** POST /v1/viewer-tokens/exchange: a new viewer token for one given in a link (which the
   * service then revokes, so the link works once). */
  exchange(viewerToken) {
    return this.json("viewer-tokens/exchange", { method: "POST", token: viewerToken });
  }

  // -- reading ---------------------------------------------------------------------------

  /** GET /v1/events: `{events, next_cursor}`, each event with its stored bytes as `text`. */
  async events(params, signal) {
    const response = await this.fetch("events", { params, signal, accept: "application/json" });
    return response.json();
  }

  /**
   * One event by id: `{text, bytes, event}`, `bytes` being exactly what the service sent
   * (the leaf of the log is SHA-256(0x00 || those bytes), so they are not re-encoded). The
   * ids `export` and `stream` name routes, so those two are read through the export, whose
   * NDJSON lines are the same bytes.
   */
  async eventById(id, signal) {
    let bytes;
    if (ROUTE_NAMES.has(id)) {
      const response = await this.fetch("events/export", { params: [["id", id]], signal });
      const all = new Uint8Array(await response.arrayBuffer());
      const end = all.indexOf(0x0a);
      if (end < 0) throw new ApiError(404, `no event has the id ${id}`);
      bytes = all.slice(0, end);
    } else {
      const response = await this.fetch(`events/${encodeURIComponent(id)}`, {
        signal,
        accept: "application/json",
      });
      bytes = new Uint8Array(await response.arrayBuffer());
    }
    const text = new TextDecoder().decode(bytes);
    return { bytes, text, event: JSON.parse(text) };
  }

  /** The URL of a live stream of `params` (filters), after `afterSeq` when given. */
  streamUrl(params, afterSeq) {
    const pairs = afterSeq === null || afterSeq === undefined ? params : [...params];
    if (afterSeq !== null && afterSeq !== undefined) pairs.push(["after_seq", String(afterSeq)]);
    return `/v1/events/stream${pairs.length ? `?${encodeParams(pairs)}` : ""}`;
  }

  /** GET /v1/events/export of `params` in `format`: the Response, to be read as a stream. */
  exportResponse(params, format, signal) {
    return this.fetch("events/export", { params: [...params, ["format", format]], signal });
  }

  // -- the log's integrity ---------------------------------------------------------------

  /** The latest checkpoint as its C2SP signed note (text). */
  async checkpointNote() {
    const response = await this.fetch("log/checkpoint", { accept: "text/plain" });
    return response.text();
  }

  inclusionProof(seq, treeSize) {
    return this.json("log/proof/inclusion", {
      params: [
        ["seq", String(seq)],
        ["tree_size", String(treeSize)],
      ],
    });
  }

  publicKey() {
    return this.json("log/public-key");
  }

  /** GET /v1/log/witnessed: the tenant's newest checkpoint that a cosigned tenants-log
   * checkpoint includes (an ApiError 404 when there is none, or no witnesses). */
  witnessed() {
    return this.json("log/witnessed");
  }

  /** GET /v1/log/witnesses: the service's witnesses, its quorum and the tenants log's key. */
  witnesses() {
    return this.json("log/witnesses");
  }
}
