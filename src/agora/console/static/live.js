// Live updates, in one place: a session's seat map and an order, as they change.
//
// Seats: the WebSocket /ws/sessions/{id} (a snapshot, then runs of deltas; a close with 1001 or a
// dropped link reconnects with ?since=<last version>), and the Server-Sent Events stream
// /api/sessions/{id}/seats/stream when a WebSocket cannot be opened. An order: the WebSocket
// /ws/orders/{id} (the token sent as the first message, not in the address), else
// GET /api/orders/{id} with If-None-Match and `Prefer: wait=20` (one request per change).
// SOCKETS false keeps to the HTTP ways (an entry that serves no WebSocket).

import { accessToken, request } from "./api.js";

export const SOCKETS = true;
const FINAL = new Set(["CONFIRMED", "CANCELLED", "EXPIRED"]);

function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

/** Follow a session's seats: onSnapshot(map) with the whole map (again after a gap),
 *  onDelta(delta) for each change in version order, onLink(state) with "live", "reconnecting"
 *  or "gone" (an unknown session). Returns {close()}. */
export function watchSeats(sessionId, { onSnapshot, onDelta, onLink = () => {} }) {
  let version = null;
  let closed = false;
  let current = null;

  const take = (type, body) => {
    if (type === "snapshot") {
      version = body.version;
      onSnapshot(body);
    } else if (type === "delta") {
      if (version !== null && body.version <= version) return; // seen already
      version = body.version;
      onDelta(body);
    }
  };

  const viaEvents = () => {
    const since = version === null ? "" : `?since=${version}`;
    const source = new EventSource(`/api/sessions/${encodeURIComponent(sessionId)}/seats/stream${since}`);
    source.addEventListener("open", () => onLink("live"));
    source.addEventListener("snapshot", (event) => take("snapshot", JSON.parse(event.data)));
    source.addEventListener("delta", (event) => take("delta", JSON.parse(event.data)));
    // EventSource reconnects by itself, sending Last-Event-ID
    source.addEventListener("error", () => onLink(source.readyState === EventSource.CLOSED ? "gone" : "reconnecting"));
    current = { close: () => source.close() };
  };

  const viaSocket = (delay = 250) => {
    const since = version === null ? "" : `?since=${version}`;
    const socket = new WebSocket(socketUrl(`/ws/sessions/${encodeURIComponent(sessionId)}${since}`));
    let opened = false;
    socket.addEventListener("open", () => { opened = true; onLink("live"); });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "snapshot") take("snapshot", message.map);
      else if (message.type === "deltas") for (const delta of message.deltas) take("delta", delta);
    });
    socket.addEventListener("close", (event) => {
      if (closed) return;
      if (event.code === 4404) { onLink("gone"); return; }
      if (!opened) { viaEvents(); return; } // no WebSocket here: the event stream instead
      onLink("reconnecting");
      setTimeout(() => { if (!closed) viaSocket(Math.min(delay * 2, 5000)); }, delay);
    });
    current = { close: () => socket.close(1000) };
  };

  if (SOCKETS && "WebSocket" in window) viaSocket(); else viaEvents();
  return { close() { closed = true; if (current) current.close(); } };
}

/** Follow an order: onOrder(order) now and at every change, until it is final or close()d. */
export function watchOrder(orderId, onOrder) {
  let closed = false;
  let socket = null;
  const path = `/api/orders/${encodeURIComponent(orderId)}`;

  const poll = async () => {
    let etag = null;
    for (let pause = 500; !closed;) {
      try {
        const headers = etag ? { "If-None-Match": etag, Prefer: "wait=20" } : {};
        const answer = await request("GET", path, { headers, raw: true });
        if (closed) return;
        if (answer.status === 200) {
          etag = answer.headers.get("ETag");
          const order = await answer.response.json();
          onOrder(order);
          if (FINAL.has(order.status)) return;
          pause = 500;
        } else if (answer.status !== 304) {
          throw new Error(`HTTP ${answer.status}`);
        }
      } catch {
        if (closed) return;
        await new Promise((resolve) => setTimeout(resolve, pause));
        pause = Math.min(pause * 2, 10000);
      }
    }
  };

  const viaSocket = () => {
    socket = new WebSocket(socketUrl(`${path.replace("/api/", "/ws/")}`));
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      socket.send(JSON.stringify({ type: "auth", token: accessToken() }));
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "order") {
        onOrder(message.order);
        if (FINAL.has(message.order.status)) socket.close(1000);
      }
    });
    socket.addEventListener("close", (event) => {
      if (closed || event.code === 1000) return;
      if (!opened || event.code === 4401 || event.code === 4403) { poll(); return; }
      setTimeout(() => { if (!closed) viaSocket(); }, 500);
    });
  };

  if (SOCKETS && "WebSocket" in window) viaSocket(); else poll();
  return { close() { closed = true; if (socket) socket.close(1000); } };
}
