// The console's view as a value, and its three spellings: the page's URL (so reload,
// back/forward and a shared link reproduce it), the search form, and the parameters of
// GET /v1/events (docs/api.md, "Parameters"). Pure functions: no DOM, no network.
//
// The URL holds the API's own filter parameters as they are (`type=a&data.amount[gt]=100`)
// plus a few of the console's, none of which can be a filter (a field path starts with a
// field of the event): `range` (a time preset), `at` (the moment a preset is counted back
// from, fixed once a result is paged so that its cursor stays valid), `tz`, `event` (the
// event whose detail is open).

/** The operators of a condition, in the picker's order: [op, what the picker says]. */
export const OPERATORS = [
  ["eq", "equals"],
  ["ne", "does not equal"],
  ["gt", "greater than"],
  ["gte", "at least"],
  ["lt", "less than"],
  ["lte", "at most"],
  ["in", "is one of (a,b,c)"],
  ["prefix", "starts with"],
  ["exists", "exists"],
];
const OPERATOR_NAMES = new Set(OPERATORS.map(([op]) => op));

/** Time presets: [name, seconds, label]. */
export const PRESETS = [
  ["15m", 15 * 60, "Last 15 minutes"],
  ["1h", 3600, "Last hour"],
  ["24h", 86400, "Last 24 hours"],
  ["7d", 7 * 86400, "Last 7 days"],
  ["30d", 30 * 86400, "Last 30 days"],
];
const PRESET_SECONDS = new Map(PRESETS.map(([name, seconds]) => [name, seconds]));

/** Fields the form has a box of its own for (one equality each; more go to conditions). */
export const SIMPLE_FIELDS = ["type", "actor", "subject", "source", "outcome"];

/** The fields a path may start with (docs/api.md, "Field paths"). */
export const ROOT_FIELDS = [
  "id",
  "type",
  "time",
  "actor",
  "subject",
  "source",
  "outcome",
  "data",
  "tenant",
  "seq",
  "received_at",
];

/** Paths the condition picker suggests. */
export const SUGGESTED_PATHS = [
  "type",
  "actor",
  "actor.type",
  "actor.name",
  "subject",
  "subject.type",
  "subject.name",
  "source",
  "outcome",
  "id",
  "time",
  "received_at",
  "seq",
  "data.",
];

export const PAGE_SIZES = [25, 50, 100, 200, 500];
export const DEFAULT_LIMIT = 50;

const PATH = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const NAME = /^([^[\]]+)(?:\[([^[\]]*)\])?$/;
const CONSOLE_PARAMS = new Set(["range", "at", "tz", "event", "token"]);

/** A view with nothing chosen: every event, newest first. */
export function emptyView() {
  return {
    q: "",
    type: "",
    actor: "",
    subject: "",
    source: "",
    outcome: "",
    range: "",
    since: "",
    until: "",
    at: "",
    conditions: [],
    order: "desc",
    limit: DEFAULT_LIMIT,
    cursor: "",
    tz: "utc",
    event: "",
  };
}

/** Whether `path` is a field path the API takes (segments of A-Z a-z 0-9 _ -). */
export function isPath(path) {
  return PATH.test(path) && ROOT_FIELDS.includes(path.split(".")[0]);
}

/** Whether a data key can be a segment of a path (so "filter by this value" can name it). */
export function isPathSegment(key) {
  return /^[A-Za-z0-9_-]+$/.test(key);
}

/** The view a query string (`location.search`) describes. Unknown names become conditions,
 * which the API then accepts or refuses with a message that names them. */
export function parseView(search) {
  const view = emptyView();
  const params = new URLSearchParams(search);
  const words = [];
  for (const [name, value] of params) {
    if (CONSOLE_PARAMS.has(name)) {
      if (name === "range") view.range = value;
      else if (name === "at") view.at = value;
      else if (name === "tz") view.tz = value === "local" ? "local" : "utc";
      else if (name === "event") view.event = value;
      continue;
    }
    switch (name) {
      case "q":
        if (value.trim()) words.push(value.trim());
        continue;
      case "since":
      case "until":
        view[name] = value;
        continue;
      case "order":
        view.order = value === "asc" ? "asc" : "desc";
        continue;
      case "limit": {
        const limit = Number.parseInt(value, 10);
        view.limit = limit >= 1 && limit <= 1000 ? limit : DEFAULT_LIMIT;
        continue;
      }
      case "cursor":
        view.cursor = value;
        continue;
      default:
        break;
    }
    const match = NAME.exec(name);
    const path = match ? match[1] : name;
    const op = match && match[2] !== undefined ? match[2] : "";
    if (op === "" && SIMPLE_FIELDS.includes(path) && view[path] === "") {
      view[path] = value;
    } else {
      view.conditions.push({ path, op: op || "eq", value });
    }
  }
  view.q = words.join(" ");
  if (!view.range && (view.since || view.until)) view.range = "custom";
  if (view.range && view.range !== "custom" && !PRESET_SECONDS.has(view.range)) view.range = "";
  if (view.range !== "custom") {
    view.since = "";
    view.until = "";
  }
  if (!view.range || view.range === "custom") view.at = "";
  return view;
}

/** A condition as a parameter name: `path` for an equality (but for the form's own fields,
 * which would read back into their boxes), else `path[op]`. */
function conditionName({ path, op }) {
  if (op === "eq" && !SIMPLE_FIELDS.includes(path)) return path;
  return `${path}[${op}]`;
}

/** The §3 filters of a view, as [name, value] pairs: what a query, an export and a live
 * stream all take. A preset is counted back from `view.at`, or from `nowMs` when unset. */
export function filterParams(view, nowMs) {
  const pairs = [];
  if (view.q.trim()) pairs.push(["q", view.q.trim()]);
  for (const name of SIMPLE_FIELDS) {
    if (view[name] !== "") pairs.push([name, view[name]]);
  }
  const since = sinceOf(view, nowMs);
  if (since) pairs.push(["since", since]);
  if (view.range === "custom" && view.until) pairs.push(["until", view.until]);
  for (const condition of view.conditions) {
    pairs.push([conditionName(condition), condition.value]);
  }
  return pairs;
}

/** The parameters of GET /v1/events for a view: its filters, order, page size, cursor. */
export function queryParams(view, nowMs) {
  const pairs = filterParams(view, nowMs);
  if (view.order !== "desc") pairs.push(["order", view.order]);
  pairs.push(["limit", String(view.limit)]);
  if (view.cursor) pairs.push(["cursor", view.cursor]);
  return pairs;
}

/** The `since` of a view: a preset counted back from its anchor, or the custom one. */
export function sinceOf(view, nowMs) {
  if (view.range === "custom") return view.since;
  const seconds = PRESET_SECONDS.get(view.range);
  if (seconds === undefined) return "";
  const anchor = view.at ? Date.parse(view.at) : nowMs;
  const from = Number.isNaN(anchor) ? nowMs : anchor;
  return new Date(from - seconds * 1000).toISOString();
}

/** The query string of the console's URL for a view ("" for the empty view). */
export function viewToSearch(view) {
  const pairs = [];
  if (view.q.trim()) pairs.push(["q", view.q.trim()]);
  for (const name of SIMPLE_FIELDS) {
    if (view[name] !== "") pairs.push([name, view[name]]);
  }
  if (view.range) pairs.push(["range", view.range]);
  if (view.range === "custom") {
    if (view.since) pairs.push(["since", view.since]);
    if (view.until) pairs.push(["until", view.until]);
  } else if (view.range && view.at) {
    pairs.push(["at", view.at]);
  }
  for (const condition of view.conditions) {
    pairs.push([conditionName(condition), condition.value]);
  }
  if (view.order !== "desc") pairs.push(["order", view.order]);
  if (view.limit !== DEFAULT_LIMIT) pairs.push(["limit", String(view.limit)]);
  if (view.cursor) pairs.push(["cursor", view.cursor]);
  if (view.tz !== "utc") pairs.push(["tz", view.tz]);
  if (view.event) pairs.push(["event", view.event]);
  const text = encodeParams(pairs);
  return text ? `?${text}` : "";
}

/** `name=value&...`, percent-encoded, leaving the characters of paths and operators
 * (`[ ] . , :`) readable: a shared link says what it filters. */
export function encodeParams(pairs) {
  return pairs.map(([name, value]) => `${encodePart(name)}=${encodePart(value)}`).join("&");
}

function encodePart(text) {
  return encodeURIComponent(text)
    .replace(/%5B/g, "[")
    .replace(/%5D/g, "]")
    .replace(/%2C/g, ",")
    .replace(/%3A/g, ":");
}

/** The same search (its filters and order), from its first page, with nothing open. */
export function firstPage(view) {
  return { ...view, cursor: "", at: "", event: "" };
}

/** The view narrowed to "`path` equals `value`" (a JSON value from an event), from its first
 * page. The API ORs equalities on one path (docs/api.md, "Combining"), so the value replaces
 * any equality or `in` on that path instead of joining them, which would widen the search.
 * For the form's own fields the box is used. */
export function withValue(view, path, value) {
  const text = valueText(value);
  const simple = path === "actor.id" ? "actor" : path === "subject.id" ? "subject" : path;
  const samePath = (p) =>
    p === simple || (p === `${simple}.id` && (simple === "actor" || simple === "subject"));
  const next = {
    ...firstPage(view),
    conditions: view.conditions.filter((c) => !(samePath(c.path) && (c.op === "eq" || c.op === "in"))),
  };
  if (SIMPLE_FIELDS.includes(simple)) next[simple] = text;
  else next.conditions.push({ path: simple, op: "eq", value: text });
  return next;
}

/** How a JSON value is written as a query value (docs/api.md, "Values"). */
export function valueText(value) {
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** A filter object (a viewer token's, as whoami gives it) as [name, value] pairs: a list
 * repeats its parameter; numbers and booleans are their JSON text. */
export function filterObjectPairs(filter) {
  const pairs = [];
  for (const [name, value] of Object.entries(filter || {})) {
    for (const item of Array.isArray(value) ? value : [value]) {
      pairs.push([name, typeof item === "string" ? item : JSON.stringify(item)]);
    }
  }
  return pairs;
}

/** [name, value] pairs said in words, one phrase each: `type = a`, `data.n > 5`. */
export function describePairs(pairs) {
  const symbols = {
    eq: "=",
    ne: "≠",
    gt: ">",
    gte: "≥",
    lt: "<",
    lte: "≤",
    in: "in",
    prefix: "starts with",
    exists: "exists:",
  };
  return pairs.map(([name, value]) => {
    if (name === "q") return `text “${value}”`;
    if (name === "since") return `time ≥ ${value}`;
    if (name === "until") return `time < ${value}`;
    const match = NAME.exec(name);
    const path = match ? match[1] : name;
    const op = match && match[2] ? match[2] : "eq";
    return `${path} ${symbols[op] || `[${op}]`} ${value}`;
  });
}

/** Problems of a view the console can tell before asking the API: each a sentence. */
export function viewProblems(view) {
  const problems = [];
  view.conditions.forEach((condition, index) => {
    const where = `Condition ${index + 1}`;
    if (!condition.path) problems.push(`${where}: choose a field path, such as data.amount.`);
    else if (!isPath(condition.path)) {
      problems.push(
        `${where}: “${condition.path}” is not a field path; it starts with one of ` +
          `${ROOT_FIELDS.join(", ")} and has segments of letters, digits, _ and - ` +
          "separated by dots.",
      );
    }
    if (!OPERATOR_NAMES.has(condition.op)) {
      problems.push(`${where}: “${condition.op}” is not an operator.`);
    }
    if (condition.op === "exists" && !["true", "false"].includes(condition.value)) {
      problems.push(`${where}: “exists” takes true or false.`);
    }
  });
  return problems;
}
