// The integrity check of one event, in its detail: fetch the checkpoint (signed note), the
// inclusion proof and the public key, check them in the browser (proof.js), and show each
// step. Where the browser has no WebCrypto, or the credential cannot read the log's proofs,
// it says so rather than showing a check it did not make.

import { h, replace } from "./dom.js";
import { checkEvent, parseCheckpoint, parseNote, ProofError, webCryptoAvailable } from "./proof.js";

const PIN_KEY = "auditlog.console.pinned-vkey";
const STEP_NAMES = {
  key: "Verifier key",
  signature: "Checkpoint signature",
  origin: "Checkpoint origin",
  leaf: "Event bytes",
  inclusion: "Inclusion proof",
};
/** How long to wait for a checkpoint that covers a new event (they follow within a second). */
const COVER_WAIT_MS = 5000;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class IntegrityCheck {
  constructor({ api, session }) {
    this.api = api;
    this.session = session;
    this.record = null;
    this.pinInput = h("input", {
      id: "pinned-vkey",
      spellcheck: "false",
      autocomplete: "off",
      placeholder: "auditlog/tenant+1234abcd+AT…",
    });
    try {
      this.pinInput.value = sessionStorage.getItem(PIN_KEY) || "";
    } catch {
      // no storage: the box starts empty
    }
    this.button = h(
      "button",
      { type: "button", class: "primary", onclick: () => this.run() },
      "Check this event against the signed log",
    );
    this.output = h("div", { class: "integrity-output", "aria-live": "polite" });
    this.element = h(
      "section",
      { class: "integrity", "aria-labelledby": "integrity-title" },
      h("h3", { id: "integrity-title" }, "Integrity"),
      h(
        "p",
        { class: "muted" },
        "Checks in this browser that the event, byte for byte, is in the log's Merkle tree " +
          "(RFC 9162 inclusion proof) under the latest checkpoint, and that the checkpoint " +
          "is signed by the log's Ed25519 key.",
      ),
      h(
        "div",
        { class: "field" },
        h("label", { for: "pinned-vkey" }, "Verifier key you trust (optional)"),
        this.pinInput,
        h(
          "span",
          { class: "hint", id: "pinned-vkey-hint" },
          "Without one, the key the service gives is used: that shows the log agrees with " +
            "itself, not that it is the log you know. Paste the key you were given out of band.",
        ),
      ),
      this.button,
      this.output,
    );
    this.pinInput.setAttribute("aria-describedby", "pinned-vkey-hint");
  }

  setEvent(record) {
    this.record = record;
    this.reset();
  }

  reset() {
    this.output.replaceChildren();
    this.element.removeAttribute("data-result");
    this.button.disabled = false;
  }

  say(...children) {
    replace(this.output, ...children);
  }

  /** Why a check cannot be made here, or null. */
  unavailable() {
    if (!webCryptoAvailable()) {
      return (
        "This browser offers no WebCrypto to this page, because it was not loaded over HTTPS " +
        "(browsers give WebCrypto only to secure pages, and to http://localhost). The " +
        "console cannot check proofs here, and does not pretend to: open it over HTTPS, or " +
        "check the whole log with `auditlog verify`."
      );
    }
    if (!this.session.hasScope("log:read")) {
      return (
        "This credential cannot read the log's proofs and checkpoints (it lacks the scope " +
        "log:read), so the event cannot be checked from here. Sign in with a credential " +
        "that has it, or ask someone who has to check this event."
      );
    }
    return null;
  }

  async run() {
    if (!this.record) return;
    const why = this.unavailable();
    if (why) {
      this.element.setAttribute("data-result", "unavailable");
      this.say(h("p", { class: "notice" }, why));
      return;
    }
    this.button.disabled = true;
    this.element.setAttribute("data-result", "running");
    const { event, bytes } = this.record;
    try {
      this.say(h("p", {}, "Fetching the checkpoint and the log's key…"));
      const [keyInfo, fetched] = await Promise.all([this.api.publicKey(), this.coveringNote(event.seq)]);
      if (!fetched) {
        this.element.setAttribute("data-result", "pending");
        this.say(
          h(
            "p",
            { class: "notice" },
            `No checkpoint covers this event (seq ${event.seq}) yet. Checkpoints follow new ` +
              "events within about a second; try again in a moment.",
          ),
        );
        return;
      }
      const { note, size } = fetched;
      this.say(h("p", {}, `Fetching the inclusion proof of seq ${event.seq} in ${size} events…`));
      const inclusion = await this.api.inclusionProof(event.seq, size);
      const pinned = this.pinInput.value.trim();
      const vkey = pinned || keyInfo.vkey;
      const result = await checkEvent({ eventBytes: bytes, seq: event.seq, inclusion, note, vkey });
      if (result.ok && pinned) {
        try {
          sessionStorage.setItem(PIN_KEY, pinned);
        } catch {
          // not kept: it is asked again next time
        }
      }
      this.report(result, { vkey, pinned: Boolean(pinned), served: keyInfo.vkey });
    } catch (error) {
      this.element.setAttribute("data-result", "error");
      const text =
        error instanceof ProofError
          ? `The check could not be made: ${error.message}.`
          : `The check could not be made: ${error.detail || error.message}.`;
      this.say(h("p", { class: "error", role: "alert" }, text));
    } finally {
      this.button.disabled = false;
    }
  }

  /** The latest signed note once its checkpoint covers `seq` (waiting a little for it). */
  async coveringNote(seq) {
    const deadline = Date.now() + COVER_WAIT_MS;
    for (;;) {
      const note = await this.api.checkpointNote();
      const size = parseCheckpoint(parseNote(note).text).size;
      if (seq < size) return { note, size };
      if (Date.now() > deadline) return null;
      await sleep(500);
    }
  }

  report(result, { vkey, pinned, served }) {
    this.element.setAttribute("data-result", result.ok ? "verified" : "failed");
    const { event } = this.record;
    const headline = result.ok
      ? `Verified: this event, byte for byte, is entry ${event.seq} of the log, under a ` +
        `checkpoint of ${result.checkpoint.size} events signed by the key below.`
      : "NOT verified: what the service showed does not match its signed log. See the " +
        "failed steps; `auditlog verify` on the server tells which events differ.";
    const items = result.steps.map((s) =>
      h(
        "li",
        { class: s.ok ? "pass" : "fail" },
        h("span", { class: "mark" }, s.ok ? "✓ passed" : "✗ failed"),
        " ",
        h("strong", {}, STEP_NAMES[s.name] || s.name),
        ": ",
        s.detail,
      ),
    );
    const keyNote = pinned
      ? served === vkey
        ? "The key you gave is the one the service gives."
        : "The key you gave differs from the one the service now gives."
      : "The key was the service's own: compare it with the one you know.";
    this.say(
      h("p", { class: result.ok ? "verdict ok" : "verdict bad", role: "status" }, headline),
      h("ul", { class: "steps" }, items),
      h("p", { class: "muted" }, keyNote),
      h("p", {}, "Verifier key: ", h("code", { class: "vkey" }, vkey)),
    );
  }
}
