// The Payymo portal: sign-in, the shell (navigation, tenant switcher, test-mode banner) and a
// hash router that hands each screen its own <main>.

import { ApiError, get, refresh, signIn, signOut } from "./api.js";
import { errorBox, field, fill, h } from "./ui.js";
import * as overview from "./overview.js";
import * as transactions from "./transactions.js";
import * as inbox from "./inbox.js";
import * as matches from "./matches.js";
import * as invoices from "./invoices.js";
import * as banks from "./banks.js";
import * as developers from "./developers.js";

const root = document.getElementById("root");

/** Each route: its pattern, its screen, and its place in the navigation (if any). */
const ROUTES = [
  ["/", overview.render, "Overview"],
  ["/inbox", inbox.render, "Inbox"],
  ["/transactions", transactions.render, "Transactions"],
  ["/matches/:id", matches.renderMatch],
  ["/match", matches.renderManual],
  ["/report", matches.renderReport, "Report"],
  ["/invoices", invoices.renderInvoices, "Invoices"],
  ["/invoices/:id", invoices.renderInvoice],
  ["/customers", invoices.renderCustomers, "Customers"],
  ["/payouts", invoices.renderPayouts, "Payouts"],
  ["/payouts/:id", invoices.renderPayout],
  ["/banks", banks.render, "Banks"],
  ["/developers", developers.renderKeys, "Developers"],
  ["/developers/webhooks", developers.renderWebhooks],
  ["/developers/webhooks/:id", developers.renderEndpoint],
  ["/developers/audit", developers.renderAudit],
];

let me = null;
let leave = null; // the current screen's cleanup (key handlers)

function route() {
  const [path, search] = (location.hash.slice(1) || "/").split("?");
  for (const [pattern, render] of ROUTES) {
    const names = [];
    const regex = new RegExp(`^${pattern.replace(/:([a-z]+)/g, (_, n) => (names.push(n), "([^/]+)"))}$`);
    const found = path.match(regex);
    if (found) {
      const params = Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(found[i + 1])]));
      return { path, render, params, query: new URLSearchParams(search || "") };
    }
  }
  return { path, render: notFound, params: {}, query: new URLSearchParams() };
}

function notFound(main) {
  fill(main, h("h1", {}, "Not found"), h("p", {}, "There is no such page. ", h("a", { href: "#/" }, "Go to the overview.")));
}

async function show() {
  if (!me) return;
  if (leave) leave();
  leave = null;
  const { path, render, params, query } = route();
  for (const link of document.querySelectorAll("nav.primary a")) {
    const target = link.getAttribute("href").slice(1);
    const here = target === "/" ? path === "/" : path === target || path.startsWith(`${target}/`);
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const main = document.getElementById("main");
  main.replaceChildren(h("p", { class: "muted", role: "status" }, "Loading…"));
  try {
    leave = (await render(main, params, { me, query })) || null;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return showSignIn();
    fill(main, h("h1", {}, "Something went wrong"), errorBox(error));
  }
  const heading = main.querySelector("h1");
  if (heading && document.activeElement === document.body) heading.focus({ preventScroll: true });
}

function shell() {
  const tenants = h(
    "select",
    { id: "tenant", "aria-label": "Tenant", onchange: (e) => switchTenant(e.target.value) },
    me.memberships.map((m) =>
      h("option", { value: m.tenant_id, selected: m.tenant_id === me.tenant_id }, m.tenant_name),
    ),
  );
  const testMode = me.environment === "test";
  fill(
    root,
    testMode
      ? h("div", { class: "test-mode", role: "note" }, "Test mode: sandbox data, no real money moves.")
      : null,
    h(
      "header",
      { class: "top" },
      h("a", { class: "brand", href: "#/" }, "Payymo"),
      h("nav", { class: "primary", "aria-label": "Main" }, ROUTES.filter((r) => r[2]).map(([p, , t]) => h("a", { href: `#${p}` }, t))),
      h(
        "div",
        { class: "who" },
        tenants,
        h("span", { class: "muted", id: "user-email" }, me.user ? me.user.email : me.actor_id),
        h("button", { type: "button", id: "sign-out", onclick: doSignOut }, "Sign out"),
      ),
    ),
    h("main", { id: "main", tabindex: "-1", dataset: { tenant: me.tenant_id } }),
  );
  document.body.dataset.tenant = me.tenant_id;
  document.body.dataset.mode = me.environment;
}

async function start() {
  me = await get("/me");
  shell();
  await show();
}

async function switchTenant(tenantId) {
  try {
    await refresh(tenantId);
    location.hash = "#/";
    await start();
  } catch (error) {
    const main = document.getElementById("main");
    main.prepend(errorBox(error));
  }
}

async function doSignOut() {
  me = null;
  if (leave) leave();
  leave = null;
  await signOut();
  showSignIn();
}

function showSignIn(message) {
  me = null;
  document.title = "Sign in · Payymo";
  const error = h("div", { "aria-live": "assertive" }, message ? errorBox({ message }) : null);
  const form = h(
    "form",
    { class: "sign-in", id: "sign-in", novalidate: true },
    h("h1", {}, "Sign in to Payymo"),
    error,
    field("Email", { name: "email", type: "email", autocomplete: "username", required: true }),
    field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true }),
    field("Tenant ID (optional)", { name: "tenant_id", autocomplete: "off", placeholder: "ten_…" }),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await signIn(data.get("email").trim(), data.get("password"), data.get("tenant_id").trim());
      await start();
    } catch (e) {
      fill(error, errorBox(e));
      form.querySelector("input[name=password]").focus();
    } finally {
      button.disabled = false;
    }
  });
  fill(root, h("main", { id: "main", class: "center" }, form));
  form.querySelector("input").focus();
}

window.addEventListener("hashchange", show);

(async () => {
  // A returning browser holds the refresh cookie: one refresh and we are in.
  try {
    await refresh();
    await start();
  } catch (error) {
    if (error instanceof ApiError && error.status !== 401) showSignIn(error.message);
    else showSignIn();
  }
})();
