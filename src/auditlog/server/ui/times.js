// Times as the console shows and takes them: in UTC, or in the browser's time zone. The API
// writes RFC 3339 in UTC with six fraction digits; a Date keeps milliseconds only, so the
// digits are kept from the text rather than from a Date. Pure functions.

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function pad(number, width = 2) {
  return String(number).padStart(width, "0");
}

/** Milliseconds since the epoch of an RFC 3339 time, or NaN. */
export function parseTime(text) {
  return RFC3339.test(text) ? Date.parse(text) : Number.NaN;
}

/** A time of the API written for people: `2026-12-06 03:12:45.123456` in UTC, or in local
 * time with its offset (`2026-12-06 04:12:45.123456 +01:00`). Text that is not a time is
 * shown as it is. */
export function formatTime(text, tz) {
  const match = RFC3339.exec(text || "");
  if (!match) return text || "";
  const fraction = (match[7] || "").slice(0, 7);
  if (tz !== "local") {
    const ms = Date.parse(text);
    if (match[8] !== "Z" && match[8] !== "z") return formatTime(new Date(ms).toISOString(), tz);
    return `${match[1]}-${match[2]}-${match[3]} ${match[4]}:${match[5]}:${match[6]}${fraction}`;
  }
  const date = new Date(Date.parse(text));
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const abs = Math.abs(offset);
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}${fraction} ` +
    `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
  );
}

/** What the time column's heading says of its zone. */
export function zoneLabel(tz) {
  if (tz !== "local") return "UTC";
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return zone ? `local, ${zone}` : "local";
}

/** The value of an `<input type="datetime-local">` showing an RFC 3339 time in `tz`. */
export function toInputValue(text, tz) {
  const ms = parseTime(text);
  if (Number.isNaN(ms)) return "";
  const date = new Date(ms);
  if (tz !== "local") return date.toISOString().slice(0, 19);
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** The RFC 3339 UTC time of a datetime-local input's value read in `tz`, or "" when empty. */
export function fromInputValue(value, tz) {
  if (!value) return "";
  const withSeconds = value.length === 16 ? `${value}:00` : value;
  const ms = tz === "local" ? new Date(withSeconds).getTime() : Date.parse(`${withSeconds}Z`);
  return Number.isNaN(ms) ? "" : new Date(ms).toISOString();
}

/** `in 4 min` / `12 s` for a number of seconds from now, for an expiry. */
export function untilText(seconds) {
  if (seconds <= 0) return "now";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}
