// The results: a table of events (time, type, actor, subject, outcome, a summary of data),
// the pager, and the states between: loading, empty, refused, failed. Each says what to do.

import { h, replace } from "./dom.js";
import { formatTime, zoneLabel } from "./times.js";

/** A short line of `data`: its leaves as `path=value`, cut at about `max` characters. */
export function summarize(data, max = 140) {
  const parts = [];
  let length = 0;
  const walk = (value, path) => {
    if (length > max) return;
    if (value !== null && typeof value === "object") {
      const entries = Array.isArray(value)
        ? value.map((item) => [path, item])
        : Object.entries(value).map(([k, v]) => [path ? `${path}.${k}` : k, v]);
      for (const [p, v] of entries) walk(v, p);
      return;
    }
    const text = `${path}=${typeof value === "string" ? value : JSON.stringify(value)}`;
    parts.push(text);
    length += text.length + 1;
  };
  walk(data || {}, "");
  const line = parts.join(" ");
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

function party(value) {
  if (!value) return "";
  const name = value.name && value.name !== value.id ? ` (${value.name})` : "";
  return `${value.id}${name}`;
}

/** What to say of a failed search, and whether trying again may help. */
export function explain(error, { viewer }) {
  switch (error.status) {
    case 0:
      return { text: error.detail, retry: true };
    case 400:
      return {
        text: `The service refused this search: ${error.detail}. Change the filter it names and search again.`,
        retry: false,
      };
    case 403:
      return {
        text: `This credential may not read events: ${error.detail}. Sign in with one that has the scope events:read.`,
        retry: false,
      };
    case 429:
      return {
        text: `Too many requests from this credential: ${error.detail}.${error.retryAfter ? ` Try again in ${error.retryAfter} s.` : ""}`,
        retry: true,
      };
    case 503:
      return {
        text: `The service cannot answer now: ${error.detail}.${error.retryAfter ? ` Try again in ${error.retryAfter} s` : " Try again shortly"}, or narrow the search (an equality, a word or a shorter time range).`,
        retry: true,
      };
    default:
      return {
        text: `The search failed (${error.status}): ${error.detail}.${viewer ? "" : " Try again, and tell the operator if it goes on."}`,
        retry: true,
      };
  }
}

export class Results {
  /**
   * `onOpen(event)`: a row's event is to be shown; `hrefOf(event)`: the link of its detail;
   * `onPage(direction)`: "first", "previous" or "next"; `onRetry()`; `onClear()`.
   */
  constructor({ onOpen, hrefOf, onPage, onRetry, onClear }) {
    this.onOpen = onOpen;
    this.hrefOf = hrefOf;
    this.tz = "utc";
    this.events = [];
    this.live = [];
    this.summary = h("p", { class: "summary", id: "results-summary", "aria-live": "polite" });
    this.timeHeading = h("th", { scope: "col" }, "Time (UTC)");
    this.body = h("tbody");
    this.table = h(
      "table",
      { class: "events", "aria-describedby": "results-summary" },
      h("caption", { class: "visually-hidden" }, "Events matching the search"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          this.timeHeading,
          h("th", { scope: "col" }, "Type"),
          h("th", { scope: "col" }, "Actor"),
          h("th", { scope: "col" }, "Subject"),
          h("th", { scope: "col" }, "Outcome"),
          h("th", { scope: "col" }, "Data"),
        ),
      ),
      this.body,
    );
    this.scroller = h("div", { class: "table-scroll", tabindex: "0", "aria-label": "Results" }, this.table);
    this.state = h("div", { class: "state", hidden: true });
    this.firstButton = h(
      "button",
      { type: "button", class: "secondary", onclick: () => onPage("first") },
      "First page",
    );
    this.previousButton = h(
      "button",
      { type: "button", class: "secondary", onclick: () => onPage("previous") },
      "Previous page",
    );
    this.nextButton = h(
      "button",
      { type: "button", class: "secondary", onclick: () => onPage("next") },
      "Next page",
    );
    this.pager = h(
      "nav",
      { class: "pager", "aria-label": "Pages" },
      this.firstButton,
      this.previousButton,
      this.nextButton,
    );
    this.onRetry = onRetry;
    this.onClear = onClear;
    this.element = h("div", { class: "results" }, this.summary, this.state, this.scroller, this.pager);
    this.body.addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      const row = event.target.closest("tr[data-index]");
      if (!row || (window.getSelection && String(window.getSelection()))) return;
      const list = row.dataset.live === "1" ? this.live : this.events;
      this.onOpen(list[Number(row.dataset.index)]);
    });
  }

  setTimeZone(tz) {
    this.tz = tz;
    this.timeHeading.textContent = `Time (${zoneLabel(tz)})`;
    this.redraw();
  }

  loading() {
    this.summary.textContent = "Searching…";
    this.element.setAttribute("aria-busy", "true");
  }

  row(event, index, live) {
    const outcome = event.outcome || "";
    return h(
      "tr",
      { "data-index": index, "data-live": live ? "1" : "0", class: live ? "new" : null },
      h(
        "td",
        { class: "time", "data-label": "Time" },
        live ? h("span", { class: "badge" }, "new") : null,
        h("time", { datetime: event.time }, formatTime(event.time, this.tz)),
      ),
      h(
        "td",
        { class: "type", "data-label": "Type" },
        h(
          "a",
          {
            href: this.hrefOf(event),
            onclick: (click) => {
              if (click.button !== 0 || click.metaKey || click.ctrlKey || click.shiftKey) return;
              click.preventDefault();
              this.onOpen(event);
            },
          },
          event.type,
        ),
      ),
      h("td", { "data-label": "Actor" }, party(event.actor)),
      h("td", { "data-label": "Subject" }, party(event.subject)),
      h(
        "td",
        { "data-label": "Outcome" },
        outcome ? h("span", { class: `outcome ${outcome}` }, outcome) : "",
      ),
      h("td", { class: "data", "data-label": "Data" }, summarize(event.data)),
    );
  }

  /** Show a page: `events`, whether there is a next and a previous page, and what to say. */
  show({ events, hasNext, hasPrevious, order, viewer }) {
    this.element.removeAttribute("aria-busy");
    this.events = events;
    this.live = [];
    this.order = order;
    this.hasNext = hasNext;
    this.hasPrevious = hasPrevious;
    this.state.hidden = true;
    this.scroller.hidden = events.length === 0;
    if (events.length === 0) {
      this.summary.textContent = hasPrevious ? "No more events." : "No events match.";
      replace(
        this.state,
        h(
          "p",
          {},
          hasPrevious
            ? "This search has no events past the previous page."
            : "No event matches this search. Widen the time range, remove a condition, or " +
                "check the spelling of values (they are case-sensitive; full text matches " +
                "whole words, or a prefix written word*).",
        ),
        viewer
          ? h("p", {}, "This view only shows the events its link was made for.")
          : null,
        h(
          "button",
          { type: "button", class: "secondary", onclick: () => this.onClear() },
          "Clear filters",
        ),
      );
      this.state.hidden = false;
    } else {
      this.summary.textContent =
        `${events.length} event${events.length === 1 ? "" : "s"} on this page, ` +
        `${order === "asc" ? "oldest" : "newest"} first${hasNext ? "; more on the next page" : ""}.`;
    }
    this.firstButton.disabled = !hasPrevious;
    this.previousButton.disabled = !hasPrevious;
    this.nextButton.disabled = !hasNext;
    this.pager.hidden = !hasNext && !hasPrevious;
    this.redraw();
  }

  failed(error, { viewer }) {
    this.element.removeAttribute("aria-busy");
    const { text, retry } = explain(error, { viewer });
    this.summary.textContent = "The search failed.";
    replace(
      this.state,
      h("p", { class: "error", role: "alert" }, text),
      retry
        ? h("button", { type: "button", class: "secondary", onclick: () => this.onRetry() }, "Try again")
        : null,
    );
    this.state.hidden = false;
    this.scroller.hidden = true;
    this.pager.hidden = true;
  }

  /** Problems found before asking (a condition without a path...). */
  refused(problems) {
    this.element.removeAttribute("aria-busy");
    this.summary.textContent = "Fix the search to run it.";
    replace(this.state, h("ul", { class: "error" }, problems.map((p) => h("li", {}, p))));
    this.state.hidden = false;
    this.scroller.hidden = true;
    this.pager.hidden = true;
  }

  /** An event of the live tail: at the top in newest-first order, at the end otherwise. */
  addLive(event, cap = 500) {
    if (this.events.some((e) => e.seq === event.seq) || this.live.some((e) => e.seq === event.seq)) {
      return;
    }
    this.live.push(event);
    if (this.live.length > cap) this.live.shift();
    this.state.hidden = true;
    this.scroller.hidden = false;
    this.redraw();
  }

  /** The largest seq shown, or null. */
  newestSeq() {
    const seqs = [...this.events, ...this.live].map((e) => e.seq);
    return seqs.length ? Math.max(...seqs) : null;
  }

  redraw() {
    const rows = this.events.map((event, index) => this.row(event, index, false));
    const live = this.live.map((event, index) => this.row(event, index, true));
    if (this.order === "asc") this.body.replaceChildren(...rows, ...live);
    else this.body.replaceChildren(...live.reverse(), ...rows);
    if (this.live.length) {
      this.summary.textContent =
        `${this.events.length} event${this.events.length === 1 ? "" : "s"} on this page and ` +
        `${this.live.length} new since (marked).`;
    }
  }

  focus() {
    this.summary.focus();
  }
}
