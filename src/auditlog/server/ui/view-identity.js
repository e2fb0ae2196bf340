// Who is signed in (whoami: tenant, principal, scopes, expiry), the UTC/local switch, sign
// out, and, for a viewer link, the filter every answer is bound to.

import { h, replace } from "./dom.js";
import { describePairs, filterObjectPairs } from "./query.js";
import { untilText } from "./times.js";

export class Identity {
  /** `onSignOut()`; `onTimeZone(tz)`: the user switched between UTC and local time. */
  constructor({ onSignOut, onTimeZone }) {
    this.details = h("dl", { class: "whoami", "aria-label": "Signed in as" });
    this.tzButton = h("button", {
      type: "button",
      class: "secondary small",
      "aria-pressed": "false",
      onclick: () => onTimeZone(this.tz === "local" ? "utc" : "local"),
    });
    this.signOutButton = h(
      "button",
      { type: "button", class: "secondary small", onclick: () => onSignOut() },
      "Sign out",
    );
    this.element = h("div", { class: "identity" }, this.details, this.tzButton, this.signOutButton);
    this.banner = h("div", { class: "viewer-banner", role: "note", hidden: true });
    this.setTimeZone("utc");
    this.expiryText = null;
  }

  setTimeZone(tz) {
    this.tz = tz;
    this.tzButton.textContent = tz === "local" ? "Times: local" : "Times: UTC";
    this.tzButton.setAttribute("aria-pressed", tz === "local" ? "true" : "false");
    this.tzButton.setAttribute(
      "aria-label",
      tz === "local" ? "Times are in local time; show them in UTC" : "Times are in UTC; show them in local time",
    );
  }

  show(session) {
    const who = session.identity;
    this.element.hidden = false;
    this.expiryText = h("dd", {});
    const item = (label, value) => [h("dt", {}, label), h("dd", {}, value)];
    replace(
      this.details,
      item("Tenant", who.tenant),
      item("Signed in as", who.principal),
      item("Scopes", who.scopes.join(", ")),
      session.expiresAt ? [h("dt", {}, "Ends in"), this.expiryText] : null,
    );
    this.tick(session);
    const filter = session.boundFilter;
    if (session.kind === "viewer") {
      const phrases = describePairs(filterObjectPairs(filter || {}));
      replace(
        this.banner,
        h("strong", {}, "A viewer link. "),
        "This session reads only events where ",
        phrases.length ? phrases.join(" and ") : "(no condition)",
        ", and cannot be used for anything else. It ends when the link's time is up.",
      );
      this.banner.hidden = false;
    } else {
      this.banner.hidden = true;
    }
  }

  /** Refresh the time left (called every few seconds). */
  tick(session) {
    if (this.expiryText && session.expiresAt) {
      this.expiryText.textContent = untilText((session.expiresAt - Date.now()) / 1000);
    }
  }

  hide() {
    this.element.hidden = true;
    this.banner.hidden = true;
  }
}
