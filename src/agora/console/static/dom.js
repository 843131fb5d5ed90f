// Building the page: elements from data (never HTML strings), the live region, problems shown.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(node, props, children) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "class") {
      node.setAttribute("class", value);
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element: h("button", {type: "button", onClick}, "Pay"). */
export function h(tag, props = {}, ...children) {
  return build(document.createElement(tag), props, children);
}

/** An SVG element, same shape as h(). */
export function s(tag, props = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

/** Say `text` to screen readers (the page's polite live region) and show it in the status bar. */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // a change after an empty one is read even when the text repeats
  requestAnimationFrame(() => { region.textContent = text; });
}

/** An API error (a problem+json body) as a block screen readers are told about at once. */
export function problemBox(error) {
  const problem = error && error.problem ? error.problem : null;
  const title = problem ? problem.title : "Something went wrong";
  const detail = problem ? problem.detail : String(error && error.message ? error.message : error);
  const fields = problem && Array.isArray(problem.errors) ? problem.errors : [];
  return h("div", { class: "problem", role: "alert" },
    h("strong", {}, title),
    detail ? h("p", {}, detail) : null,
    fields.length ? h("ul", {}, fields.map((f) =>
      h("li", {}, `${(f.location || []).filter((p) => p !== "body").join(".")}: ${f.message}`))) : null,
    problem && problem.type ? h("p", { class: "problem-type" }, problem.type) : null);
}

/** Replace `slot`'s content with the problem of `error` (or nothing, for null). */
export function showProblem(slot, error) {
  clear(slot);
  if (error) put(slot, problemBox(error));
}

export function money(amount, currency) {
  const value = Number(amount);
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(value);
  } catch {
    return `${amount} ${currency}`;
  }
}

export function when(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** A labelled form field: field("Email", {name: "email", type: "email", required: true}). */
export function field(label, props = {}, tag = "input", ...children) {
  const id = props.id || `f-${props.name}-${Math.random().toString(36).slice(2, 8)}`;
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    h(tag, { ...props, id }, ...children));
}

/** The values of a form's named controls. */
export function values(form) {
  return Object.fromEntries(new FormData(form).entries());
}

/** Run `work` for a form's submit: the button is busy meanwhile, a problem shows in `slot`. */
export function onSubmit(form, slot, work) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button) { button.disabled = true; button.setAttribute("aria-busy", "true"); }
    showProblem(slot, null);
    try {
      await work(values(form), form);
    } catch (error) {
      showProblem(slot, error);
    } finally {
      if (button) { button.disabled = false; button.removeAttribute("aria-busy"); }
    }
  });
  return form;
}

/** Append `children` to `node` (nothing for null, undefined or false); answers `node`. */
export function put(node, ...children) {
  return build(node, {}, children);
}
