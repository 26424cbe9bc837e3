// Keyboard shortcuts: one table from key to command, and the rules for when a
// key belongs to the page rather than to what has focus.

const KEYS = {
  j: "next",
  ArrowDown: "next",
  k: "previous",
  ArrowUp: "previous",
  Enter: "open",
  o: "open",
  Delete: "remove",
  Backspace: "remove", // the Mac's "delete" key
  "#": "remove",
  r: "toggleRead",
  x: "select",
  t: "tag",
  "/": "search",
  "[": "newerPage",
  "]": "olderPage",
  1: "tab",
  2: "tab",
  3: "tab",
  4: "tab",
  5: "tab",
  6: "tab",
  Escape: "escape",
  "?": "help",
};

/**
 * Call `commands[name]({key, inView})` for the keys above. In the search box
 * only Escape (`leaveSearch`) and ArrowDown (back to the list) count.
 */
export function bindKeys({ searchInput, listElement, viewElement, commands }) {
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target === searchInput) {
      if (event.key === "Escape") commands.leaveSearch();
      else if (event.key === "ArrowDown") listElement.focus({ preventScroll: true });
      else return;
      event.preventDefault();
      return;
    }
    if (target.closest("input, textarea, select, [contenteditable], dialog")) return;
    const command = KEYS[event.key];
    if (!command) return;
    const inView = viewElement.contains(target);
    // In the message pane the arrows scroll it, and Enter presses the focused button or link.
    if (inView && (event.key === "ArrowDown" || event.key === "ArrowUp")) return;
    if (event.key === "Enter" && target.closest("button, a")) return;
    event.preventDefault();
    commands[command]({ key: event.key, inView });
  });
}
