// The console's shell: the navigation, a hash router (#/events/ID), the sign-in pages.

import { currentUser, onAuthChange, signIn, signOut, signUp } from "./api.js";
import { announce, clear, field, h, onSubmit, problemBox, put } from "./dom.js";
import { go, leave, query } from "./router.js";
import { eventPage, eventsPage, orderPage, ordersPage, sessionPage, ticketsPage } from "./buyer.js";
import { organizerPage, salesPage } from "./organizer.js";
import { cartPage, productPage, shopPage, storePage } from "./shop.js";

const routes = [
  [/^\/$/, eventsPage],
  [/^\/signin$/, signInPage],
  [/^\/signup$/, signUpPage],
  [/^\/events$/, eventsPage],
  [/^\/events\/([^/]+)$/, eventPage],
  [/^\/sessions\/([^/]+)$/, sessionPage],
  [/^\/orders$/, ordersPage],
  [/^\/orders\/([^/]+)$/, orderPage],
  [/^\/tickets$/, ticketsPage],
  [/^\/shop$/, shopPage],
  [/^\/stores\/([^/]+)$/, storePage],
  [/^\/products\/([^/]+)$/, productPage],
  [/^\/cart$/, cartPage],
  [/^\/organizer$/, organizerPage],
  [/^\/organizer\/sessions\/([^/]+)$/, salesPage],
];

function nextPath() {
  const next = query().get("next");
  return next && next.startsWith("/") ? next : null;
}

async function render() {
  leave();
  const path = (location.hash.slice(1) || "/").split("?")[0];
  const main = document.getElementById("main");
  clear(main);
  const found = routes.map(([pattern, page]) => [path.match(pattern), page]).find(([match]) => match);
  if (!found) {
    put(main, h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/" }, "Back to the events")));
    return;
  }
  const [match, page] = found;
  try {
    await page(main, ...match.slice(1).map(decodeURIComponent));
  } catch (error) {
    put(main, problemBox(error));
  }
  const heading = main.querySelector("h1");
  if (heading) document.title = `${heading.textContent} · Agora`;
}

function drawNav() {
  const nav = clear(document.getElementById("nav"));
  const user = currentUser();
  const link = (href, text) => h("li", {}, h("a", { href }, text));
  put(nav, link("#/events", "Events"), link("#/shop", "Shop"));
  if (user) {
    put(nav, link("#/orders", "My orders"), link("#/tickets", "My tickets"));
    if (user.role === "seller" || user.role === "admin") put(nav, link("#/organizer", "Organizer"));
    put(nav, link("#/cart", "Cart"),
      h("li", { class: "who" }, `Signed in as ${user.email}`),
      h("li", {}, h("button", { type: "button", onClick: async () => { await signOut(); announce("Signed out"); go("/"); } }, "Sign out")));
  } else {
    put(nav, link("#/cart", "Cart"), link("#/signin", "Sign in"), link("#/signup", "Sign up"));
  }
}

async function signInPage(main) {
  const problem = h("div", { class: "slot" });
  const form = h("form", { "aria-labelledby": "signin-title" },
    field("Email", { name: "email", type: "email", autocomplete: "username", required: true }),
    field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true }),
    problem,
    h("button", { type: "submit" }, "Sign in"));
  onSubmit(form, problem, async ({ email, password }) => {
    const user = await signIn(email, password);
    announce(`Signed in as ${user.email}`);
    go(nextPath() || (user.role === "seller" ? "/organizer" : "/events"));
  });
  put(main, h("h1", { id: "signin-title" }, "Sign in"), h("div", { class: "card" }, form),
    h("p", {}, "No account yet? ", h("a", { href: "#/signup" }, "Sign up")));
}

async function signUpPage(main) {
  const problem = h("div", { class: "slot" });
  const form = h("form", { "aria-labelledby": "signup-title" },
    field("Email", { name: "email", type: "email", autocomplete: "username", required: true }),
    field("Password (10 characters at least)", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: 10 }),
    h("fieldset", {}, h("legend", {}, "I want to"),
      h("label", {}, h("input", { type: "radio", name: "role", value: "buyer", checked: true }), " buy tickets and goods"),
      h("label", {}, h("input", { type: "radio", name: "role", value: "seller" }), " sell: run a store, venues and events")),
    problem,
    h("button", { type: "submit" }, "Create account"));
  onSubmit(form, problem, async ({ email, password, role }) => {
    const user = await signUp(email, password, role);
    announce(`Account created; signed in as ${user.email}`);
    go(nextPath() || (user.role === "seller" ? "/organizer" : "/events"));
  });
  put(main, h("h1", { id: "signup-title" }, "Create an account"), h("div", { class: "card" }, form),
    h("p", {}, "Have one? ", h("a", { href: "#/signin" }, "Sign in")));
}

onAuthChange(drawNav);
window.addEventListener("hashchange", () => { render(); document.getElementById("main").focus(); });
drawNav();
render();
