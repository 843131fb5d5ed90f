// The organizer's pages: stores, venues (rows and seats, or a plan file), events with their
// categories and sessions, sales opened and closed, and a live sales panel per session.

import { api, currentUser, whenKnown } from "./api.js";
import { announce, clear, field, h, money, onSubmit, showProblem, when, put } from "./dom.js";
import { watchSeats } from "./live.js";
import { go, needUser, onLeave, query } from "./router.js";
import { legend, SeatMap } from "./seatmap.js";

// the venues met in this visit, by store (the API lists a store's events, not its venues)
const venues = new Map();
// a store just opened is not known to ticketing at once
const STORE_NOT_YET = ["store-not-found"];

function remember(venue) {
  if (!venues.has(venue.store_id)) venues.set(venue.store_id, new Map());
  venues.get(venue.store_id).set(venue.id, venue);
}

async function storeVenues(storeId, events) {
  for (const id of new Set(events.map((e) => e.venue_id))) {
    if (!venues.get(storeId)?.has(id)) remember(await api("GET", `/api/venues/${encodeURIComponent(id)}`));
  }
  return [...(venues.get(storeId)?.values() || [])];
}

export async function organizerPage(main) {
  if (!needUser(main)) return;
  const user = currentUser();
  put(main, h("h1", {}, "Organizer"));
  if (user.role !== "seller" && user.role !== "admin") {
    put(main, h("p", {}, "Only seller accounts run stores. ", h("a", { href: "#/signup" }, "Create a seller account"), "."));
    return;
  }
  const stores = (await api("GET", `/api/stores?seller=${encodeURIComponent(user.id)}&page_size=100`)).items;
  const chosen = stores.find((s) => s.id === query().get("store")) || stores[0];
  const problem = h("div", { class: "slot" });
  const open = h("form", { "aria-label": "Open a store" },
    field("Store name", { name: "name", required: true, maxlength: 200 }),
    field("Description", { name: "description" }, "textarea"),
    problem, h("button", { type: "submit" }, "Open the store"));
  onSubmit(open, problem, async (body) => {
    const store = await api("POST", "/api/stores", { body });
    announce(`Store ${store.name} opened`);
    go(`/organizer?store=${store.id}`);
  });
  put(main, h("section", { class: "card", "aria-labelledby": "stores-title" },
    h("h2", { id: "stores-title" }, "Your stores"),
    stores.length ? h("ul", {}, stores.map((s) => h("li", {},
      s.id === chosen?.id ? h("strong", { "aria-current": "true" }, s.name) : h("a", { href: `#/organizer?store=${s.id}` }, s.name))))
      : h("p", { class: "muted" }, "No store yet: open one to sell."),
    h("h3", {}, "Open a store"), open));
  if (chosen) await storeSections(main, chosen);
}

async function storeSections(main, store) {
  const events = (await api("GET", `/api/events?store=${encodeURIComponent(store.id)}&upcoming=false&page_size=100`)).items;
  const known = await storeVenues(store.id, events);
  put(main, h("h2", {}, `Store: ${store.name}`));
  put(main, venueSection(store, known), eventSection(store, known), productSection(store));
  put(main, h("section", { class: "card", "aria-labelledby": "events-title" },
    h("h2", { id: "events-title" }, "Events and sales"),
    events.length ? h("ul", {}, events.map((event) => h("li", {},
      h("strong", {}, event.title), ` (${known.find((v) => v.id === event.venue_id)?.name || event.venue_id})`,
      h("ul", {}, event.sessions.map((session) => sessionItem(event, session))))))
      : h("p", { class: "muted" }, "No event yet.")));
}

function sessionItem(event, session) {
  const problem = h("div", { class: "slot" });
  const state = h("span", { "data-sales": session.sales.open ? "open" : "closed" }, session.sales.open ? "on sale" : "not on sale");
  const toggle = h("button", { type: "button", class: "secondary" }, session.sales.open ? `Close sales of ${when(session.starts_at)}` : `Open sales of ${when(session.starts_at)}`);
  toggle.addEventListener("click", async () => {
    showProblem(problem, null);
    toggle.disabled = true;
    try {
      const changed = await api(session.sales.open ? "DELETE" : "POST", `/api/sessions/${session.id}/sales`);
      session.sales = changed.sales;
      state.textContent = changed.sales.open ? "on sale" : "not on sale";
      state.dataset.sales = changed.sales.open ? "open" : "closed";
      toggle.textContent = changed.sales.open ? `Close sales of ${when(session.starts_at)}` : `Open sales of ${when(session.starts_at)}`;
      announce(`Sales ${changed.sales.open ? "opened" : "closed"} for ${event.title}, ${when(session.starts_at)}`);
    } catch (error) {
      showProblem(problem, error);
    } finally {
      toggle.disabled = false;
    }
  });
  return h("li", { "data-session-id": session.id },
    `${when(session.starts_at)}: `, state, " ", toggle, " ",
    h("a", { href: `#/organizer/sessions/${session.id}` }, `Live sales of ${when(session.starts_at)}`), problem);
}

function venueSection(store, known) {
  const problem = h("div", { class: "slot" });
  const rowsBox = h("fieldset", {}, h("legend", {}, "Rows and seats"),
    field("Rows (A-J, or 1-40; the first is the best)", { name: "rows", value: "A-H" }),
    field("Seats per row", { name: "seats_per_row", type: "number", min: 1, max: 500, value: 12 }),
    field("Category", { name: "category", value: "standard" }));
  const fileBox = h("fieldset", { hidden: true }, h("legend", {}, "Plan file"),
    field("Seating plan (JSON, docs/seating-plan.md)", { name: "plan", type: "file", accept: "application/json,.json" }));
  const kind = h("fieldset", {}, h("legend", {}, "Seating"),
    h("label", {}, h("input", { type: "radio", name: "kind", value: "rows", checked: true }), " rows and seats"),
    h("label", {}, h("input", { type: "radio", name: "kind", value: "file" }), " upload a plan file"));
  kind.addEventListener("change", () => {
    const rows = kind.querySelector("input:checked").value === "rows";
    rowsBox.hidden = !rows;
    fileBox.hidden = rows;
  });
  const form = h("form", { "aria-label": "Add a venue" },
    field("Venue name", { name: "name", required: true }), kind, rowsBox, fileBox, problem,
    h("button", { type: "submit" }, "Add the venue"));
  onSubmit(form, problem, async (fields, node) => {
    const body = { name: fields.name };
    if (fields.kind === "file") {
      const file = node.querySelector("input[type=file]").files[0];
      if (!file) throw new Error("Choose a plan file first.");
      try { body.plan = JSON.parse(await file.text()); } catch { throw new Error(`${file.name} is not JSON.`); }
    } else {
      body.rows = { rows: fields.rows, seats_per_row: Number(fields.seats_per_row), category: fields.category };
    }
    const venue = await whenKnown(() => api("POST", `/api/stores/${store.id}/venues`, { body }), STORE_NOT_YET);
    remember(venue);
    announce(`Venue ${venue.name} added: ${venue.seats} seats`);
    go(`/organizer?store=${store.id}`);
  });
  return h("section", { class: "card", "aria-labelledby": "venues-title" },
    h("h2", { id: "venues-title" }, "Venues"),
    known.length ? h("ul", {}, known.map((v) => h("li", {}, `${v.name}: ${v.seats} seats, ${v.capacity} places`))) : h("p", { class: "muted" }, "No venue yet."),
    h("h3", {}, "Add a venue"), form);
}

function eventSection(store, known) {
  if (!known.length) return h("section", { class: "card" }, h("h2", {}, "Schedule an event"), h("p", { class: "muted" }, "Add a venue first."));
  const problem = h("div", { class: "slot" });
  const prices = h("fieldset", {}, h("legend", {}, "Prices by category"));
  const venueSelect = field("Venue", { name: "venue_id" }, "select", known.map((v) => h("option", { value: v.id }, v.name)));
  const drawPrices = () => {
    const venue = known.find((v) => v.id === venueSelect.querySelector("select").value);
    put(clear(prices), h("legend", {}, "Prices by category"),
      venue.plan.categories.map((name) => field(`Price of ${name}`, { name: `price:${name}`, type: "number", min: 0, step: "0.01", required: true, value: "30.00" })));
  };
  venueSelect.addEventListener("change", drawPrices);
  drawPrices();
  const sessions = h("fieldset", {}, h("legend", {}, "Sessions"));
  const addSession = () => {
    const start = new Date(Date.now() + (30 + sessions.querySelectorAll("input").length) * 86400000);
    start.setHours(20, 0, 0, 0);
    const local = new Date(start - start.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
    put(sessions, field(`Session ${sessions.querySelectorAll("input").length + 1} starts`, { name: `session:${sessions.querySelectorAll("input").length}`, type: "datetime-local", required: true, value: local }));
  };
  addSession();
  const more = h("button", { type: "button", class: "secondary" }, "Add a session");
  more.addEventListener("click", addSession);
  const form = h("form", { "aria-label": "Schedule an event" },
    field("Title", { name: "title", required: true }),
    field("Description", { name: "description" }, "textarea"),
    venueSelect,
    field("Currency", { name: "currency", value: "EUR", maxlength: 3, required: true }),
    prices, sessions, more,
    field("Hold minutes (how long an unpaid hold lasts)", { name: "hold_minutes", type: "number", min: 1, value: 10 }),
    problem, h("button", { type: "submit" }, "Schedule the event"));
  onSubmit(form, problem, async (fields) => {
    const body = {
      title: fields.title, description: fields.description || "", venue_id: fields.venue_id,
      currency: fields.currency.toUpperCase(), hold_minutes: Number(fields.hold_minutes),
      categories: Object.entries(fields).filter(([k]) => k.startsWith("price:")).map(([k, v]) => ({ name: k.slice(6), price: v })),
      sessions: Object.entries(fields).filter(([k]) => k.startsWith("session:")).map(([, v]) => ({ starts_at: new Date(v).toISOString() })),
    };
    const event = await api("POST", `/api/stores/${store.id}/events`, { body });
    announce(`Event ${event.title} scheduled with ${event.sessions.length} sessions`);
    go(`/organizer?store=${store.id}`);
  });
  return h("section", { class: "card", "aria-labelledby": "schedule-title" }, h("h2", { id: "schedule-title" }, "Schedule an event"), form);
}

function productSection(store) {
  const problem = h("div", { class: "slot" });
  const form = h("form", { "aria-label": "List a product" },
    field("Product name", { name: "name", required: true }),
    field("Product description", { name: "description" }, "textarea"),
    h("div", { class: "row" },
      field("Price", { name: "price", type: "number", min: 0, step: "0.01", required: true }),
      field("Product currency", { name: "currency", value: "EUR", maxlength: 3, required: true }),
      field("Stock", { name: "initial_stock", type: "number", min: 0, value: 10, required: true })),
    problem, h("button", { type: "submit" }, "List the product"));
  onSubmit(form, problem, async (fields) => {
    const product = await api("POST", `/api/stores/${store.id}/products`, {
      body: { ...fields, currency: fields.currency.toUpperCase(), initial_stock: Number(fields.initial_stock) },
    });
    announce(`Product ${product.name} listed`);
    go(`/organizer?store=${store.id}`);
  });
  return h("section", { class: "card", "aria-labelledby": "products-title" },
    h("h2", { id: "products-title" }, "Products"),
    h("p", {}, h("a", { href: `#/stores/${store.id}` }, "The store's products")), form);
}

export async function salesPage(main, sessionId) {
  if (!needUser(main)) return;
  const heading = h("h1", {}, "Live sales");
  const figures = h("dl", { class: "figures", "aria-label": "Sales figures" });
  const mapSlot = h("div", {});
  const link = h("p", { class: "muted" }, "Connecting…");
  put(main, heading, link, figures, mapSlot, legend());
  let event = null;
  let map = null;
  let latest = null;
  let issued = "…";
  let waiting = "…";
  const figure = (name, value, key) => h("div", { class: "figure" }, h("dt", {}, name), h("dd", { "data-figure": key }, value));
  const draw = () => {
    const counts = { available: 0, held: 0, sold: 0 };
    const price = Object.fromEntries(event.categories.map((c) => [c.name, Number(c.price)]));
    let revenue = 0;
    for (const [id, state] of Object.entries(latest.seats)) {
      counts[state] = (counts[state] || 0) + 1;
      if (state === "sold") revenue += price[map.seats.get(id)?.category] || 0;
    }
    const taken = Object.values(latest.areas).reduce((n, a) => n + a.capacity - a.available, 0);
    put(clear(figures), 
      figure("Seats sold", counts.sold, "sold"), figure("Seats held", counts.held, "held"),
      figure("Seats available", counts.available, "available"), figure("Area places taken", taken, "area-taken"),
      figure("Revenue from seats sold", money(revenue, event.currency), "revenue"),
      figure("Tickets issued", issued, "tickets"), figure("Waiting list places", waiting, "waiting"),
      figure("Sales", latest.sales.open ? "open" : "closed", "sales"));
  };
  let refreshing = false;
  const refreshApi = async () => {
    if (refreshing) return;
    refreshing = true;
    try {
      const [checkins, list] = await Promise.all([
        api("GET", `/api/sessions/${sessionId}/checkins`),
        api("GET", `/api/sessions/${sessionId}/waitlist`),
      ]);
      issued = checkins.tickets;
      waiting = list.tally.filter((t) => t.state === "waiting").reduce((n, t) => n + t.places, 0);
    } catch { /* the figures of the map stand */ }
    refreshing = false;
    if (event && latest) draw();
  };
  const stream = watchSeats(sessionId, {
    onLink: (state) => { link.textContent = state === "live" ? "Live" : "Reconnecting…"; },
    onSnapshot: async (snapshot) => {
      latest = snapshot;
      if (!event) {
        event = await api("GET", `/api/events/${snapshot.event_id}`);
        const session = event.sessions.find((s) => s.id === sessionId);
        heading.textContent = `Live sales: ${event.title}, ${session ? when(session.starts_at) : ""}`;
      }
      if (!map) { map = new SeatMap(snapshot.plan, { title: `Seats of ${event.title}` }); put(mapSlot, map.element); }
      map.setAll(snapshot.seats);
      draw();
      refreshApi();
    },
    onDelta: (delta) => {
      if (!latest || !event) return;
      if (delta.seat_id) { latest.seats[delta.seat_id] = delta.state; map.set(delta.seat_id, delta.state); }
      if (delta.area_id) latest.areas[delta.area_id] = { ...latest.areas[delta.area_id], available: delta.available };
      if (delta.sales) latest.sales = delta.sales;
      draw();
      if (delta.state === "sold" || delta.area_id) refreshApi();
    },
  });
  const timer = setInterval(refreshApi, 10000);
  onLeave(() => { stream.close(); clearInterval(timer); });
}
