// Who the console acts as: one credential (a login token, an API key, or a viewer token
// exchanged from a link), kept in this tab's sessionStorage and in memory, never in a URL or
// in localStorage, and what GET /v1/auth/whoami says of it. A login token lasts
// `token_lifetime` (5 min by default) and cannot be renewed without the password, so the
// console asks for it again shortly before the token expires (see app.js).

const STORE_KEY = "auditlog.console.credential";

/** Seconds before a login token's expiry at which the console asks for the password again. */
export const RENEW_BEFORE_S = 60;

function readStored() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
    if (stored && typeof stored.token === "string" && typeof stored.kind === "string") {
      return stored;
    }
  } catch {
    // storage refused or garbled: there is no session to resume
  }
  return null;
}

export class Session {
  constructor(api) {
    this.api = api;
    this.credential = readStored(); // {token, kind: "login" | "key" | "viewer", username?, expiresAt?, lifetime?}
    this.identity = null; // whoami's answer
  }

  get token() {
    return this.credential ? this.credential.token : null;
  }

  get kind() {
    return this.credential ? this.credential.kind : null;
  }

  /** Milliseconds since the epoch when the credential stops working, or null (an API key). */
  get expiresAt() {
    return this.credential && this.credential.expiresAt ? this.credential.expiresAt : null;
  }

  /** Whether the credential carries `scope` (`admin` grants every scope). */
  hasScope(scope) {
    const scopes = (this.identity && this.identity.scopes) || [];
    return scopes.includes(scope) || scopes.includes("admin");
  }

  /** A viewer token's bound filter (whoami's `filter`), or null. */
  get boundFilter() {
    return this.identity && this.identity.filter ? this.identity.filter : null;
  }

  keep(credential) {
    this.credential = credential;
    try {
      sessionStorage.setItem(STORE_KEY, JSON.stringify(credential));
    } catch {
      // storage refused (a private window's quota): the session lasts as long as the page
    }
  }

  /** Forget the credential, in memory and in the tab's storage. */
  clear() {
    this.credential = null;
    this.identity = null;
    try {
      sessionStorage.removeItem(STORE_KEY);
    } catch {
      // nothing was stored
    }
  }

  /** Sign in with a username and password; throws the API's error on refusal. */
  async signInWithPassword(username, password) {
    const answer = await this.api.login(username, password);
    const expiresAt = Date.now() + Number(answer.expires_in) * 1000;
    const identity = await this.api.whoami(answer.access_token);
    this.keep({
      token: answer.access_token,
      kind: "login",
      username,
      expiresAt,
      lifetime: Number(answer.expires_in),
    });
    this.identity = identity;
    return identity;
  }

  /** Sign in with an API key (or any bearer token): whoami must accept it. */
  async signInWithKey(key) {
    const token = key.trim();
    const identity = await this.api.whoami(token);
    const expiresAt = identity.expires_at ? Date.parse(identity.expires_at) : null;
    const kind = identity.credential && identity.credential.kind === "viewer" ? "viewer" : "key";
    this.keep({ token, kind, expiresAt });
    this.identity = identity;
    return identity;
  }

  /** Exchange a viewer token from a link for one of this session's (the link's is revoked). */
  async exchangeViewerToken(linkToken) {
    const answer = await this.api.exchange(linkToken);
    const identity = await this.api.whoami(answer.token);
    this.keep({ token: answer.token, kind: "viewer", expiresAt: Date.parse(answer.expires_at) });
    this.identity = identity;
    return identity;
  }

  /** Ask whoami about the kept credential; throws (and the API reports a 401) if refused. */
  async resume() {
    this.identity = await this.api.whoami();
    return this.identity;
  }
}
