// What every page shares: going elsewhere, cleaning up on the way out, asking for a user.

import { currentUser } from "./api.js";
import { clear, h, put } from "./dom.js";

let leaving = [];

/** Run `cleanup` when the user leaves the page (streams closed, timers stopped). */
export function onLeave(cleanup) { leaving.push(cleanup); }

/** Run the cleanups of the page being left. */
export function leave() {
  for (const cleanup of leaving) { try { cleanup(); } catch { /* gone anyway */ } }
  leaving = [];
}

/** Go to a console address ("/orders/ID"); the same address draws its page again. */
export function go(path) {
  if (location.hash === `#${path}`) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = path;
}

/** The query of the console address (#/signin?next=/cart). */
export function query() {
  return new URLSearchParams(location.hash.split("?")[1] || "");
}

/** The page needs a signed-in user: false (and a way to sign in, coming back here) if none. */
export function needUser(main) {
  if (currentUser()) return true;
  const back = encodeURIComponent(location.hash.slice(1) || "/");
  put(clear(main), h("h1", {}, "Sign in first"),
    h("p", {}, "This page is for signed-in users. ",
      h("a", { href: `#/signin?next=${back}` }, "Sign in"), " or ",
      h("a", { href: `#/signup?next=${back}` }, "create an account"), "."));
  return false;
}
