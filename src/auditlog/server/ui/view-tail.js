// Live tail: the current search's new events as they are committed (GET /v1/events/stream),
// handed to the results, with pause and resume. Pausing closes the stream and remembers the
// position; resuming asks for what came after it, so nothing is missed while paused.

import { h } from "./dom.js";
import { follow } from "./sse.js";

export class LiveTail {
  /**
   * `api`, and `onEvent(event)` for each new event; `filters()` gives the current search's
   * filter parameters and `startAfter()` the seq to begin after (the newest shown) or null.
   */
  constructor({ api, onEvent, filters, startAfter, onUnauthorized }) {
    this.api = api;
    this.onEvent = onEvent;
    this.filters = filters;
    this.startAfter = startAfter;
    this.onUnauthorized = onUnauthorized;
    this.stream = null;
    this.wanted = false; // the user asked for it (and did not pause)
    this.position = null;
    this.button = h(
      "button",
      { type: "button", class: "secondary", "aria-pressed": "false", onclick: () => this.toggle() },
      "Live tail",
    );
    this.state = h("span", { class: "tail-state", role: "status" });
    this.element = h("div", { class: "tail" }, this.button, this.state);
  }

  toggle() {
    if (this.wanted) this.pause();
    else this.resume();
  }

  /** Follow from where the tail stopped, or from the newest event shown. */
  resume() {
    this.wanted = true;
    this.open(this.position !== null ? this.position : this.startAfter());
  }

  pause() {
    this.wanted = false;
    this.close();
    this.show("paused", "Paused; resume to get what came meanwhile.");
  }

  /** The search changed: follow it from its newest event, if the tail is on. */
  restart() {
    this.close();
    this.position = null;
    if (this.wanted) this.open(this.startAfter());
    else this.show("off", "");
  }

  /** Stop for good (signing out). */
  stop() {
    this.wanted = false;
    this.close();
    this.position = null;
    this.show("off", "");
  }

  open(afterSeq) {
    this.close();
    this.show("connecting", "Connecting…");
    const url = this.api.streamUrl(this.filters(), afterSeq);
    this.stream = follow({
      url,
      headers: () => this.api.authHeaders(),
      onEvent: (text, seq) => {
        this.position = seq;
        let event;
        try {
          event = JSON.parse(text);
        } catch {
          return;
        }
        this.onEvent(event);
      },
      onState: (state, detail) => {
        if (state === "live") this.show("live", "Live: new events appear as they are committed.");
        else if (state === "reconnecting") this.show("reconnecting", detail);
      },
      onFailure: (refusal) => {
        this.wanted = false;
        this.stream = null;
        this.show("off", `The live tail stopped: ${refusal.detail}.`);
        if (refusal.status === 401) this.onUnauthorized();
      },
    });
  }

  close() {
    if (this.stream) {
      const position = this.stream.position();
      if (position !== "") this.position = Number(position);
      this.stream.stop();
      this.stream = null;
    }
  }

  show(state, text) {
    const on = state === "live" || state === "connecting" || state === "reconnecting";
    this.button.setAttribute("aria-pressed", on ? "true" : "false");
    this.button.textContent = on ? "Pause live tail" : state === "paused" ? "Resume live tail" : "Live tail";
    this.element.dataset.state = state;
    this.state.textContent = text;
  }
}
