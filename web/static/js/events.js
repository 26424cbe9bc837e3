// Live updates over the /api/events websocket (Mailpit's frames), with
// reconnection and exponential backoff so a restarted server is picked up.

const FIRST_DELAY = 500;
const MAX_DELAY = 15000;

/**
 * connect({onEvent(frame), onStatus("live"|"offline", {reconnected})}) -> {retryNow(), close()}
 * After a reconnection the caller should reload: events may have been missed.
 */
export function connectEvents({ onEvent, onStatus }) {
  let socket = null;
  let delay = FIRST_DELAY;
  let timer = null;
  let closed = false;
  let everOpened = false;

  function open() {
    timer = null;
    const url = new URL("api/events", document.baseURI);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      delay = FIRST_DELAY;
      onStatus("live", { reconnected: everOpened });
      everOpened = true;
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // not a frame of ours
      }
      if (frame && typeof frame.Type === "string") onEvent(frame);
    });
    socket.addEventListener("close", () => {
      socket = null;
      if (closed) return;
      onStatus("offline", {});
      schedule();
    });
  }

  function schedule() {
    if (timer !== null || closed) return;
    // Jitter keeps many open tabs from reconnecting in lockstep.
    timer = setTimeout(open, delay * (0.8 + Math.random() * 0.4));
    delay = Math.min(delay * 2, MAX_DELAY);
  }

  // Back online or back to the tab: try at once instead of waiting out the backoff.
  function retryNow() {
    if (socket || closed) return;
    clearTimeout(timer);
    timer = null;
    delay = FIRST_DELAY;
    open();
  }
  window.addEventListener("online", retryNow);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") retryNow();
  });

  open();
  return {
    retryNow,
    close() {
      closed = true;
      clearTimeout(timer);
      if (socket) socket.close();
    },
  };
}
