// Export of the current search (GET /v1/events/export) as CSV or NDJSON, saved as a file.
// The request goes through fetch, with the credential in its Authorization header (a link to
// the export would have to carry it in the URL); what arrives is kept in memory and handed to
// the browser as a download. For exports too large for that, `auditlog export` streams to disk.

import { h } from "./dom.js";

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** The file name of Content-Disposition, or `fallback`. */
export function fileName(disposition, fallback) {
  const match = /filename="([^"]+)"/.exec(disposition || "");
  return match ? match[1] : fallback;
}

export class Exporter {
  /** `filters()` gives the current search's filter parameters. */
  constructor({ api, filters }) {
    this.api = api;
    this.filters = filters;
    this.controller = null;
    this.buttons = ["csv", "ndjson"].map((format) =>
      h(
        "button",
        { type: "button", class: "secondary", onclick: () => this.run(format) },
        `Export ${format.toUpperCase()}`,
      ),
    );
    this.cancelButton = h(
      "button",
      { type: "button", class: "secondary", hidden: true, onclick: () => this.cancel() },
      "Cancel export",
    );
    this.state = h("span", { class: "export-state", role: "status" });
    this.element = h(
      "div",
      { class: "export", role: "group", "aria-label": "Export this search" },
      ...this.buttons,
      this.cancelButton,
      this.state,
    );
  }

  busy(on) {
    for (const button of this.buttons) button.disabled = on;
    this.cancelButton.hidden = !on;
  }

  cancel() {
    if (this.controller) this.controller.abort();
  }

  async run(format) {
    this.controller = new AbortController();
    this.busy(true);
    this.state.textContent = `Exporting ${format.toUpperCase()}…`;
    try {
      const response = await this.api.exportResponse(this.filters(), format, this.controller.signal);
      const reader = response.body.getReader();
      const chunks = [];
      let received = 0;
      let lines = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        received += value.length;
        for (const byte of value) if (byte === 0x0a) lines += 1;
        this.state.textContent = `Exporting ${format.toUpperCase()}: ${size(received)}…`;
      }
      const events = format === "csv" ? Math.max(0, lines - 1) : lines;
      const type = format === "csv" ? "text/csv" : "application/x-ndjson";
      const blob = new Blob(chunks, { type });
      const name = fileName(response.headers.get("Content-Disposition"), `events.${format}`);
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: name, hidden: true });
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      this.state.textContent = `Saved ${name}: ${events} event${events === 1 ? "" : "s"}, ${size(received)}.`;
    } catch (error) {
      if (error.name === "AbortError") {
        this.state.textContent = "Export cancelled.";
      } else if (error.status === 429) {
        this.state.textContent = `The service runs too many exports now: try again${error.retryAfter ? ` in ${error.retryAfter} s` : " shortly"}.`;
      } else {
        this.state.textContent = `The export failed: ${error.detail || error.message}. An interrupted export can be resumed from the command line with auditlog export.`;
      }
    } finally {
      this.controller = null;
      this.busy(false);
    }
  }
}
