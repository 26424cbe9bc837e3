// Release of a selection: the Release dialog of one message (release.js), asked
// once for all of them, then how each message's delivery to each recipient goes,
// live from the websocket's "relay" frames, with a count by state and a list of
// what the remote servers refused. One request releases them all
// (POST api/v1/messages/release): selected IDs, every result of the search, or
// every message, as the other bulk actions do.

import * as api from "./api.js";
import { h, replace } from "./dom.js";
import { count, plural } from "./format.js";
import { deliveryItem, onRelayFrame, relaySettings, releaseDialog } from "./release.js";

const SHOWN_MESSAGES = 100; // rows in the dialog; every message is counted above them
const RENDER_DELAY = 100; // ms: a burst of frames recounts once
const ORDER = ["sent", "sending", "queued", "retrying", "failed"];
const FINAL = new Set(["sent", "failed"]);

/**
 * Ask for recipients, release `target` ({ids}, {query} or {}: see api.releaseMessages)
 * to them, and follow it. `howMany` and `what` ("7 selected messages", "the 30 results
 * of ...") are what the dialog says it will release.
 */
export async function releaseSelection({ target, howMany, what }) {
  const relay = await relaySettings();
  let stop = null;
  releaseDialog({
    title: `Release ${plural(howMany, "message")}`,
    relay,
    copies: howMany === 1 ? `a copy of ${what}` : `a copy of each of ${what}`,
    ok: `Release ${count(howMany)}`,
    onClose: () => stop && stop(),
    send: async (to) => {
      // Frames may come before the answer does: keep them until it says which are ours.
      const early = new Map();
      stop = onRelayFrame((data) => early.set(data.ID, data.Relay));
      let answer;
      try {
        answer = await api.releaseMessages(target, to);
      } catch (problem) {
        stop();
        throw problem;
      }
      stop();
      const progress = new Progress(answer);
      for (const [id, deliveries] of early) progress.update(id, deliveries);
      stop = onRelayFrame((data) => progress.update(data.ID, data.Relay));
      return progress.element;
    },
  });
}

/** The state of one bulk release, shown as it changes. */
class Progress {
  constructor(answer) {
    this.to = answer.To || [];
    this.messages = answer.Messages || [];
    // This release's delivery to each recipient, per message: queued until a frame says more.
    this.deliveries = new Map(this.messages.map((message) => [message.ID, this.to.map(queued)]));
    this.rows = new Map();
    this.timer = null;
    this.summary = h("p", { class: "bulk-release-summary", role: "status" });
    this.refusals = h("div", { class: "bulk-release-refusals", hidden: true });
    const list = h("ul", { class: "bulk-release-list", "aria-label": "Released messages" });
    for (const message of this.messages.slice(0, SHOWN_MESSAGES)) {
      const deliveries = h("ul", { class: "relay-list" });
      this.rows.set(message.ID, deliveries);
      list.append(
        h(
          "li",
          { class: "bulk-release-message", dataset: { id: message.ID } },
          h("span", { class: "bulk-release-subject", text: message.Subject || "(no subject)" }),
          deliveries,
        ),
      );
    }
    const missing = answer.Missing || [];
    this.element = h(
      "div",
      { class: "bulk-release" },
      this.summary,
      missing.length
        ? h("p", {
            class: "bulk-release-missing",
            text: `${plural(missing.length, "message was", "messages were")} deleted before the release and not sent.`,
          })
        : null,
      this.refusals,
      list,
      this.messages.length > SHOWN_MESSAGES
        ? h("p", {
            class: "bulk-release-more",
            text: `… and ${plural(this.messages.length - SHOWN_MESSAGES, "more message")}, counted above.`,
          })
        : null,
      h(
        "div",
        { class: "dialog-buttons" },
        h("button", { type: "button", class: "button", onclick: (event) => closeDialog(event.target) }, "Close"),
      ),
    );
    for (const id of this.rows.keys()) this.renderRow(id);
    this.render();
  }

  /** A "relay" frame's deliveries of message `id` (all of them, every release's). */
  update(id, relay) {
    if (!this.deliveries.has(id)) return; // not released here
    this.deliveries.set(id, this.to.map((address) => ours(relay, address) || queued(address)));
    this.renderRow(id);
    if (this.timer === null) this.timer = setTimeout(() => this.render(), RENDER_DELAY);
  }

  renderRow(id) {
    const row = this.rows.get(id);
    if (row) replace(row, this.deliveries.get(id).map(deliveryItem));
  }

  render() {
    this.timer = null;
    const states = Object.fromEntries(ORDER.map((state) => [state, 0]));
    const refused = new Map(); // recipient -> {messages, replies}
    let done = true;
    for (const deliveries of this.deliveries.values()) {
      for (const delivery of deliveries) {
        states[delivery.State] = (states[delivery.State] || 0) + 1;
        done &&= FINAL.has(delivery.State);
        if (delivery.State !== "failed") continue;
        const entry = refused.get(delivery.Recipient) || { messages: 0, replies: new Set() };
        entry.messages += 1;
        entry.replies.add(delivery.Reply);
        refused.set(delivery.Recipient, entry);
      }
    }
    const tally = ORDER.filter((state) => states[state]).map((state) => `${count(states[state])} ${state}`);
    const scope = `${plural(this.messages.length, "message")} to ${plural(this.to.length, "recipient")}`;
    this.summary.textContent = `${done ? "Released" : "Releasing"} ${scope}: ${tally.join(", ")}.`;
    this.summary.dataset.done = String(done);
    this.refusals.hidden = refused.size === 0;
    replace(
      this.refusals,
      h("h3", { class: "bulk-release-refusals-title", text: "Not delivered" }),
      h(
        "ul",
        {},
        [...refused].map(([recipient, { messages, replies }]) =>
          h(
            "li",
            { class: "bulk-release-refusal", dataset: { recipient } },
            h("span", { class: "relay-recipient", text: recipient }),
            ` refused for ${plural(messages, "message")}: `,
            h("span", { class: "relay-detail", text: [...replies].slice(0, 3).join("; ") }),
          ),
        ),
      ),
    );
  }
}

const closeDialog = (element) => element.closest("dialog").close();

const queued = (address) => ({ Recipient: address, Reason: "release", State: "queued", Attempts: 0, Reply: "" });

/** The newest release delivery to `address` among a message's deliveries: this release's. */
function ours(relay, address) {
  let found = null;
  for (const delivery of relay) if (delivery.Reason === "release" && delivery.Recipient === address) found = delivery;
  return found;
}
