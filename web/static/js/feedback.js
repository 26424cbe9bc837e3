// Feedback: the toast (with an optional action, such as Undo), and the
// confirmation dialog.

import { $, h, replace } from "./dom.js";

let toastTimer = null;
let toastDone = null;

/**
 * Show `text` for `duration` ms. With `action` ({label, run}), the toast has a
 * button; `onExpire` runs when the toast goes without it being pressed.
 */
export function toast(text, { action = null, duration = 5000, onExpire = null } = {}) {
  const element = $("#toast");
  finishToast(); // the one shown before expires now
  clearTimeout(toastTimer);
  const button = action
    ? h("button", {
        type: "button",
        class: "toast-action",
        text: action.label,
        onclick: () => {
          toastDone = null; // pressed: no expiry
          hide();
          action.run();
        },
      })
    : null;
  replace(element, h("span", { text }), button);
  element.hidden = false;
  toastDone = onExpire;
  const hide = () => {
    clearTimeout(toastTimer);
    element.hidden = true;
  };
  toastTimer = setTimeout(() => {
    hide();
    finishToast();
  }, duration);
}

/** Run the pending expiry of the toast now (a new toast, or the page going away). */
export function finishToast() {
  const done = toastDone;
  toastDone = null;
  if (done) done();
}

export function confirmDialog({ title, text, ok }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = ok;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) =>
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }),
  );
}
