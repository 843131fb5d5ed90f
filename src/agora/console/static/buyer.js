// The buyer's pages: events, a session's live seat map with holds and payment, orders
// followed live, tickets with their QR codes, waiting lists.

import { api, imageUrl, whenKnown } from "./api.js";
import { announce, clear, field, h, money, onSubmit, problemBox, showProblem, when, put } from "./dom.js";
import { watchOrder, watchSeats } from "./live.js";
import { go, needUser, onLeave, query } from "./router.js";
import { legend, SeatMap } from "./seatmap.js";

/** The mock provider's test cards (docs/api.md). */
export const TEST_CARDS = [
  ["tok_visa", "Visa test card (succeeds)"],
  ["tok_chargeDeclined", "Declined test card"],
  ["tok_processing_error", "Flaky test card (fails twice, then succeeds)"],
];
// what another service may not have learned yet, just after an organizer's change
const NOT_YET = ["unknown-session", "sales-not-open"];

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Place an order (goods and/or tickets); answers the order as accepted (PENDING). */
export function placeOrder(body) {
  const key = newKey();
  return whenKnown(() => api("POST", "/api/orders", { body, headers: { "Idempotency-Key": key } }), NOT_YET, 10);
}

export async function eventsPage(main) {
  const q = query().get("q") || "";
  const form = h("form", { role: "search", class: "row", "aria-label": "Search events" },
    field("Search events", { name: "q", type: "search", value: q }),
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go(`/events?q=${encodeURIComponent(new FormData(form).get("q"))}`);
  });
  put(main, h("h1", {}, "Events"), form);
  const found = await api("GET", `/api/events?page_size=50${q ? `&q=${encodeURIComponent(q)}` : ""}`);
  if (!found.items.length) { put(main, h("p", {}, "No events found.")); return; }
  put(main, h("ul", { class: "grid", "aria-label": "Events" }, found.items.map((event) =>
    h("li", { class: "card" },
      h("h2", {}, h("a", { href: `#/events/${event.id}` }, event.title)),
      h("p", { class: "muted" }, event.sessions.map((s) => when(s.starts_at)).join(" · ")),
      h("p", {}, event.categories.map((c) => `${c.name} ${money(c.price, event.currency)}`).join(", "))))));
}

export async function eventPage(main, eventId) {
  const event = await api("GET", `/api/events/${encodeURIComponent(eventId)}`);
  put(main, h("h1", {}, event.title),
    event.description ? h("p", {}, event.description) : null,
    h("h2", {}, "Prices"),
    h("ul", {}, event.categories.map((c) => h("li", {}, `${c.name}: ${money(c.price, event.currency)}`))),
    h("h2", {}, "Sessions"),
    h("ul", { class: "grid" }, event.sessions.map((session) =>
      h("li", { class: "card" },
        h("p", {}, h("strong", {}, when(session.starts_at))),
        h("p", {}, session.sales.cancelled_at ? "Called off" : session.sales.open ? "On sale" : "Not on sale"),
        h("a", { href: `#/sessions/${session.id}` }, `Seats for ${when(session.starts_at)}`)))));
}

function countdown(expiresAt, onOut) {
  const text = h("span", { class: "countdown", role: "timer", "aria-live": "off" });
  let warned = false;
  const tick = () => {
    const left = Math.max(0, Math.round((new Date(expiresAt) - Date.now()) / 1000));
    text.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    text.setAttribute("aria-label", `${left} seconds left to pay`);
    if (left <= 60 && !warned) { warned = true; if (left > 0) announce(`${left} seconds left to pay`); }
    if (left === 0) { clearInterval(timer); if (onOut) onOut(); }
  };
  const timer = setInterval(tick, 1000);
  tick();
  return { element: text, stop: () => clearInterval(timer) };
}

function payForm(order, problem) {
  const form = h("form", { "aria-label": "Pay" },
    field("Card", { name: "payment_token" }, "select",
      TEST_CARDS.map(([token, label]) => h("option", { value: token }, label))),
    h("button", { type: "submit" }, `Pay ${money(order.total, order.currency)}`));
  return onSubmit(form, problem, async ({ payment_token }) => {
    await api("POST", `/api/orders/${order.id}/pay`, { body: { payment_token } });
    announce("Payment sent");
  });
}

async function ticketsOf(orderId, count) {
  // tickets are issued once the order is confirmed: wait for all of them, for a while
  const deadline = Date.now() + 20000;
  for (;;) {
    const found = await api("GET", "/api/tickets?page_size=100");
    const mine = found.items.filter((t) => t.order_id === orderId);
    if (mine.length >= count || Date.now() > deadline) return mine;
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
}

function place(ticket) {
  return ticket.seat_id ? `Seat ${ticket.seat_id}` : `Area ${ticket.area_id}`;
}

export function ticketList(tickets) {
  return h("ul", { class: "tickets", "aria-label": "Tickets" }, tickets.map((ticket) => {
    const image = h("img", { alt: `QR code of the ticket for ${place(ticket)}` });
    imageUrl(`/api/tickets/${ticket.id}/qr.png`).then((url) => { image.src = url; })
      .catch((error) => image.replaceWith(problemBox(error)));
    return h("li", { class: "card ticket", "data-ticket-id": ticket.id },
      h("p", {}, h("strong", {}, place(ticket)), ` · ${ticket.category} · ${money(ticket.price, ticket.currency)}`),
      h("p", { class: "muted" }, ticket.state === "VALID" ? (ticket.checked_in_at ? `Checked in ${when(ticket.checked_in_at)}` : "Valid") : "Cancelled"),
      image);
  }));
}

/** An order followed live in `box`: its status, the hold's countdown and payment while it is
 *  reserved, its tickets once confirmed. `onChange(order)` at every change. */
export function followOrder(box, orderId, onChange = () => {}) {
  let timer = null;
  let shown = null;
  const problem = h("div", { class: "slot" });
  const watch = watchOrder(orderId, async (order) => {
    if (shown === order.status) { onChange(order); return; }
    shown = order.status;
    if (timer) { timer.stop(); timer = null; }
    clear(box);
    put(box, h("h2", {}, "Order ", h("span", { class: `status status-${order.status}`, "data-order-status": order.status }, order.status)),
      h("p", { class: "muted" }, `Total ${money(order.total, order.currency)} · `, h("a", { href: `#/orders/${order.id}` }, "order page")));
    announce(`Order ${order.status.toLowerCase()}`);
    if (order.status === "PENDING") put(box, h("p", {}, "Holding your places…"));
    if (order.status === "RESERVED") {
      if (order.hold_expires_at) {
        timer = countdown(order.hold_expires_at);
        put(box, h("p", {}, "Held for you: pay within ", timer.element));
      }
      put(box, problem, payForm(order, problem));
    }
    if (order.status === "CANCELLED" || order.status === "EXPIRED") {
      put(box, h("p", { class: "notice" }, order.status === "EXPIRED" ? "The hold ran out: the places are free again." : `Cancelled: ${order.cancel_reason || "no reason given"}`));
    }
    onChange(order);
    if (order.status === "CONFIRMED") {
      const count = order.places.length;
      if (count) {
        const slot = h("div", {}, h("p", {}, "Issuing your tickets…"));
        put(box, h("h2", {}, "Your tickets"), slot);
        const tickets = await ticketsOf(order.id, count);
        put(clear(slot), ticketList(tickets));
        announce(`${tickets.length} tickets issued`);
      } else {
        put(box, h("p", {}, "Paid. Thank you!"));
      }
    }
  });
  return { close() { watch.close(); if (timer) timer.stop(); } };
}

export async function sessionPage(main, sessionId) {
  const heading = h("h1", {}, "Seats");
  const link = h("p", { class: "muted", "aria-live": "polite" }, "Connecting…");
  const mapSlot = h("div", {}, h("p", {}, "Loading the seat map…"));
  const areasSlot = h("div", {});
  const side = h("aside", { class: "card", "aria-label": "Your selection" });
  const orderBox = h("section", { "aria-label": "Your order", class: "card", hidden: true, tabindex: "-1" });
  const waitSlot = h("div", {});
  put(main, heading, link, h("div", { class: "columns" },
    h("div", {}, mapSlot, legend(), areasSlot), h("div", {}, side, orderBox, waitSlot)));

  let event = null;
  let map = null;
  let latest = null;
  let order = null;
  let follow = null;
  const prices = () => Object.fromEntries(event.categories.map((c) => [c.name, c.price]));

  const drawSide = () => {
    clear(side);
    const picked = map ? [...map.picked] : [];
    const total = picked.reduce((sum, id) => sum + Number(prices()[map.seats.get(id).category]), 0);
    const problem = h("div", { class: "slot" });
    const holdButton = h("button", { type: "button", disabled: !picked.length }, picked.length ? `Hold ${picked.length} seat${picked.length > 1 ? "s" : ""}` : "Pick seats on the map");
    holdButton.addEventListener("click", () => hold({ session_id: sessionId, seat_ids: picked }, problem));
    put(side, h("h2", {}, "Your selection"),
      picked.length ? h("ul", { "aria-label": "Picked seats" }, picked.map((id) => h("li", {}, `${map.label(id)} (${map.seats.get(id).category})`))) : h("p", { class: "muted" }, "No seat picked."),
      picked.length ? h("p", {}, `Total ${money(total, event.currency)}`) : null,
      holdButton, problem);
    const best = h("form", { "aria-label": "Best available", class: "row" },
      field("Category", { name: "category" }, "select", event.categories.map((c) => h("option", { value: c.name }, `${c.name} (${money(c.price, event.currency)})`))),
      field("How many", { name: "quantity", type: "number", min: 1, max: event.max_per_order, value: 2, required: true }),
      h("button", { type: "submit" }, "Hold best available"));
    const bestProblem = h("div", { class: "slot" });
    onSubmit(best, bestProblem, ({ category, quantity }) =>
      hold({ session_id: sessionId, category, quantity: Number(quantity) }, bestProblem));
    put(side, h("h2", {}, "Or the best places"), best, bestProblem);
  };

  const hold = async (ticket, problem) => {
    if (!needUser(side)) return;
    showProblem(problem, null);
    try {
      order = await placeOrder({ tickets: [ticket] });
    } catch (error) {
      showProblem(problem, error);
      return;
    }
    announce("Holding your places");
    if (follow) follow.close();
    orderBox.hidden = false;
    orderBox.focus(); // the side panel is drawn anew: keyboard users go on from the order
    follow = followOrder(orderBox, order.id, (changed) => {
      order = changed;
      if (!map) return;
      const seats = changed.places.map((p) => p.seat_id).filter(Boolean);
      map.setMine(changed.status === "RESERVED" || changed.status === "CONFIRMED" ? seats : []);
      if (changed.status !== "PENDING") { map.clearPicked(); drawSide(); }
    });
  };

  const drawAreas = () => {
    clear(areasSlot);
    const areas = Object.entries(latest.areas);
    if (areas.length) {
      const names = Object.fromEntries((latest.plan.areas || []).map((a) => [a.id, a.name]));
      put(areasSlot, h("h2", {}, "Standing and other areas"), h("ul", {}, areas.map(([id, a]) =>
        h("li", { "data-area-id": id }, `${names[id] || id}: ${a.available} of ${a.capacity} left`))));
    }
  };

  const drawWaitlist = () => {
    clear(waitSlot);
    if (!event) return;
    const free = new Set();
    for (const [id, state] of Object.entries(latest.seats)) if (state === "available") free.add(map.seats.get(id)?.category);
    for (const area of latest.plan.areas || []) if (latest.areas[area.id]?.available) free.add(area.category);
    const soldOut = event.categories.map((c) => c.name).filter((name) => !free.has(name));
    if (!soldOut.length || !latest.sales.open) return;
    const problem = h("div", { class: "slot" });
    const form = h("form", { "aria-label": "Waiting list", class: "row" },
      field("Category", { name: "category" }, "select", soldOut.map((name) => h("option", { value: name }, name))),
      field("Places", { name: "quantity", type: "number", min: 1, max: 20, value: 1, required: true }),
      h("button", { type: "submit" }, "Join the waiting list"));
    onSubmit(form, problem, async ({ category, quantity }) => {
      if (!needUser(waitSlot)) return;
      const entry = await api("POST", `/api/sessions/${sessionId}/waitlist`, { body: { category, quantity: Number(quantity) } });
      put(clear(waitSlot), h("div", { class: "card notice", role: "status" },
        `On the waiting list for ${entry.quantity} ${entry.category}: ${entry.ahead ?? 0} ahead of you. We email you when places come back; `,
        h("a", { href: "#/tickets" }, "offers show on My tickets"), "."));
      announce("You joined the waiting list");
    });
    put(waitSlot, h("section", { class: "card", "aria-label": "Sold out" },
      h("h2", {}, "Sold out"), h("p", {}, `No ${soldOut.join(" or ")} places left.`), form, problem));
  };

  const stream = watchSeats(sessionId, {
    onLink: (state) => { link.textContent = state === "live" ? "Live: the map changes as others buy." : state === "gone" ? "This session does not exist." : "Reconnecting…"; },
    onSnapshot: async (snapshot) => {
      latest = snapshot;
      if (!event) {
        event = await api("GET", `/api/events/${snapshot.event_id}`);
        const session = event.sessions.find((s) => s.id === sessionId);
        heading.textContent = `${event.title}, ${session ? when(session.starts_at) : ""}`;
        document.title = `${heading.textContent} · Agora`;
      }
      if (!map) {
        map = new SeatMap(snapshot.plan, { onPick: () => drawSide(), title: `Seats of ${event.title}` });
        put(clear(mapSlot), map.element);
        drawSide();
      }
      map.setAll(snapshot.seats);
      if (!snapshot.sales.open) mapSlot.prepend(h("p", { class: "notice" }, "Sales are not open for this session."));
      drawAreas();
      drawWaitlist();
    },
    onDelta: (delta) => {
      if (!latest) return;
      if (delta.seat_id) {
        latest.seats[delta.seat_id] = delta.state;
        if (map) { map.set(delta.seat_id, delta.state); if (!map.picked.size) return; drawSide(); }
      } else if (delta.area_id) {
        latest.areas[delta.area_id] = { ...latest.areas[delta.area_id], available: delta.available };
        drawAreas();
      } else if (delta.sales) {
        latest.sales = delta.sales;
      }
      if (map) drawWaitlist();
    },
  });
  onLeave(() => { stream.close(); if (follow) follow.close(); });
}

export async function orderPage(main, orderId) {
  if (!needUser(main)) return;
  const box = h("section", { class: "card", "aria-label": "Order" });
  const lines = h("div", {});
  put(main, h("h1", {}, "Order"), h("p", { class: "muted" }, orderId), box, lines);
  const follow = followOrder(box, orderId, (order) => {
    clear(lines);
    const rows = [
      ...order.items.map((i) => [i.product_id, i.quantity, money(i.unit_price, order.currency)]),
      ...order.tickets.map((t) => [`${t.category} tickets${t.seat_ids.length ? ` (${t.seat_ids.join(", ")})` : ""}`, t.quantity, money(t.unit_price, order.currency)]),
    ];
    put(lines, h("table", {}, h("caption", { class: "visually-hidden" }, "Order lines"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "What"), h("th", { scope: "col" }, "Quantity"), h("th", { scope: "col" }, "Unit price"))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))));
  });
  onLeave(() => follow.close());
}

export async function ordersPage(main) {
  if (!needUser(main)) return;
  put(main, h("h1", {}, "My orders"));
  const found = await api("GET", "/api/orders?page_size=50");
  if (!found.items.length) { put(main, h("p", {}, "No orders yet.")); return; }
  put(main, h("table", {}, h("caption", { class: "visually-hidden" }, "Orders, newest first"),
    h("thead", {}, h("tr", {}, ["Placed", "Status", "Total", ""].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, found.items.map((o) => h("tr", {},
      h("td", {}, when(o.created_at)),
      h("td", {}, h("span", { class: `status status-${o.status}` }, o.status)),
      h("td", {}, money(o.total, o.currency)),
      h("td", {}, h("a", { href: `#/orders/${o.id}` }, "Open")))))));
}

export async function ticketsPage(main) {
  if (!needUser(main)) return;
  put(main, h("h1", {}, "My tickets"));
  const found = await api("GET", "/api/tickets?page_size=100");
  put(main, found.items.length ? ticketList(found.items) : h("p", {}, "No tickets yet."));
  const waiting = await api("GET", "/api/waitlist");
  if (waiting.items.length) {
    put(main, h("h2", {}, "Waiting lists"), h("ul", {}, waiting.items.map((entry) => {
      const item = h("li", {}, `${entry.quantity} ${entry.category}: ${entry.state}`,
        entry.state === "waiting" ? ` (${entry.ahead} ahead)` : "");
      if (entry.state === "offered" && entry.offer) {
        const problem = h("div", { class: "slot" });
        const take = h("button", { type: "button" }, "Take the offered places");
        take.addEventListener("click", async () => {
          try {
            const order = await placeOrder({ tickets: [entry.offer.ticket] });
            go(`/orders/${order.id}`);
          } catch (error) { showProblem(problem, error); }
        });
        put(item, " ", take, problem);
      }
      return item;
    })));
  }
}
