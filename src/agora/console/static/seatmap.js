// A session's seat map drawn as SVG from its plan: every seat a button (one Tab stop for the
// map; arrow keys move between seats, Enter or Space picks), named for screen readers
// ("Row G seat 1, available"), coloured by its state.

import { h, s } from "./dom.js";

const WORDS = { available: "available", held: "held", sold: "sold", mine: "yours" };

export class SeatMap {
  /** `plan` as the API gives it; `onPick(seatId)` when a seat is picked or unpicked (null: the
   *  map is only shown, as on the organizer's sales panel). */
  constructor(plan, { onPick = null, title = "Seat map" } = {}) {
    this.onPick = onPick;
    this.states = new Map();
    this.mine = new Set();
    this.picked = new Set();
    this.nodes = new Map();
    this.seats = new Map();
    this.rows = [];
    const all = [];
    for (const zone of plan.zones || []) {
      for (const row of zone.rows) {
        const line = [];
        for (const seat of row.seats) {
          const info = { ...seat, row: row.label, zone: zone.name };
          this.seats.set(seat.id, info);
          line.push(seat.id);
          all.push(info);
        }
        if (line.length) this.rows.push(line);
      }
    }
    this.element = this.draw(all, title);
  }

  draw(all, title) {
    if (!all.length) return h("p", {}, "This venue has no numbered seats.");
    const xs = all.map((seat) => seat.x);
    const ys = all.map((seat) => seat.y);
    let gap = Infinity;
    for (const line of this.rows) {
      for (let i = 1; i < line.length; i += 1) {
        const a = this.seats.get(line[i - 1]);
        const b = this.seats.get(line[i]);
        const d = Math.hypot(a.x - b.x, a.y - b.y);
        if (d > 0) gap = Math.min(gap, d);
      }
    }
    if (!Number.isFinite(gap)) gap = Math.max(Math.max(...xs) - Math.min(...xs), 1) / 20 || 10;
    const radius = gap * 0.4;
    const pad = gap * 1.6;
    const minX = Math.min(...xs) - pad;
    const minY = Math.min(...ys) - pad;
    const width = Math.max(...xs) - Math.min(...xs) + 2 * pad;
    const height = Math.max(...ys) - Math.min(...ys) + 2 * pad;
    const svg = s("svg", {
      class: "seatmap", viewBox: `${minX} ${minY} ${width} ${height}`,
      role: "group", "aria-label": `${title}: use the arrow keys to move between seats, Enter or Space to pick one`,
      preserveAspectRatio: "xMidYMin meet",
    });
    for (const line of this.rows) {
      const first = this.seats.get(line[0]);
      svg.append(s("text", {
        class: "row-label", x: first.x - gap * 1.1, y: first.y, "font-size": gap * 0.55,
        "text-anchor": "middle", "dominant-baseline": "central", "aria-hidden": "true",
      }, first.row));
      for (const id of line) {
        const seat = this.seats.get(id);
        const node = s("g", {
          class: "seat", role: "button", tabindex: "-1", "data-seat-id": id,
          transform: `translate(${seat.x} ${seat.y})`,
        },
        s("circle", { r: radius }),
        s("text", { class: "seat-label", "font-size": radius * 0.9, "text-anchor": "middle", "dominant-baseline": "central", "aria-hidden": "true" }, seat.label));
        node.addEventListener("click", () => { if (this.onPick) this.focus(id); this.pick(id); });
        node.addEventListener("keydown", (event) => this.key(event, id));
        this.nodes.set(id, node);
        svg.append(node);
      }
    }
    this.nodes.get(this.rows[0][0]).setAttribute("tabindex", "0");
    this.focusable = this.rows[0][0];
    return svg;
  }

  label(id) {
    const seat = this.seats.get(id);
    return `Row ${seat.row} seat ${seat.label}`;
  }

  state(id) {
    return this.mine.has(id) ? "mine" : (this.states.get(id) || "available");
  }

  paint(id) {
    const node = this.nodes.get(id);
    if (!node) return;
    const state = this.state(id);
    const picked = this.picked.has(id);
    node.setAttribute("class", `seat state-${state}${picked ? " picked" : ""}`);
    node.setAttribute("data-state", state);
    node.setAttribute("aria-label", `${this.label(id)}, ${WORDS[state]}${picked ? ", picked" : ""}`);
    if (this.onPick) {
      node.setAttribute("aria-pressed", picked ? "true" : "false");
      node.setAttribute("aria-disabled", state === "available" || picked ? "false" : "true");
    } else {
      node.setAttribute("aria-disabled", "true");
    }
  }

  /** Every seat's state from a seat map's `seats` (id -> available | held | sold). */
  setAll(states) {
    this.states = new Map(Object.entries(states));
    for (const id of this.nodes.keys()) {
      if (this.picked.has(id) && this.states.get(id) !== "available") this.picked.delete(id);
      this.paint(id);
    }
  }

  set(id, state) {
    this.states.set(id, state);
    if (this.picked.has(id) && state !== "available") this.picked.delete(id);
    this.paint(id);
  }

  /** The seats the buyer holds or bought (drawn as "yours"). */
  setMine(ids) {
    const before = this.mine;
    this.mine = new Set(ids);
    for (const id of new Set([...before, ...this.mine])) this.paint(id);
  }

  clearPicked() {
    const before = [...this.picked];
    this.picked.clear();
    for (const id of before) this.paint(id);
  }

  pick(id) {
    if (!this.onPick) return;
    if (this.picked.has(id)) this.picked.delete(id);
    else if (this.state(id) === "available") this.picked.add(id);
    else return;
    this.paint(id);
    this.onPick(id, this.picked.has(id));
  }

  focus(id) {
    if (!id) return;
    this.nodes.get(this.focusable)?.setAttribute("tabindex", "-1");
    const node = this.nodes.get(id);
    node.setAttribute("tabindex", "0");
    this.focusable = id;
    node.focus();
  }

  key(event, id) {
    const r = this.rows.findIndex((line) => line.includes(id));
    const line = this.rows[r];
    const i = line.indexOf(id);
    const nearest = (other) => {
      if (!other) return null;
      const x = this.seats.get(id).x;
      return other.reduce((best, cand) =>
        Math.abs(this.seats.get(cand).x - x) < Math.abs(this.seats.get(best).x - x) ? cand : best);
    };
    const moves = {
      ArrowRight: line[i + 1], ArrowLeft: line[i - 1],
      ArrowDown: nearest(this.rows[r + 1]), ArrowUp: nearest(this.rows[r - 1]),
      Home: line[0], End: line[line.length - 1],
    };
    if (event.key in moves) {
      event.preventDefault();
      this.focus(moves[event.key]);
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      this.pick(id);
    }
  }
}

/** The colours' key, for people who see the map. */
export function legend() {
  return h("ul", { class: "legend", "aria-label": "Seat states" },
    ["available", "held", "sold", "mine"].map((state) =>
      h("li", {}, h("span", { class: `swatch state-${state}`, "aria-hidden": "true" }), WORDS[state])),
    h("li", {}, h("span", { class: "swatch picked", "aria-hidden": "true" }), "picked"));
}
