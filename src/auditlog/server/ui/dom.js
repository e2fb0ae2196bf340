// Building the page's elements. Every piece of data becomes a text node: nothing here parses
// HTML, so an event holding markup is shown as the characters it holds.

/**
 * A new element: `h("button", {type: "button", onclick: fn}, "Save")`.
 * Attributes named `on...` with a function become listeners; `class` and other names are set
 * as attributes; `true` sets an empty attribute and `false`, `null` or `undefined` leave it
 * out. Children are nodes, strings (as text), numbers, or arrays of those; `null` and `false`
 * are skipped.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "value" && "value" in element) {
      element.value = value;
    } else if (name === "checked" || name === "selected" || name === "disabled") {
      element[name] = Boolean(value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

/** Append children (nodes, strings as text, arrays of them) to `parent`. */
export function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) {
      append(parent, child);
    } else if (child instanceof Node) {
      parent.appendChild(child);
    } else {
      parent.appendChild(document.createTextNode(String(child)));
    }
  }
  return parent;
}

/** Replace every child of `parent` with `children`. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** A `<select>` of `[value, label]` pairs with `current` selected. */
export function select(attributes, options, current) {
  return h(
    "select",
    attributes,
    options.map(([value, label]) => h("option", { value, selected: value === current }, label)),
  );
}

/** A labelled control: `<label for=id>text</label>` and the control, in a wrapper. */
export function field(labelText, control, { hint = null, className = "field" } = {}) {
  const id = control.id || uniqueId("f");
  control.id = id;
  let hintElement = null;
  if (hint) {
    hintElement = h("span", { class: "hint", id: `${id}-hint` }, hint);
    control.setAttribute("aria-describedby", hintElement.id);
  }
  return h("div", { class: className }, h("label", { for: id }, labelText), control, hintElement);
}

let counter = 0;

/** An id no other element of the page has. */
export function uniqueId(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}
