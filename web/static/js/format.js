// Formatting for display: names, sizes and times, as plain strings.

// Made on first use: each costs milliseconds to build, and the first screen needs few.
const lazy = (make) => {
  let value = null;
  return { format: (x) => (value ||= make()).format(x) };
};
const numberFormat = lazy(() => new Intl.NumberFormat());
const timeFormat = lazy(() => new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" }));
const weekdayFormat = lazy(() => new Intl.DateTimeFormat(undefined, { weekday: "short" }));
const dayFormat = lazy(() => new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" }));
const fullDayFormat = lazy(() => new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" }));
const fullFormat = lazy(() => new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" }));
const mediumFormat = lazy(() => new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }));

// Dates come from mail headers: an unparsable one shows as nothing, not as an error.
const valid = (iso) => !Number.isNaN(new Date(iso).getTime());

export const count = (n) => numberFormat.format(n);

export function plural(n, word, many = `${word}s`) {
  return `${count(n)} ${n === 1 ? word : many}`;
}

/** "Ann Example" or, without a name, the address. */
export function personName(address) {
  if (!address) return "";
  return (address.Name || "").trim() || address.Address || "";
}

/** "Ann Example <ann@example.com>", or just the address. */
export function fullAddress(address) {
  if (!address) return "";
  const name = (address.Name || "").trim();
  return name ? `${name} <${address.Address}>` : address.Address || "";
}

export function addressList(addresses) {
  return (addresses || []).map(fullAddress).filter(Boolean).join(", ");
}

export function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** Short and relative for the list: "just now", "5 min ago", "3 h ago", "Yesterday", "12 Mar". */
export function relativeTime(iso, now = Date.now()) {
  if (!valid(iso)) return "";
  const date = new Date(iso);
  const seconds = Math.max(0, (now - date.getTime()) / 1000);
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.max(1, Math.round(seconds / 60))} min ago`;
  if (seconds < 6 * 3600) return `${Math.round(seconds / 3600)} h ago`;
  const today = new Date(now);
  if (sameDay(date, today)) return timeFormat.format(date);
  const yesterday = new Date(now - 86400000);
  if (sameDay(date, yesterday)) return "Yesterday";
  if (seconds < 6 * 86400) return weekdayFormat.format(date);
  return date.getFullYear() === today.getFullYear() ? dayFormat.format(date) : fullDayFormat.format(date);
}

export const fullTime = (iso) => (valid(iso) ? fullFormat.format(new Date(iso)) : "");
export const mediumTime = (iso) => (valid(iso) ? mediumFormat.format(new Date(iso)) : "");

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** Up to two initials for an avatar. */
export function initials(address) {
  const name = personName(address).replace(/@.*/, "");
  const words = name.split(/[\s._-]+/).filter((word) => /\p{L}|\p{N}/u.test(word));
  const letters = words.slice(0, 2).map((word) => Array.from(word)[0].toUpperCase());
  return letters.join("") || "?";
}

/** A stable hue per address, so a sender keeps its colour. */
export function hue(text) {
  let hash = 0;
  for (const char of text || "") hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return hash % 360;
}
