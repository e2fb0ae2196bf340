// An event's detail, in a modal dialog: every field, `data` as a tree, the stored JSON (copy
// it), a permalink, "filter by this value" on any field, and the integrity check.

import { h, replace } from "./dom.js";
import { isPathSegment } from "./query.js";
import { formatTime } from "./times.js";

/** Copy `text` to the clipboard; answers what to tell the user. */
export async function copyText(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    return `${what} copied to the clipboard.`;
  } catch {
    return `The browser did not let the page copy; select the ${what.toLowerCase()} and copy it yourself.`;
  }
}

export class Detail {
  /**
   * `onFilter(path, value)`: add "path equals value" to the search; `onClose()`: the dialog
   * was closed; `permalinkOf(id)`: the absolute URL of an event; `integrity`: the
   * IntegrityCheck whose element goes at the end of the dialog.
   */
  constructor({ onFilter, onClose, permalinkOf, integrity }) {
    this.onFilter = onFilter;
    this.permalinkOf = permalinkOf;
    this.integrity = integrity;
    this.tz = "utc";
    this.title = h("h2", { id: "detail-title" }, "Event");
    this.content = h("div", { class: "detail-content" });
    this.status = h("p", { class: "status-line", role: "status" });
    this.closeButton = h(
      "button",
      { type: "button", class: "secondary close", onclick: () => this.dialog.close() },
      "Close",
    );
    this.dialog = h(
      "dialog",
      { class: "detail", "aria-labelledby": "detail-title" },
      h("div", { class: "detail-head" }, this.title, this.closeButton),
      this.status,
      this.content,
      integrity.element,
    );
    this.dialog.addEventListener("close", () => {
      this.integrity.reset();
      onClose();
    });
    this.record = null;
  }

  get isOpen() {
    return this.dialog.open;
  }

  open() {
    if (!this.dialog.open) this.dialog.showModal();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  loading(id) {
    this.record = null;
    this.title.textContent = "Event";
    this.status.textContent = `Loading the event ${id}…`;
    this.content.replaceChildren();
    this.integrity.setEvent(null);
    this.open();
  }

  failed(id, error) {
    this.record = null;
    this.title.textContent = "Event not shown";
    this.status.textContent = "";
    const text =
      error.status === 404
        ? `No event with the id ${id} can be read with this credential: it does not exist, ` +
          "was pruned, or lies outside what this credential may see."
        : `The event could not be read: ${error.detail || error.message}`;
    replace(this.content, h("p", { class: "error", role: "alert" }, text));
    this.open();
  }

  /** Show `record` ({text, bytes, event} from Api.eventById). */
  show(record) {
    this.record = record;
    this.status.textContent = "";
    this.title.textContent = record.event.type;
    this.render();
    this.integrity.setEvent(record);
    this.open();
    this.closeButton.focus();
  }

  setTimeZone(tz) {
    this.tz = tz;
    if (this.record) this.render();
  }

  filterButton(path, value) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return h(
      "button",
      {
        type: "button",
        class: "link filter",
        "aria-label": `Filter by ${path} = ${text}`,
        onclick: () => {
          this.dialog.close();
          this.onFilter(path, value);
        },
      },
      "Filter",
    );
  }

  fieldRow(label, value, path) {
    if (value === undefined || value === null || value === "") return null;
    return h(
      "div",
      { class: "field-row" },
      h("dt", {}, label),
      h("dd", {}, h("span", { class: "value" }, String(value)), path ? this.filterButton(path, value) : null),
    );
  }

  render() {
    const { event, text } = this.record;
    const permalink = this.permalinkOf(event.id);
    const rows = [
      this.fieldRow("id", event.id, "id"),
      this.fieldRow("seq", event.seq, null),
      this.fieldRow("type", event.type, "type"),
      this.fieldRow(this.tz === "local" ? "time (local)" : "time (UTC)", formatTime(event.time, this.tz), null),
      this.fieldRow("time as stored", event.time, null),
      this.fieldRow("received_at", formatTime(event.received_at, this.tz), null),
    ];
    for (const name of ["actor", "subject"]) {
      const party = event[name];
      if (!party) continue;
      for (const key of ["id", "type", "name"]) {
        rows.push(this.fieldRow(`${name}.${key}`, party[key], `${name}.${key}`));
      }
    }
    rows.push(
      this.fieldRow("source", event.source, "source"),
      this.fieldRow("outcome", event.outcome, "outcome"),
      this.fieldRow("tenant", event.tenant, null),
    );
    const known = new Set([
      "id",
      "seq",
      "type",
      "time",
      "received_at",
      "actor",
      "subject",
      "source",
      "outcome",
      "tenant",
      "data",
    ]);
    for (const [name, value] of Object.entries(event)) {
      if (!known.has(name)) rows.push(this.fieldRow(name, JSON.stringify(value), null));
    }

    const copyStatus = h("span", { class: "status-line", role: "status" });
    const copyJson = h(
      "button",
      {
        type: "button",
        class: "secondary",
        onclick: async () => {
          copyStatus.textContent = await copyText(text, "Stored JSON");
        },
      },
      "Copy as JSON",
    );
    const copyLink = h(
      "button",
      {
        type: "button",
        class: "secondary",
        onclick: async () => {
          copyStatus.textContent = await copyText(permalink, "Link");
        },
      },
      "Copy permalink",
    );

    replace(
      this.content,
      h(
        "div",
        { class: "detail-actions" },
        copyJson,
        copyLink,
        h("a", { href: permalink, class: "permalink" }, "Permalink"),
        copyStatus,
      ),
      h("h3", {}, "Fields"),
      h("dl", { class: "fields" }, rows),
      h("h3", {}, "Data"),
      Object.keys(event.data || {}).length
        ? h("div", { class: "tree", role: "group", "aria-label": "Data" }, this.tree(event.data, "data", true))
        : h("p", { class: "muted" }, "This event has no data."),
      h(
        "details",
        { class: "raw" },
        h("summary", {}, "Stored JSON"),
        h("pre", { class: "json", tabindex: "0", "aria-label": "The stored JSON" }, text),
      ),
    );
  }

  /** `value` at `path` as nested lists; `path` is null once a key cannot be named in a
   * query (its leaves then have no filter button). Array elements share the array's path,
   * as queries do ("data.tags=refund" matches any element). */
  tree(value, path, root = false) {
    if (value === null || typeof value !== "object") {
      return h(
        "span",
        { class: "leaf" },
        h("span", { class: `value ${value === null ? "null" : typeof value}` }, typeof value === "string" ? value : JSON.stringify(value)),
        path && !root ? this.filterButton(path, value) : null,
      );
    }
    const entries = Array.isArray(value)
      ? value.map((item, index) => [`[${index}]`, item, path])
      : Object.entries(value).map(([key, item]) => [
          key,
          item,
          path && isPathSegment(key) ? `${path}.${key}` : null,
        ]);
    if (entries.length === 0) {
      return h("span", { class: "value muted" }, Array.isArray(value) ? "[] (empty list)" : "{} (empty)");
    }
    return h(
      "ul",
      { class: root ? "tree-root" : null },
      entries.map(([key, item, itemPath]) => {
        const nested = item !== null && typeof item === "object";
        if (!nested) {
          return h("li", {}, h("span", { class: "key" }, key), " ", this.tree(item, itemPath));
        }
        const size = Array.isArray(item) ? `${item.length} items` : `${Object.keys(item).length} fields`;
        return h(
          "li",
          {},
          h(
            "details",
            { open: true },
            h("summary", {}, h("span", { class: "key" }, key), " ", h("span", { class: "muted" }, size)),
            this.tree(item, itemPath),
          ),
        );
      }),
    );
  }
}
