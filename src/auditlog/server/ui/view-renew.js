// Asking for the password again before a login token expires: the service issues tokens for
// `token_lifetime` and has no way to extend one, and the console does not keep passwords.

import { field, h } from "./dom.js";

export class Renewal {
  /** `onRenewed()` after a new token; `onSignOut()` if the user would rather stop. */
  constructor({ session, onRenewed, onSignOut }) {
    this.session = session;
    this.password = h("input", { type: "password", autocomplete: "current-password", id: "renew-password" });
    this.user = h("input", {
      id: "renew-username",
      autocomplete: "username",
      readonly: true,
      class: "readonly",
    });
    this.message = h("p", { id: "renew-message" });
    this.error = h("p", { class: "error", role: "alert", hidden: true });
    const submit = h("button", { type: "submit", class: "primary" }, "Stay signed in");
    const form = h(
      "form",
      { novalidate: true },
      this.message,
      field("Username", this.user),
      field("Password", this.password),
      this.error,
      h(
        "div",
        { class: "actions" },
        submit,
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            onclick: () => {
              this.dialog.close();
              onSignOut();
            },
          },
          "Sign out",
        ),
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      this.error.hidden = true;
      submit.disabled = true;
      try {
        await session.signInWithPassword(this.user.value, this.password.value);
        this.password.value = "";
        this.dialog.close();
        onRenewed();
      } catch (error) {
        this.error.textContent =
          error.status === 401
            ? "That password is not right. Try again."
            : error.detail || String(error);
        this.error.hidden = false;
        this.password.focus();
      } finally {
        submit.disabled = false;
      }
    });
    this.dialog = h(
      "dialog",
      { class: "renew", "aria-labelledby": "renew-title", "aria-describedby": "renew-message" },
      h("h2", { id: "renew-title" }, "Stay signed in?"),
      form,
    );
    // Escape closes the dialog; the session then simply ends at its time.
  }

  get isOpen() {
    return this.dialog.open;
  }

  ask(secondsLeft) {
    this.user.value = this.session.credential.username || "";
    this.message.textContent =
      `Your sign-in ends in ${Math.max(0, Math.round(secondsLeft))} s. Enter your password ` +
      "to continue without losing your place.";
    this.error.hidden = true;
    if (!this.dialog.open) this.dialog.showModal();
    this.password.focus();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }
}
