// Pieces of the message pane: recipients (long lists folded), List-Unsubscribe,
// the invitation card, attachments with thumbnails, and the HTML source.

import * as api from "./api.js";
import { h, icon } from "./dom.js";
import { count, fullAddress, mediumTime, size } from "./format.js";
import { highlightHtml } from "./highlight.js";

const FOLD_AFTER = 3; // addresses shown of a longer list until "+N more" is pressed

/** The To / Cc / Bcc / Reply-To lines; a list longer than FOLD_AFTER shows its count. */
export function recipientList(message) {
  const list = h("dl", { class: "recipients" });
  for (const [label, addresses] of [
    ["To", message.To],
    ["Cc", message.Cc],
    ["Bcc", message.Bcc],
    ["Reply-To", message.ReplyTo],
  ]) {
    const all = (addresses || []).map(fullAddress).filter(Boolean);
    if (!all.length && label !== "To") continue;
    const value = h("dd", {});
    const show = (shown) => {
      value.replaceChildren(shown.join(", ") || "—");
      if (shown.length < all.length) {
        value.append(
          " ",
          h(
            "button",
            {
              type: "button",
              class: "more",
              title: `Show all ${count(all.length)} ${label} recipients`,
              onclick: () => show(all),
              text: `+${count(all.length - shown.length)} more`,
            },
          ),
        );
      }
    };
    show(all.length > FOLD_AFTER + 1 ? all.slice(0, FOLD_AFTER) : all);
    list.append(h("div", {}, h("dt", { text: label }), value));
  }
  return list;
}

/** List-Unsubscribe as the message has it, with what is wrong (RFC 2369, RFC 8058). */
export function unsubscribeLine(info) {
  if (!info || !info.Header) return null;
  const links = (info.Links || []).map((link) =>
    h("a", { href: link, target: "_blank", rel: "noopener noreferrer", class: "unsub-link", text: link }),
  );
  const oneClick = info.HeaderPost && !info.Errors;
  return h(
    "div",
    { class: "unsubscribe" },
    h("span", { class: "unsub-label", text: "Unsubscribe" }),
    links.length ? links.flatMap((link, index) => (index ? [" ", link] : [link])) : h("span", { text: "no valid link" }),
    oneClick ? h("span", { class: "pill ok", title: "List-Unsubscribe-Post: List-Unsubscribe=One-Click", text: "one-click (RFC 8058)" }) : null,
    info.Errors ? h("span", { class: "pill warn", title: info.Errors, text: "problems" }) : null,
    info.Errors ? h("span", { class: "unsub-errors", text: info.Errors }) : null,
  );
}

/** The invitation card of each event the message carries. */
export function calendarCards(calendars) {
  const events = calendars.flatMap((calendar) => calendar.Events.map((event) => [calendar.Method, event]));
  if (!events.length) return null;
  return h(
    "div",
    { class: "invites" },
    events.map(([method, event]) =>
      h(
        "section",
        { class: `invite${method === "CANCEL" ? " cancelled" : ""}`, "aria-label": `Invitation: ${event.Summary || "event"}` },
        icon("calendar", "invite-icon"),
        h(
          "div",
          { class: "invite-text" },
          h("p", { class: "invite-title" }, method === "CANCEL" ? "Cancelled: " : "", event.Summary || "(no title)"),
          h("p", { class: "invite-when", text: when(event) }),
          event.Location ? h("p", { class: "invite-where", text: event.Location }) : null,
          event.Organizer ? h("p", { class: "invite-people", text: `Organiser: ${fullAddress(event.Organizer)}` }) : null,
          event.AttendeeCount
            ? h("p", {
                class: "invite-people",
                text: `${count(event.AttendeeCount)} attendee${event.AttendeeCount === 1 ? "" : "s"}: ${event.Attendees.slice(0, 5)
                  .map((person) => person.Name || person.Address)
                  .join(", ")}${event.AttendeeCount > 5 ? ", …" : ""}`,
              })
            : null,
        ),
      ),
    ),
  );
}

function when(event) {
  if (!event.Start) return "";
  if (event.AllDay) return `${event.Start}${event.End ? ` – ${event.End}` : ""} (all day)`;
  // A local time with a TZID is shown as written, with its zone; UTC in the reader's zone.
  const show = (moment) => (moment.endsWith("Z") ? mediumTime(moment) : moment.replace("T", " ").slice(0, 16));
  const zone = event.TimeZone ? ` (${event.TimeZone})` : "";
  return `${show(event.Start)}${event.End ? ` – ${show(event.End)}` : ""}${zone}`;
}

/** A part's label: its file name, or for an unnamed part what it is, never its Content-ID. */
export function partName(part) {
  const named = part.FileName && part.FileName !== part.ContentID;
  if (named) return { name: part.FileName, named: true };
  const [kind, subtype = ""] = (part.ContentType || "application/octet-stream").split("/");
  const what = kind === "image" ? "Inline image" : "Unnamed part";
  return { name: `${what} (${subtype.toUpperCase() || kind})`, named: false };
}

export function attachmentList(message, title, parts) {
  if (!parts.length) return [];
  return [
    h("h3", { class: "parts-title", text: title }),
    h(
      "ul",
      { class: "parts" },
      parts.map((part) => {
        const { name, named } = partName(part);
        const image = (part.ContentType || "").startsWith("image/");
        const download = named ? part.FileName : `part-${part.PartID}`;
        return h(
          "li",
          { class: "part" },
          image
            ? h("img", { class: "thumb", src: api.thumbUrl(message.ID, part.PartID), alt: "", loading: "lazy", width: "90", height: "60" })
            : icon("file", "part-icon"),
          h(
            "div",
            { class: "part-text" },
            h("span", { class: "part-name", text: name }),
            h("span", {
              class: "part-meta",
              text: [part.ContentType || "application/octet-stream", size(part.Size || 0), part.ContentID ? `cid:${part.ContentID}` : ""]
                .filter(Boolean)
                .join(" · "),
            }),
          ),
          h(
            "a",
            { class: "button small", href: api.partUrl(message.ID, part.PartID), download, "aria-label": `Download ${name}` },
            icon("download"),
            h("span", { class: "label", text: "Download" }),
          ),
        );
      }),
    ),
  ];
}

/** A bar of downloads above a body: `kind` "html" or "txt". */
export function bodyDownload(message, kind) {
  const label = kind === "html" ? "Download .html" : "Download .txt";
  return h(
    "div",
    { class: "panel-bar" },
    h("a", { class: "button small", href: api.bodyDownloadUrl(message.ID, kind), download: `${message.ID}.${kind}` }, icon("download"), label),
  );
}

export function htmlSource(message) {
  return [bodyDownload(message, "html"), h("pre", { class: "source html-source" }, highlightHtml(message.HTML))];
}
