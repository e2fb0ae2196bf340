// The console's entry: signing in and out, the URL as the view's one source of truth
// (query.js), and the parts of the page wired together. Everything it shows comes from the
// public /v1 API (api.js).

import { Api } from "./api.js";
import { h } from "./dom.js";
import {
  emptyView,
  filterParams,
  firstPage,
  parseView,
  queryParams,
  viewProblems,
  viewToSearch,
  withValue,
} from "./query.js";
import { RENEW_BEFORE_S, Session } from "./session.js";
import { Detail } from "./view-detail.js";
import { Exporter } from "./view-export.js";
import { Identity } from "./view-identity.js";
import { IntegrityCheck } from "./view-integrity.js";
import { Renewal } from "./view-renew.js";
import { Results } from "./view-results.js";
import { SearchForm } from "./view-search.js";
import { renderSignIn } from "./view-signin.js";
import { LiveTail } from "./view-tail.js";

const BASE = "/ui/";
const main = document.getElementById("main");
const identitySlot = document.getElementById("identity");

let view = parseView(location.search);
let shownSearch = null; // the search whose results are shown (its URL without event and tz)
let anchor = new Date().toISOString(); // the moment the shown page's time preset counts from
let nextCursor = null;
let searchController = null;
let renewAsked = false;
let consoleShown = false;

const api = new Api({
  token: () => session.token,
  onUnauthorized: () =>
    sessionEnded("The service no longer accepts this sign-in (it expired or was revoked). Sign in again to go on where you were."),
});
const session = new Session(api);

const identity = new Identity({
  onSignOut: () => signOut(),
  onTimeZone: (tz) => navigate({ ...view, tz }, { replace: true }),
});
identitySlot.replaceChildren(identity.element);
identity.hide();

const search = new SearchForm({
  onSearch: (next) => {
    const problems = viewProblems(next);
    search.showProblems(problems);
    if (problems.length) return;
    navigate(firstPage(next), { state: { cursors: [] }, force: true });
  },
});

const results = new Results({
  onOpen: (event) =>
    navigate({ ...view, event: event.id }, { state: { ...(history.state || {}), openedHere: true } }),
  hrefOf: (event) => BASE + viewToSearch({ ...view, event: event.id }),
  onPage: (direction) => page(direction),
  onRetry: () => refresh(true),
  onClear: () => search.clear(),
});

const integrity = new IntegrityCheck({ api, session });
const detail = new Detail({
  integrity,
  permalinkOf: (id) => location.origin + BASE + viewToSearch({ ...emptyView(), event: id }),
  onFilter: (path, value) => navigate(withValue(view, path, value), { state: { cursors: [] } }),
  onClose: () => {
    if (!view.event) return;
    // A detail opened from the results is closed by going back to them, so that Back after
    // closing goes to the search before, not to the detail again; one opened from a link
    // (a permalink) leaves the results of its page in its place.
    if (history.state && history.state.openedHere) history.back();
    else navigate({ ...view, event: "" }, { replace: true, state: history.state });
  },
});

const tail = new LiveTail({
  api,
  onEvent: (event) => results.addLive(event),
  filters: () => filterParams(view, Date.parse(anchor)),
  startAfter: () => (view.order === "desc" && !view.cursor ? results.newestSeq() : null),
  onUnauthorized: () => sessionEnded("The service no longer accepts this sign-in. Sign in again."),
});

const exporter = new Exporter({ api, filters: () => filterParams(view, Date.parse(anchor)) });

const renewal = new Renewal({
  session,
  onRenewed: () => {
    renewAsked = false;
    identity.show(session);
  },
  onSignOut: () => signOut(),
});

const layout = h(
  "div",
  { class: "layout" },
  identity.banner,
  h(
    "section",
    { class: "panel search-panel", "aria-labelledby": "search-title" },
    h("h2", { id: "search-title", class: "visually-hidden" }, "Search"),
    search.element,
  ),
  h(
    "section",
    { class: "panel results-panel", id: "results", "aria-labelledby": "results-title", tabindex: "-1" },
    h(
      "div",
      { class: "toolbar" },
      h("h2", { id: "results-title" }, "Events"),
      tail.element,
      exporter.element,
    ),
    results.element,
  ),
  detail.dialog,
  renewal.dialog,
);

// -- the view and the URL ----------------------------------------------------------------------

/** Go to `next`: a new history entry (or the current one replaced), then show it. */
function navigate(next, { replace = false, state = null, force = false } = {}) {
  const url = BASE + viewToSearch(next);
  if (replace) history.replaceState(state, "", url);
  else if (url !== location.pathname + location.search || force) history.pushState(state, "", url);
  view = next;
  apply(force);
}

/** Show the current view: the form, the time zone, the results, the detail. */
function apply(force = false) {
  if (!consoleShown) return;
  search.show(view);
  identity.setTimeZone(view.tz);
  results.setTimeZone(view.tz);
  detail.setTimeZone(view.tz);
  refresh(force);
  syncDetail();
}

function searchOf(v) {
  return viewToSearch({ ...v, event: "", tz: "utc" });
}

function refresh(force = false) {
  const key = searchOf(view);
  if (key === shownSearch && !force) return;
  shownSearch = key;
  runSearch();
}

async function runSearch() {
  if (searchController) searchController.abort();
  const controller = new AbortController();
  searchController = controller;
  const problems = viewProblems(view);
  if (problems.length) {
    results.refused(problems);
    return;
  }
  anchor = view.at || new Date().toISOString();
  results.loading();
  try {
    const answer = await api.events(queryParams(view, Date.parse(anchor)), controller.signal);
    if (controller.signal.aborted) return;
    nextCursor = answer.next_cursor;
    results.show({
      events: answer.events,
      hasNext: Boolean(answer.next_cursor),
      hasPrevious: Boolean(view.cursor),
      order: view.order,
      viewer: session.kind === "viewer",
    });
    performance.mark("auditlog:results-shown");
    tail.restart();
  } catch (error) {
    if (error.name === "AbortError" || controller.signal.aborted) return;
    if (error.status === 401) return; // the sign-in screen is shown instead
    results.failed(error, { viewer: session.kind === "viewer" });
  }
}

function page(direction) {
  const cursors = (history.state && Array.isArray(history.state.cursors) && history.state.cursors) || [];
  const preset = view.range && view.range !== "custom";
  if (direction === "next" && nextCursor) {
    navigate(
      { ...view, cursor: nextCursor, at: preset ? anchor : "", event: "" },
      { state: { cursors: [...cursors, view.cursor] } },
    );
  } else if (direction === "previous" && cursors.length) {
    const previous = cursors[cursors.length - 1];
    navigate(
      { ...view, cursor: previous, at: previous && preset ? anchor : "", event: "" },
      { state: { cursors: cursors.slice(0, -1) } },
    );
  } else {
    navigate({ ...view, cursor: "", at: "", event: "" }, { state: { cursors: [] } });
  }
  document.getElementById("results").focus();
}

let detailShown = null; // the id the detail holds or is loading

async function syncDetail() {
  if (!view.event) {
    detailShown = null;
    detail.close();
    return;
  }
  if (detailShown === view.event && detail.isOpen) return;
  const id = view.event;
  detailShown = id;
  detail.loading(id);
  try {
    const record = await api.eventById(id);
    if (detailShown === id) detail.show(record);
  } catch (error) {
    if (error.status === 401) return;
    if (detailShown === id) detail.failed(id, error);
  }
}

window.addEventListener("popstate", () => {
  view = parseView(location.search);
  apply();
});

document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || !consoleShown || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target.closest && target.closest("input, textarea, select, [contenteditable], dialog")) return;
  event.preventDefault();
  search.focusText();
});

// -- signing in and out ------------------------------------------------------------------------

function showSignIn(message, username = "") {
  consoleShown = false;
  shownSearch = null;
  identity.hide();
  renderSignIn(main, {
    session,
    message,
    username,
    onSignedIn: () => showConsole(),
  });
}

function showConsole() {
  consoleShown = true;
  renewAsked = false;
  identity.show(session);
  main.replaceChildren(layout);
  view = parseView(location.search);
  apply(true);
}

function sessionEnded(message) {
  if (!session.token) return;
  const username = (session.credential && session.credential.username) || "";
  leave();
  showSignIn(message, username);
}

function signOut() {
  if (!session.token) return;
  leave();
  showSignIn("You have signed out. The credential is forgotten by this tab.");
}

function leave() {
  tail.stop();
  if (searchController) searchController.abort();
  session.clear();
  consoleShown = false;
  renewal.close();
  detailShown = null;
  detail.close();
}

/** Every second: the time left; the password asked for before a login token expires. */
function watchExpiry() {
  if (!consoleShown || !session.token) return;
  identity.tick(session);
  const expiresAt = session.expiresAt;
  if (!expiresAt) return;
  const left = (expiresAt - Date.now()) / 1000;
  if (left <= 0) {
    sessionEnded(
      session.kind === "viewer"
        ? "This viewer link's time is up. Ask whoever sent it for a new one."
        : "Your sign-in has expired. Sign in again to go on where you were.",
    );
    return;
  }
  const lifetime = session.credential.lifetime || RENEW_BEFORE_S * 5;
  if (session.kind === "login" && !renewAsked && left <= Math.min(RENEW_BEFORE_S, lifetime / 2)) {
    renewAsked = true;
    renewal.ask(left);
  }
}
setInterval(watchExpiry, 1000);

async function start() {
  const linkToken = new URLSearchParams(location.search).get("token");
  if (linkToken !== null) {
    // The link's token leaves the address bar (and this history entry) before anything else.
    history.replaceState(null, "", BASE + viewToSearch(view));
    try {
      await session.exchangeViewerToken(linkToken);
    } catch (error) {
      session.clear();
      showSignIn(
        error.status === 401
          ? "This viewer link has already been used or has expired. Ask whoever sent it for a new one."
          : `This viewer link could not be used: ${error.detail || error.message}`,
      );
      return;
    }
    showConsole();
    return;
  }
  if (!session.token) {
    showSignIn(null);
    return;
  }
  try {
    await session.resume();
  } catch (error) {
    if (error.status === 401) return; // sessionEnded has shown the sign-in screen
    main.replaceChildren(
      h(
        "section",
        { class: "panel" },
        h("p", { class: "error", role: "alert" }, `The console cannot start: ${error.detail || error.message}`),
        h("button", { type: "button", class: "primary", onclick: () => start() }, "Try again"),
      ),
    );
    return;
  }
  showConsole();
}

start();
