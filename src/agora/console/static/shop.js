// The products side of the marketplace: search, stores, a product, the cart and its order.

import { api } from "./api.js";
import { announce, field, h, money, onSubmit, put } from "./dom.js";
import { placeOrder, TEST_CARDS } from "./buyer.js";
import { go, needUser, query } from "./router.js";

// product id -> {product, quantity}; kept for this visit only
const cart = new Map();

function addToCart(product, quantity) {
  const line = cart.get(product.id) || { product, quantity: 0 };
  line.quantity += quantity;
  cart.set(product.id, line);
  announce(`${quantity} × ${product.name} added to the cart (${[...cart.values()].reduce((n, l) => n + l.quantity, 0)} items)`);
}

function productCard(product) {
  const add = h("button", { type: "button", class: "secondary" }, `Add ${product.name} to the cart`);
  add.addEventListener("click", () => addToCart(product, 1));
  return h("li", { class: "card", "data-product-id": product.id },
    h("h2", {}, h("a", { href: `#/products/${product.id}` }, product.name)),
    h("p", {}, money(product.price, product.currency), product.rating ? ` · ★ ${product.rating.toFixed(1)} (${product.review_count})` : ""),
    h("p", { class: "muted" }, product.available > 0 ? `${product.available} in stock` : "Out of stock"),
    product.available > 0 ? add : null);
}

export async function shopPage(main) {
  const params = query();
  const q = params.get("q") || "";
  const sort = params.get("sort") || "";
  const form = h("form", { role: "search", class: "row", "aria-label": "Search products" },
    field("Search products", { name: "q", type: "search", value: q }),
    field("Sort by", { name: "sort" }, "select",
      [["", "Best match"], ["price", "Price, lowest first"], ["-price", "Price, highest first"], ["rating", "Rating"], ["name", "Name"]]
        .map(([value, label]) => h("option", { value, selected: value === sort }, label))),
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    go(`/shop?q=${encodeURIComponent(data.get("q"))}&sort=${encodeURIComponent(data.get("sort"))}`);
  });
  const count = h("p", { class: "muted", role: "status" });
  put(main, h("h1", {}, "Shop"), form, count);
  const search = new URLSearchParams({ page_size: "50" });
  if (q) search.set("q", q);
  if (sort) search.set("sort", sort);
  const found = await api("GET", `/api/products?${search}`);
  const stores = await api("GET", "/api/stores?page_size=20");
  count.textContent = `${found.total} products`;
  put(main, found.items.length ? h("ul", { class: "grid", "aria-label": "Products" }, found.items.map(productCard)) : h("p", {}, "No product matches."));
  if (stores.items.length) {
    put(main, h("h2", {}, "Stores"), h("ul", {}, stores.items.map((s) => h("li", {}, h("a", { href: `#/stores/${s.id}` }, s.name)))));
  }
}

export async function storePage(main, storeId) {
  const store = await api("GET", `/api/stores/${encodeURIComponent(storeId)}`);
  const products = await api("GET", `/api/stores/${encodeURIComponent(storeId)}/products?page_size=100`);
  put(main, h("h1", {}, store.name), store.description ? h("p", {}, store.description) : null,
    products.items.length ? h("ul", { class: "grid", "aria-label": "Products" }, products.items.map(productCard)) : h("p", {}, "No products yet."));
}

export async function productPage(main, productId) {
  const product = await api("GET", `/api/products/${encodeURIComponent(productId)}`);
  const reviews = await api("GET", `/api/products/${encodeURIComponent(productId)}/reviews?page_size=20`);
  const form = h("form", { class: "row", "aria-label": "Add to cart" },
    field("Quantity", { name: "quantity", type: "number", min: 1, max: Math.max(product.available, 1), value: 1, required: true }),
    h("button", { type: "submit", disabled: product.available < 1 }, "Add to cart"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    addToCart(product, Number(new FormData(form).get("quantity")));
  });
  put(main, h("h1", {}, product.name), h("p", {}, product.description || ""),
    h("p", {}, h("strong", {}, money(product.price, product.currency)), ` · ${product.available} in stock`),
    form, h("p", {}, h("a", { href: "#/cart" }, "Go to the cart")),
    h("h2", {}, "Reviews"),
    reviews.items.length ? h("ul", {}, reviews.items.map((r) => h("li", {}, `★ ${r.rating}: ${r.text}`))) : h("p", { class: "muted" }, "No reviews yet."));
}

export async function cartPage(main) {
  put(main, h("h1", {}, "Cart"));
  if (!cart.size) { put(main, h("p", {}, "The cart is empty. ", h("a", { href: "#/shop" }, "Shop"))); return; }
  const lines = [...cart.values()];
  const currency = lines[0].product.currency;
  const total = lines.reduce((sum, l) => sum + Number(l.product.price) * l.quantity, 0);
  put(main, h("table", {}, h("caption", { class: "visually-hidden" }, "Cart"),
    h("thead", {}, h("tr", {}, ["Product", "Quantity", "Price"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, lines.map((l) => h("tr", {}, h("td", {}, l.product.name), h("td", {}, l.quantity), h("td", {}, money(Number(l.product.price) * l.quantity, l.product.currency)))))),
  h("p", {}, h("strong", {}, `Total ${money(total, currency)}`)));
  if (!needUser(h("div"))) {
    put(main, h("p", {}, h("a", { href: "#/signin?next=/cart" }, "Sign in to order")));
    return;
  }
  const problem = h("div", { class: "slot" });
  const form = h("form", { "aria-label": "Order" },
    field("Card", { name: "payment_token" }, "select", TEST_CARDS.map(([token, label]) => h("option", { value: token }, label))),
    problem, h("button", { type: "submit" }, `Order and pay ${money(total, currency)}`));
  onSubmit(form, problem, async ({ payment_token }) => {
    const order = await placeOrder({
      items: lines.map((l) => ({ product_id: l.product.id, quantity: l.quantity })), payment_token,
    });
    cart.clear();
    announce("Order placed");
    go(`/orders/${order.id}`);
  });
  put(main, form);
}
