// The integrity check of one event, in its detail: fetch the checkpoint (signed note), the
// inclusion proof and the public key, check them in the browser (proof.js), and show each
// step. Then the witnesses (API.md §13): the tenant checkpoint that a cosigned tenants-log
// checkpoint includes, the event in it, and each witness's cosignature, checked the same way.
// Where the browser has no WebCrypto, or the credential cannot read the log's proofs, it says
// so rather than showing a check it did not make.

import { ApiError } from "./api.js";
import { h, replace } from "./dom.js";
import {
  checkEvent,
  checkWitnessed,
  cosignatureTime,
  parseCheckpoint,
  parseNote,
  ProofError,
  webCryptoAvailable,
} from "./proof.js";

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
/** How long to wait for a witnessed checkpoint that covers it (about a second after that). */
const WITNESS_WAIT_MS = 3000;

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
          "(RFC 9162 inclusion proof) under the latest checkpoint, that the checkpoint " +
          "is signed by the log's Ed25519 key, and which of the service's witnesses " +
          "cosigned a checkpoint that holds it.",
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
    this.element.removeAttribute("data-witnessed");
    // Enabled only once an event is shown: a click while it loads would check nothing.
    this.button.disabled = !this.record;
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
      this.say(h("p", {}, "Checking the witnesses' cosignatures…"));
      const witness = await this.witnessCheck({ seq: event.seq, bytes, vkey, keyInfo });
      if (result.ok && pinned) {
        try {
          sessionStorage.setItem(PIN_KEY, pinned);
        } catch {
          // not kept: it is asked again next time
        }
      }
      this.report(result, witness, { vkey, pinned: Boolean(pinned), served: keyInfo.vkey });
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

  /**
   * What the witnesses say of the event at `seq`: `{state, ...}`, the state one of
   * `witnessed` or `failed` (with checkWitnessed's answer as `check`), `pending` (the newest
   * witnessed checkpoint is older than the event), `none` (no witnesses, or nothing of this
   * log witnessed yet) or `error` (it could not be asked).
   */
  async witnessCheck({ seq, bytes, vkey, keyInfo }) {
    try {
      const witnesses = await this.api.witnesses();
      if (!Array.isArray(witnesses.witnesses) || witnesses.witnesses.length === 0) {
        return { state: "none", witnesses };
      }
      const deadline = Date.now() + WITNESS_WAIT_MS;
      let witnessed = null;
      let size = null;
      let detail = "";
      for (;;) {
        try {
          witnessed = await this.api.witnessed();
          size = this.witnessedSize(witnessed);
        } catch (error) {
          if (!(error instanceof ApiError) || error.status !== 404) throw error;
          witnessed = null;
          detail = error.detail;
        }
        // A checkpoint that cannot be read is for checkWitnessed to report.
        if (witnessed && (size === null || seq < size)) break;
        if (Date.now() > deadline) {
          return witnessed ? { state: "pending", size, witnesses } : { state: "none", witnesses, detail };
        }
        await sleep(500);
      }
      const inclusion = size === null ? null : await this.api.inclusionProof(seq, size);
      const check = await checkWitnessed({
        eventBytes: bytes,
        seq,
        vkey,
        witnessed,
        inclusion,
        witnesses,
        tenantsOrigin: keyInfo.tenants_origin || witnesses.tenants_origin,
      });
      return { state: check.ok ? "witnessed" : "failed", check, witnesses };
    } catch (error) {
      if (error instanceof ProofError) throw error; // WebCrypto is missing: the check fails
      return { state: "error", message: error.detail || error.message };
    }
  }

  /** The size of the tenant checkpoint of a /v1/log/witnessed answer, or null. */
  witnessedSize(witnessed) {
    try {
      return parseCheckpoint(parseNote(witnessed.checkpoint).text).size;
    } catch (error) {
      if (error instanceof ProofError) return null;
      throw error;
    }
  }

  report(result, witness, { vkey, pinned, served }) {
    const failedWitness = witness.state === "failed";
    const ok = result.ok && !failedWitness;
    this.element.setAttribute("data-result", ok ? "verified" : "failed");
    this.element.setAttribute("data-witnessed", witness.state);
    const { event } = this.record;
    const headline = ok
      ? `Verified: this event, byte for byte, is entry ${event.seq} of the log, under a ` +
        `checkpoint of ${result.checkpoint.size} events signed by the key below.`
      : result.ok
        ? "NOT verified: the event is in the log's signed checkpoint, but the witnesses' " +
          `check failed (${failedNames(witness.check.steps)}). See the witnesses' steps below.`
        : "NOT verified: what the service showed does not match its signed log. See the " +
          "failed steps; `auditlog verify` on the server tells which events differ.";
    const items = stepItems(result.steps);
    const keyNote = pinned
      ? served === vkey
        ? "The key you gave is the one the service gives."
        : "The key you gave differs from the one the service now gives."
      : "The key was the service's own: compare it with the one you know.";
    this.say(
      h("p", { class: ok ? "verdict ok" : "verdict bad", role: "status" }, headline),
      h("ul", { class: "steps" }, items),
      h("p", { class: "muted" }, keyNote),
      h("p", {}, "Verifier key: ", h("code", { class: "vkey" }, vkey)),
      this.witnessPart(witness),
    );
  }

  /** The witnesses' part of the report. */
  witnessPart(witness) {
    const { event } = this.record;
    const title = h("h4", {}, "Witnesses");
    const part = (...children) => h("div", { class: "witnesses" }, title, ...children);
    if (witness.state === "error") {
      return part(
        h("p", { class: "error" }, `The witnesses could not be checked: ${witness.message}.`),
      );
    }
    if (witness.state === "none") {
      const none = !witness.witnesses || !(witness.witnesses.witnesses || []).length;
      return part(
        h(
          "p",
          { class: "witness-note" },
          none
            ? "This service has no witnesses: its checkpoints are signed by its own key " +
                "alone, and no one else has cosigned them."
            : "Nothing of this log is witnessed yet: the service's witnesses have not " +
                "cosigned a checkpoint that holds one of this log's checkpoints. A new log is " +
                "witnessed about a second after its first checkpoint; check again in a moment.",
        ),
        witness.detail ? h("p", { class: "muted" }, `The service says: ${witness.detail}.`) : null,
      );
    }
    if (witness.state === "pending") {
      return part(
        h(
          "p",
          { class: "witness-note" },
          `Not witnessed yet: this event (seq ${event.seq}) is after the newest witnessed ` +
            `checkpoint of this log (size ${witness.size}). Witnesses cosign about a second ` +
            "after an event is written; check again in a moment.",
        ),
      );
    }
    const { check } = witness;
    const quorum = check.quorum === null || check.quorum === undefined ? "none" : check.quorum;
    const cosigned = check.cosigned.length
      ? check.cosigned.map((c) => c.name).join(", ")
      : "no witness";
    const headline =
      witness.state === "witnessed"
        ? `Witnessed: tenant checkpoint of size ${check.size} in tenants checkpoint of size ` +
          `${check.tenantsSize}, cosigned by ${cosigned} (quorum: ${quorum}).`
        : `NOT witnessed: ${failedNames(check.steps)} failed. What the service showed of ` +
          "its witnesses does not check out.";
    const missing = check.missing.length
      ? h(
          "ul",
          { class: "not-cosigned" },
          check.missing.map((w) =>
            h(
              "li",
              {},
              h("strong", {}, w.name),
              " did not cosign it",
              w.cosigned_size === null || w.cosigned_size === undefined
                ? " (it has cosigned nothing yet)"
                : ` (its last cosigned tenants checkpoint has size ${w.cosigned_size})`,
              w.last_error ? `; its last error: ${w.last_error}` : "",
            ),
          ),
        )
      : h("p", { class: "muted" }, "Every witness of the service cosigned it.");
    return part(
      h(
        "p",
        { class: witness.state === "witnessed" ? "witness-verdict ok" : "witness-verdict bad" },
        headline,
      ),
      check.cosigned.length
        ? h(
            "ul",
            { class: "cosigners" },
            check.cosigned.map((c) =>
              h("li", {}, h("strong", {}, c.name), ` cosigned at ${cosignatureTime(c.timestamp)}`),
            ),
          )
        : null,
      h("ul", { class: "steps witness-steps" }, stepItems(check.steps)),
      missing,
      check.tenantsVkey
        ? h("p", {}, "Tenants log's key: ", h("code", { class: "vkey" }, check.tenantsVkey))
        : null,
    );
  }
}

function stepItems(steps) {
  return steps.map((s) =>
    h(
      "li",
      { class: s.ok ? "pass" : "fail" },
      h("span", { class: "mark" }, s.ok ? "✓ passed" : "✗ failed"),
      " ",
      h("strong", {}, s.label || STEP_NAMES[s.name] || s.name),
      ": ",
      s.detail,
    ),
  );
}

function failedNames(steps) {
  return steps
    .filter((s) => !s.ok)
    .map((s) => s.label || STEP_NAMES[s.name] || s.name)
    .join(", ");
}
