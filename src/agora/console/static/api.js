// The API over fetch: tokens kept in memory only, refreshed before they expire or on a 401;
// every error an ApiError carrying the API's problem+json body.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem && problem.detail ? problem.detail : `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
  /** The problem's slug: "/problems/sales-not-open" -> "sales-not-open". */
  get slug() {
    return this.problem && this.problem.type ? this.problem.type.split("/").pop() : "";
  }
}

const tokens = { access: null, refresh: null, expiresAt: 0, timer: 0 };
let user = null;
let refreshing = null;
const listeners = new Set();

export function currentUser() { return user; }
export function accessToken() { return tokens.access; }
export function onAuthChange(listener) { listeners.add(listener); }

function changed() { for (const listener of listeners) listener(user); }

function keep(answer) {
  tokens.access = answer.access_token;
  tokens.refresh = answer.refresh_token;
  tokens.expiresAt = Date.now() + answer.expires_in * 1000;
  clearTimeout(tokens.timer);
  // a fresh token a while before this one runs out
  const lead = Math.max(answer.expires_in * 200, 5000);
  tokens.timer = setTimeout(() => refresh().catch(() => {}), Math.max(answer.expires_in * 1000 - lead, 1000));
}

function forget() {
  clearTimeout(tokens.timer);
  tokens.access = tokens.refresh = null;
  tokens.expiresAt = 0;
  user = null;
  changed();
}

async function refresh() {
  if (!tokens.refresh) throw new ApiError(401, { title: "Signed out", detail: "Sign in again." });
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const answer = await call("POST", "/api/auth/refresh", { body: { refresh_token: tokens.refresh }, auth: false });
        keep(answer.data);
      } catch (error) {
        forget();
        throw error;
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

async function call(method, path, { body, headers = {}, auth = true, signal, raw = false } = {}) {
  const sent = { Accept: "application/json, application/problem+json", ...headers };
  if (body !== undefined) sent["Content-Type"] = "application/json";
  if (auth && tokens.access) sent.Authorization = `Bearer ${tokens.access}`;
  const response = await fetch(path, {
    method, headers: sent, signal, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (raw) return { status: response.status, headers: response.headers, response };
  const type = response.headers.get("content-type") || "";
  const data = response.status === 204 || response.status === 304 ? null
    : type.includes("json") ? await response.json() : await response.text();
  if (!response.ok && response.status !== 304) {
    throw new ApiError(response.status, typeof data === "object" ? data : { title: `HTTP ${response.status}`, detail: data });
  }
  return { status: response.status, headers: response.headers, data };
}

/** A request as the signed-in user; answers {status, headers, data}. A 401 refreshes the
 *  tokens and tries once more. */
export async function request(method, path, options = {}) {
  if (tokens.access && options.auth !== false && Date.now() > tokens.expiresAt - 5000) {
    await refresh().catch(() => {});
  }
  try {
    const answer = await call(method, path, options);
    if (options.raw && answer.status === 401 && tokens.refresh) {
      await refresh();
      return call(method, path, options);
    }
    return answer;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && tokens.refresh && options.auth !== false) {
      await refresh();
      return call(method, path, options);
    }
    throw error;
  }
}

/** The body of a request's answer. */
export async function api(method, path, options = {}) {
  return (await request(method, path, options)).data;
}

/** `work` again while the API answers a problem of `slugs` (state another service has not
 *  learned yet: a store just opened, sales just opened), for at most `seconds`. */
export async function whenKnown(work, slugs, seconds = 15) {
  const deadline = Date.now() + seconds * 1000;
  for (let pause = 100; ; pause = Math.min(pause * 2, 1000)) {
    try {
      return await work();
    } catch (error) {
      if (!(error instanceof ApiError) || !slugs.includes(error.slug) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

export async function signIn(email, password) {
  const answer = await call("POST", "/api/auth/login", { body: { email, password }, auth: false });
  keep(answer.data);
  user = await api("GET", "/api/auth/me");
  changed();
  return user;
}

export async function signUp(email, password, role) {
  await call("POST", "/api/auth/register", { body: { email, password, role }, auth: false });
  return signIn(email, password);
}

export async function signOut() {
  try { await call("POST", "/api/auth/logout"); } catch { /* signed out here all the same */ }
  forget();
}

/** An image of the API (a ticket's QR code) as a data: URL, fetched with the user's token. */
export async function imageUrl(path) {
  const { response } = await request("GET", path, { raw: true, headers: { Accept: "image/png" } });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  const blob = await response.blob();
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}
