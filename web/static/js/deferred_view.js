// The message pane, whose code loads after the first rows are painted.
//
// view.js and what only it needs (details, highlighting, checks, relay, and
// their stylesheets) are most of the page's code, and none of it is needed to
// show the list: the page loads it once the rows are on screen (load()), or at
// once when a message is opened before that. Until it is in, calls wait for it
// in order, and openId already answers as the pane will. The placeholder
// (no message open) is drawn here, from what index.html has in the pane.

import { h, linkStylesheet, replace } from "./dom.js";

const STYLESHEETS = ["../checks.css", "../release.css"]; // beside app.css, under the same version

export class DeferredView {
  /** The same arguments as MessageView's. */
  constructor(element, actions) {
    this.element = element;
    this.actions = actions;
    this.view = null; // the MessageView, once loaded
    this.loading = null;
    this.pending = null; // the summary openId will be of when the calls waiting have run
    this.failed = false; // the code could not be fetched: retry() tries again
    // What index.html draws in the pane, kept before anything replaces it.
    this.placeholder = element.querySelector(".placeholder").cloneNode(true);
  }

  /** Import the pane's code (once); resolves when it is running. */
  load() {
    if (this.loading) return this.loading;
    this.failed = false;
    const styles = STYLESHEETS.map((path) => linkStylesheet(new URL(path, import.meta.url).href));
    this.loading = Promise.all([import("./view.js"), ...styles]).then(
      ([{ MessageView }]) => {
        this.view = new MessageView(this.element, this.actions);
      },
      (error) => {
        this.loading = null;
        this.failed = true;
        throw error;
      },
    );
    return this.loading;
  }

  get openId() {
    return this.view ? this.view.openId : this.pending && this.pending.ID;
  }

  /** Run `call(view)` now, or once the code is in (in the order asked). */
  whenLoaded(call) {
    if (this.view) return call(this.view);
    this.load().then(
      () => call(this.view),
      (error) => {
        if (!this.failed) throw error; // a bug, not the network: let it show
        this.showUnreachable();
      },
    );
  }

  open(summary) {
    this.pending = summary;
    this.whenLoaded((view) => this.pending === summary && view.open(summary)); // unless closed since
  }

  /** No message open; `note` says why, where there is a reason. */
  showPlaceholder(note = "") {
    this.pending = null;
    if (this.view) this.view.close();
    const placeholder = this.placeholder.cloneNode(true);
    placeholder.querySelector(".placeholder-title").textContent = note || "No message selected";
    replace(this.element, placeholder);
  }

  update(summary) {
    this.whenLoaded((view) => view.update(summary));
  }

  selectTabNumber(number) {
    this.whenLoaded((view) => view.selectTabNumber(number));
  }

  /** Open again what failed for want of a server, the pane's own code included. */
  retry() {
    if (this.view) this.view.retry();
    // The calls that waited were dropped with the failure: the open is the one that counts.
    else if (this.failed && this.pending) this.open(this.pending);
  }

  showUnreachable() {
    if (this.view || !this.pending) return;
    const text = "The server cannot be reached. The message opens when it is back.";
    replace(this.element, h("p", { class: "panel-note offline-note", text }));
  }
}

