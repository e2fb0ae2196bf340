// The sign-in screen: a username and password (a login token, POST /v1/auth/token), or an
// API key. Neither is ever put in the URL: the forms are handled here, not submitted.

import { field, h } from "./dom.js";

/** What to say of a refused sign-in. */
function refusal(error, what) {
  if (error.status === 401) {
    return what === "key"
      ? `The service does not accept this key: ${error.detail}. Check that it was copied whole.`
      : "The username or password is wrong. Check both and try again.";
  }
  if (error.status === 429) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
    return `Too many failed sign-ins for this user or from this address.${wait}`;
  }
  return error.detail || String(error);
}

/**
 * The sign-in screen in `container`. `message` (a sentence, or null) says why it is shown
 * (a session that ended, a link already used); `username` fills the username box. When
 * signing in succeeds, `onSignedIn()` is called.
 */
export function renderSignIn(container, { session, message, username = "", onSignedIn }) {
  const note = h("p", { class: "notice", role: "alert", hidden: !message }, message || "");

  const userInput = h("input", {
    name: "username",
    autocomplete: "username",
    required: true,
    value: username,
    spellcheck: "false",
    autocapitalize: "none",
  });
  const passwordInput = h("input", {
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const passwordError = h("p", { class: "error", role: "alert", hidden: true });
  const passwordButton = h("button", { type: "submit", class: "primary" }, "Sign in");
  const passwordForm = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-password-title", novalidate: true },
    h("h2", { id: "signin-password-title" }, "With your username and password"),
    field("Username", userInput),
    field("Password", passwordInput),
    passwordError,
    h("div", { class: "actions" }, passwordButton),
  );
  passwordForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    passwordError.hidden = true;
    if (!userInput.value || !passwordInput.value) {
      passwordError.textContent = "Enter both your username and your password.";
      passwordError.hidden = false;
      (userInput.value ? passwordInput : userInput).focus();
      return;
    }
    passwordButton.disabled = true;
    try {
      await session.signInWithPassword(userInput.value, passwordInput.value);
      passwordInput.value = "";
      onSignedIn();
    } catch (error) {
      passwordError.textContent = refusal(error, "password");
      passwordError.hidden = false;
      passwordInput.select();
      passwordInput.focus();
    } finally {
      passwordButton.disabled = false;
    }
  });

  const keyInput = h("input", {
    name: "api-key",
    type: "password",
    autocomplete: "off",
    required: true,
    spellcheck: "false",
    placeholder: "alk_…",
  });
  const keyError = h("p", { class: "error", role: "alert", hidden: true });
  const keyButton = h("button", { type: "submit" }, "Use this key");
  const keyForm = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-key-title", novalidate: true },
    h("h2", { id: "signin-key-title" }, "With an API key"),
    field("API key", keyInput, {
      hint: "Kept in this tab only, until you sign out or close it.",
    }),
    keyError,
    h("div", { class: "actions" }, keyButton),
  );
  keyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    keyError.hidden = true;
    if (!keyInput.value.trim()) {
      keyError.textContent = "Paste an API key (it starts with alk_).";
      keyError.hidden = false;
      keyInput.focus();
      return;
    }
    keyButton.disabled = true;
    try {
      await session.signInWithKey(keyInput.value);
      keyInput.value = "";
      onSignedIn();
    } catch (error) {
      keyError.textContent = refusal(error, "key");
      keyError.hidden = false;
      keyInput.focus();
    } finally {
      keyButton.disabled = false;
    }
  });

  container.replaceChildren(
    h(
      "section",
      { class: "signin-page", "aria-labelledby": "signin-title" },
      h("h2", { id: "signin-title", class: "page-title" }, "Sign in to read the audit log"),
      note,
      h("div", { class: "signin-forms" }, passwordForm, keyForm),
    ),
  );
  (username ? passwordInput : userInput).focus();
}
