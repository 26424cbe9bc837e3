// Relay in the message view: the Release dialog, and how each recipient's
// delivery goes (queued, sending, sent, retrying, failed), kept live by the
// websocket's "relay" frames. The dialog is offered only when /api/v1/webui
// says relay is on; the state shows whenever a message has deliveries.
//
// The view calls showRelay() when it renders a message, the event stream hands
// relayFrame() every "relay" frame; the pane (deferred_view.js) and the bulk
// release link release.css. The bulk release (bulk_release.js) uses the same
// dialog, delivery rows and frames: releaseDialog(), deliveryItem() and
// onRelayFrame(). Nothing here is needed for the first rows: it loads after them.

import * as api from "./api.js";
import { h, replace } from "./dom.js";
import { fullTime } from "./format.js";

const STATE_LABELS = { queued: "Queued", sending: "Sending", sent: "Sent", retrying: "Retrying", failed: "Failed" };
const REASON_LABELS = { release: "released", auto: "auto-relay", forward: "forwarded" };
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const MAX_RECIPIENTS = 100; // what the release endpoint takes at once

// Asked once per page: relay is configured when the server starts.
let asked = null;
/** Mailpit's MessageRelay settings ({Enabled, SMTPServer, AllowedRecipients, ...}). */
export function relaySettings() {
  asked ??= api.webUIConfig().then(
    (config) => (config && config.MessageRelay) || { Enabled: false },
    () => ({ Enabled: false }),
  );
  return asked;
}

let shown = null; // {id, message, section, list, deliveries}: the open message's relay section
// The last frame of recent messages: one that came while a message was loading
// may be newer than what the load returns.
const latest = new Map();
const REMEMBERED = 200;

const newest = (deliveries) => deliveries.reduce((last, d) => (d.Updated > last ? d.Updated : last), "");

/** Render the relay section of `message` (null while it loads) at the end of `head`. */
export function showRelay(head, message) {
  shown = null;
  if (!head || !message) return;
  const section = h("section", { class: "relay", "aria-label": "Relay", hidden: true });
  const list = h("ul", { class: "relay-list" });
  let deliveries = message.Relay || [];
  const frame = latest.get(message.ID);
  if (frame && newest(frame) >= newest(deliveries)) deliveries = frame;
  shown = { id: message.ID, message, section, list, deliveries };
  head.append(section);
  const current = shown;
  relaySettings().then((relay) => {
    if (shown !== current) return; // another message was opened meanwhile
    current.relay = relay;
    render(current);
  });
  render(current);
}

const listeners = new Set();

/** Call `listener(data)` with every "relay" frame from now on; returns how to stop. */
export function onRelayFrame(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** A "relay" frame: {ID, Relay: [deliveries]} — the whole state of one message. */
export function relayFrame(data) {
  if (!data || !Array.isArray(data.Relay)) return;
  for (const listener of listeners) listener(data);
  latest.delete(data.ID);
  latest.set(data.ID, data.Relay);
  if (latest.size > REMEMBERED) latest.delete(latest.keys().next().value);
  if (!shown || data.ID !== shown.id) return;
  shown.deliveries = data.Relay;
  render(shown);
}

function render(current) {
  const { section, list, deliveries } = current;
  const enabled = Boolean(current.relay && current.relay.Enabled);
  if (current.relay) section.dataset.relay = enabled ? "on" : "off";
  section.hidden = !enabled && deliveries.length === 0;
  if (section.hidden) return;
  replace(list, deliveries.map(deliveryItem));
  replace(
    section,
    h(
      "div",
      { class: "relay-head" },
      h("h3", { class: "relay-title", text: "Relay" }),
      enabled
        ? h(
            "button",
            { type: "button", class: "button small release", onclick: () => openDialog(current) },
            "Release…",
          )
        : h("span", { class: "relay-off", text: "Relay is not configured on this server." }),
    ),
    deliveries.length ? list : h("p", { class: "relay-none", text: "Not relayed to anyone yet." }),
  );
}

/** One recipient's delivery: its state, the address, why it was relayed, what happened. */
export function deliveryItem(delivery) {
  const state = delivery.State in STATE_LABELS ? delivery.State : "queued";
  return h(
    "li",
    {
      class: `relay-delivery state-${state}`,
      title: delivery.Updated ? `Last change: ${fullTime(delivery.Updated)}` : null,
      dataset: { recipient: delivery.Recipient, state },
    },
    h("span", { class: "relay-state", text: STATE_LABELS[state] }),
    h("span", { class: "relay-recipient", text: delivery.Recipient }),
    h("span", { class: "relay-reason", text: REASON_LABELS[delivery.Reason] || delivery.Reason }),
    h("span", { class: "relay-detail", text: detail(state, delivery) }),
  );
}

/** What a person wants to know about a delivery in this state, in one line. */
function detail(state, delivery) {
  const attempts = delivery.Attempts === 1 ? "1 attempt" : `${delivery.Attempts} attempts`;
  const host = delivery.RemoteHost ? `${delivery.RemoteHost}: ` : "";
  if (state === "queued") return "Waiting for its first attempt";
  if (state === "sending") return "Handing the message over now";
  if (state === "sent") return `${host}${delivery.Reply}`;
  if (state === "retrying") {
    const next = delivery.NextAttempt ? `next try ${at(delivery.NextAttempt)}` : "next try soon";
    return `${attempts}, ${next}; last error: ${delivery.Reply}`;
  }
  return `${attempts}; ${host}${delivery.Reply}`;
}

function at(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : clock.format(date);
}

// -- the dialog -----------------------------------------------------------------

/** The message's recipients (To, Cc, Bcc: Bcc holds the envelope's unnamed ones), once each. */
function recipientsOf(message) {
  const seen = new Set();
  const addresses = [];
  for (const person of [...(message.To || []), ...(message.Cc || []), ...(message.Bcc || [])]) {
    const address = (person && person.Address) || "";
    if (address && !seen.has(address.toLowerCase())) {
      seen.add(address.toLowerCase());
      addresses.push(address);
    }
  }
  return addresses;
}

function openDialog(current) {
  releaseDialog({
    title: "Release message",
    relay: current.relay,
    prefill: recipientsOf(current.message),
    send: (to) => api.releaseMessage(current.message.ID, to),
  });
}

/**
 * The Release dialog: asks for the recipients once, checks them, and hands them to
 * `send(to)`. A refusal (send throws) is shown in the dialog in the server's words,
 * which name each refused address, and the dialog stays. Otherwise the dialog closes,
 * or, when `send` answers an element (the bulk release's progress), shows it instead
 * of the form. `copies` says what is delivered; `onClose` runs when the dialog goes.
 */
export function releaseDialog({ title, relay = {}, prefill = [], copies = "a copy", ok = "Release", send, onClose }) {
  const field = h("textarea", {
    id: "release-to",
    class: "release-to",
    rows: "3",
    spellcheck: "false",
    autocomplete: "off",
    placeholder: "ann@example.org, bob@example.org",
    "aria-describedby": "release-hint",
  });
  field.value = prefill.join(", ");
  const error = h("p", { class: "release-error", id: "release-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "button primary", value: "release" }, ok);
  const allowed = relay.AllowedRecipients || "";
  const form = h(
    "form",
    { method: "dialog" },
    h("h2", { id: "release-title", text: title }),
    h("p", {
      text: `Delivers ${copies} for real, through ${relay.SMTPServer || "the relay"}. Nothing is sent to anyone not listed here.`,
    }),
    h("label", { for: "release-to", class: "release-label", text: "Recipients" }),
    field,
    h("p", {
      class: "release-hint",
      id: "release-hint",
      text:
        "Separate addresses with commas or new lines. " +
        (allowed === "*" ? "Any address may receive relayed mail." : `Allowed: ${allowed || "nobody"}.`),
    }),
    error,
    h(
      "div",
      { class: "dialog-buttons" },
      h("button", { type: "button", class: "button", onclick: () => dialog.close() }, "Cancel"),
      submit,
    ),
  );
  const dialog = h("dialog", { class: "dialog release-dialog", "aria-labelledby": "release-title" }, form);
  const fail = (text) => {
    error.textContent = text;
    error.hidden = false;
    field.setAttribute("aria-invalid", "true");
  };
  let taken = false; // the server has the release; what `send` answered is shown
  form.addEventListener("submit", async (event) => {
    event.preventDefault(); // the dialog closes only once the server has taken the release
    if (taken) return dialog.close();
    const to = field.value
      .split(/[,;\n]/)
      .map((address) => address.trim())
      .filter(Boolean);
    if (!to.length) return fail("Give at least one recipient.");
    if (to.length > MAX_RECIPIENTS) return fail(`At most ${MAX_RECIPIENTS} recipients at once.`);
    submit.disabled = true;
    let next;
    try {
      next = await send(to);
    } catch (problem) {
      fail(problem.message); // the server's own words, naming any refused address
      submit.disabled = false;
      return;
    }
    taken = true;
    if (next instanceof Node) replace(form, h("h2", { id: "release-title", text: title }), next);
    else dialog.close();
  });
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (onClose) onClose();
  });
  document.body.append(dialog);
  dialog.showModal();
  field.focus();
  return dialog;
}
