// Telling someone who is not looking: an unread count on the favicon, and
// (when they ask for it) a browser notification for new mail.

const KEY = "mailtrap.notifications";
const BURST = 2000; // ms: mail arriving closer together than this shares one notification

let baseIcon = null;

/** Draw `unread` onto the tab's icon (nothing when 0). */
export function setFaviconBadge(unread) {
  const link = document.querySelector('link[rel="icon"]');
  if (!link) return;
  if (baseIcon === null) baseIcon = link.href;
  const text = unread > 99 ? "99+" : String(unread);
  link.dataset.unread = String(unread);
  if (!unread) {
    link.href = baseIcon;
    return;
  }
  const width = text.length > 2 ? 30 : text.length > 1 ? 24 : 18;
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">` +
    `<rect width="32" height="32" rx="7" fill="#5b5bd6"/>` +
    `<path d="M26 16h-6l-2 3h-4l-2-3H6M9 9h14l3 7v6a2 2 0 0 1-2 2H8a2 2 0 0 1-2-2v-6z" fill="none" stroke="#fff" stroke-width="2.2" stroke-linejoin="round"/>` +
    `<rect x="${32 - width}" y="0" width="${width}" height="18" rx="9" fill="#d1364a"/>` +
    `<text x="${32 - width / 2}" y="14" font-family="Arial,sans-serif" font-size="14" font-weight="700" fill="#fff" text-anchor="middle">${text}</text>` +
    `</svg>`;
  link.href = `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

/** Whether this page may show notifications at all (browsers allow them on localhost and HTTPS). */
export const notificationsPossible = () => "Notification" in window && window.isSecureContext;

export function notificationsWanted() {
  try {
    return notificationsPossible() && localStorage.getItem(KEY) === "on" && Notification.permission === "granted";
  } catch {
    return false;
  }
}

/** Turn notifications on (asking the browser) or off; resolves to whether they are on. */
export async function setNotifications(on) {
  if (on) {
    if (!notificationsPossible()) return false;
    const permission = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
    if (permission !== "granted") return false;
  }
  try {
    localStorage.setItem(KEY, on ? "on" : "off");
  } catch {
    return false;
  }
  return on;
}

let queued = [];
let timer = null;

/** A notification for a new message (bursts become one "5 new messages"). */
export function notifyNew(summary, onClick) {
  if (!notificationsWanted()) return;
  queued.push(summary);
  if (timer !== null) return;
  timer = setTimeout(() => {
    const batch = queued;
    queued = [];
    timer = null;
    const first = batch.at(-1); // the newest
    const from = (first.From && (first.From.Name || first.From.Address)) || "(no sender)";
    const title = batch.length === 1 ? first.Subject || "(no subject)" : `${batch.length} new messages`;
    const body = batch.length === 1 ? `From ${from}` : `Latest: ${first.Subject || "(no subject)"}`;
    const notification = new Notification(title, { body, tag: "mailtrap-new" });
    notification.onclick = () => {
      window.focus();
      if (batch.length === 1) onClick(first.ID);
      notification.close();
    };
  }, BURST / 4);
}
