// The search form: every filter of GET /v1/events. It shows a view (query.js) and, when
// submitted, hands a new one to `onSearch`; the URL is app.js's business.

import { field, h, select, uniqueId } from "./dom.js";
import {
  emptyView,
  OPERATORS,
  PAGE_SIZES,
  PRESETS,
  SIMPLE_FIELDS,
  SUGGESTED_PATHS,
} from "./query.js";
import { fromInputValue, toInputValue } from "./times.js";

const OUTCOMES = [
  ["", "Any outcome"],
  ["success", "success"],
  ["failure", "failure"],
  ["unknown", "unknown"],
];
const RANGES = [["", "Any time"], ...PRESETS.map(([name, , label]) => [name, label]), ["custom", "Custom…"]];
const ORDERS = [
  ["desc", "Newest first"],
  ["asc", "Oldest first"],
];
/** Below this width the form starts with its less used filters folded away. */
const NARROW = window.matchMedia("(max-width: 40rem)");
const LABELS = { type: "Type", actor: "Actor", subject: "Subject", source: "Source" };
const PLACEHOLDERS = {
  type: "user.login",
  actor: "actor id",
  subject: "subject id",
  source: "billing",
};

export class SearchForm {
  /** `onSearch(view)` is called with the view the form describes when it is submitted. */
  constructor({ onSearch }) {
    this.onSearch = onSearch;
    this.tz = "utc";
    this.conditionRows = [];
    this.build();
  }

  build() {
    this.inputs = {};
    this.inputs.q = h("input", {
      type: "search",
      name: "q",
      placeholder: "words, or a prefix*",
      autocomplete: "off",
      spellcheck: "false",
    });
    for (const name of SIMPLE_FIELDS.filter((n) => n !== "outcome")) {
      this.inputs[name] = h("input", {
        name,
        placeholder: PLACEHOLDERS[name],
        autocomplete: "off",
        spellcheck: "false",
      });
    }
    this.inputs.outcome = select({ name: "outcome" }, OUTCOMES, "");
    this.inputs.range = select({ name: "range" }, RANGES, "");
    this.inputs.since = h("input", { type: "datetime-local", name: "since", step: "1" });
    this.inputs.until = h("input", { type: "datetime-local", name: "until", step: "1" });
    this.inputs.order = select({ name: "order" }, ORDERS, "desc");
    this.inputs.limit = select(
      { name: "limit" },
      PAGE_SIZES.map((n) => [String(n), String(n)]),
      "50",
    );

    this.sinceLabel = h("label", { for: "search-since" }, "From");
    this.untilLabel = h("label", { for: "search-until" }, "Until (not included)");
    this.inputs.since.id = "search-since";
    this.inputs.until.id = "search-until";
    this.custom = h(
      "div",
      { class: "custom-range", hidden: true },
      h("div", { class: "field" }, this.sinceLabel, this.inputs.since),
      h("div", { class: "field" }, this.untilLabel, this.inputs.until),
    );
    this.inputs.range.addEventListener("change", () => {
      this.custom.hidden = this.inputs.range.value !== "custom";
    });

    this.conditionList = h("ol", { class: "conditions", "aria-live": "off" });
    const addButton = h(
      "button",
      { type: "button", class: "secondary", onclick: () => this.addCondition(null, true) },
      "Add condition",
    );
    const pathOptions = h(
      "datalist",
      { id: "path-suggestions" },
      SUGGESTED_PATHS.map((path) => h("option", { value: path })),
    );

    this.problems = h("ul", { class: "error", role: "alert", hidden: true });
    this.moreCount = h("span", { class: "muted" });
    this.more = h(
      "details",
      { class: "more-filters", open: !NARROW.matches },
      h("summary", {}, "Fields, conditions and order ", this.moreCount),
      h(
        "div",
        { class: "row" },
        ...Object.keys(LABELS).map((name) => field(LABELS[name], this.inputs[name])),
        field("Outcome", this.inputs.outcome),
      ),
      h(
        "fieldset",
        { class: "conditions-set" },
        h("legend", {}, "Conditions on any field"),
        this.conditionList,
        pathOptions,
        addButton,
      ),
      h(
        "div",
        { class: "row" },
        field("Order", this.inputs.order, { className: "field narrow" }),
        field("Per page", this.inputs.limit, { className: "field narrow" }),
      ),
    );
    this.form = h(
      "form",
      { class: "search", role: "search", "aria-label": "Search events", novalidate: true },
      h(
        "div",
        { class: "row" },
        field("Full text", this.inputs.q, {
          className: "field grow",
          hint: "Every word must occur; end a word with * for a prefix.",
        }),
        field("Time", this.inputs.range),
        h(
          "div",
          { class: "buttons" },
          h("button", { type: "submit", class: "primary" }, "Search"),
          h(
            "button",
            { type: "button", class: "secondary", onclick: () => this.clear() },
            "Clear filters",
          ),
        ),
      ),
      this.custom,
      this.more,
      this.problems,
    );
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.element = this.form;
  }

  /** A row of the condition list: path, operator, value and a remove button. */
  addCondition(condition, focus = false) {
    const id = uniqueId("cond");
    const path = h("input", {
      id: `${id}-path`,
      name: "path",
      list: "path-suggestions",
      placeholder: "data.amount",
      autocomplete: "off",
      spellcheck: "false",
      value: condition ? condition.path : "",
    });
    const op = select({ id: `${id}-op`, name: "op" }, OPERATORS, condition ? condition.op : "eq");
    const value = h("input", {
      id: `${id}-value`,
      name: "value",
      autocomplete: "off",
      spellcheck: "false",
      value: condition ? condition.value : "",
    });
    const exists = select(
      { id: `${id}-exists`, name: "exists" },
      [
        ["true", "true"],
        ["false", "false"],
      ],
      condition && condition.op === "exists" && condition.value === "false" ? "false" : "true",
    );
    const row = {};
    const remove = h(
      "button",
      {
        type: "button",
        class: "secondary small",
        onclick: () => this.removeCondition(row),
      },
      "Remove",
    );
    const valueField = h(
      "div",
      { class: "field" },
      h("label", { for: value.id }, "Value"),
      value,
    );
    const existsField = h(
      "div",
      { class: "field" },
      h("label", { for: exists.id }, "Exists"),
      exists,
    );
    const update = () => {
      const isExists = op.value === "exists";
      valueField.hidden = isExists;
      existsField.hidden = !isExists;
    };
    op.addEventListener("change", update);
    const item = h(
      "li",
      { class: "condition" },
      h("div", { class: "field path" }, h("label", { for: path.id }, "Field path"), path),
      h("div", { class: "field" }, h("label", { for: op.id }, "Operator"), op),
      valueField,
      existsField,
      remove,
    );
    Object.assign(row, { item, path, op, value, exists });
    update();
    this.conditionRows.push(row);
    this.conditionList.appendChild(item);
    this.renumber();
    if (focus) path.focus();
    return row;
  }

  removeCondition(row) {
    const index = this.conditionRows.indexOf(row);
    this.conditionRows.splice(index, 1);
    row.item.remove();
    this.renumber();
    const next = this.conditionRows[index] || this.conditionRows[index - 1];
    if (next) next.path.focus();
  }

  /** Every control of a condition row says which condition it belongs to. */
  renumber() {
    this.conditionRows.forEach((row, index) => {
      const n = index + 1;
      row.item.setAttribute("aria-label", `Condition ${n}`);
      row.item.querySelector(`label[for="${row.path.id}"]`).textContent = `Field path (${n})`;
      row.item.querySelector(`label[for="${row.op.id}"]`).textContent = `Operator (${n})`;
      row.item.querySelector(`label[for="${row.value.id}"]`).textContent = `Value (${n})`;
      row.item.querySelector(`label[for="${row.exists.id}"]`).textContent = `Exists (${n})`;
      row.item.querySelector("button").setAttribute("aria-label", `Remove condition ${n}`);
    });
  }

  /** Show `view` in the form (times in `view.tz`). */
  show(view) {
    this.tz = view.tz;
    this.inputs.q.value = view.q;
    for (const name of SIMPLE_FIELDS) this.inputs[name].value = view[name];
    this.inputs.range.value = view.range;
    this.inputs.since.value = toInputValue(view.since, view.tz);
    this.inputs.until.value = toInputValue(view.until, view.tz);
    this.custom.hidden = view.range !== "custom";
    const zone = view.tz === "local" ? "local time" : "UTC";
    this.sinceLabel.textContent = `From (${zone})`;
    this.untilLabel.textContent = `Until, not included (${zone})`;
    this.inputs.order.value = view.order;
    if (![...this.inputs.limit.options].some((o) => o.value === String(view.limit))) {
      this.inputs.limit.appendChild(h("option", { value: String(view.limit) }, String(view.limit)));
    }
    this.inputs.limit.value = String(view.limit);
    this.conditionRows = [];
    this.conditionList.replaceChildren();
    for (const condition of view.conditions) this.addCondition(condition);
    const active =
      SIMPLE_FIELDS.filter((name) => view[name] !== "").length + view.conditions.length;
    this.moreCount.textContent = active ? `(${active} set)` : "";
    if (active || !NARROW.matches) this.more.open = true;
    this.showProblems([]);
  }

  /** The view the form describes (from its first page). */
  read(base) {
    const view = { ...emptyView(), tz: base.tz };
    view.q = this.inputs.q.value.trim();
    for (const name of SIMPLE_FIELDS) view[name] = this.inputs[name].value.trim();
    view.range = this.inputs.range.value;
    if (view.range === "custom") {
      view.since = fromInputValue(this.inputs.since.value, this.tz);
      view.until = fromInputValue(this.inputs.until.value, this.tz);
    }
    view.order = this.inputs.order.value;
    view.limit = Number(this.inputs.limit.value);
    view.conditions = this.conditionRows
      .map((row) => ({
        path: row.path.value.trim(),
        op: row.op.value,
        value: row.op.value === "exists" ? row.exists.value : row.value.value,
      }))
      .filter((c) => c.path || c.value);
    return view;
  }

  showProblems(problems) {
    this.problems.replaceChildren(...problems.map((p) => h("li", {}, p)));
    this.problems.hidden = problems.length === 0;
  }

  submit() {
    this.onSearch(this.read({ tz: this.tz }));
  }

  clear() {
    this.show({ ...emptyView(), tz: this.tz });
    this.submit();
  }

  focusText() {
    this.inputs.q.focus();
  }
}
