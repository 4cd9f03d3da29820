// Overview: what a finance person checks first each morning.

import { get } from "./api.js";
import { badge, errorBox, h, money, screen, fill, today, when } from "./ui.js";

/** Each panel loads on its own, so one failure does not blank the page. */
function panel(title, load) {
  const body = h("div", { class: "panel-body" }, h("p", { class: "muted" }, "Loading…"));
  load()
    .then((content) => fill(body, content))
    .catch((error) => fill(body, errorBox(error)));
  return h("section", { class: "panel", "aria-label": title }, h("h2", {}, title), body);
}

function balanceOf(account) {
  const balances = account.balances || [];
  const preferred =
    balances.find((b) => b.type === "interimAvailable") ||
    balances.find((b) => b.type === "closingBooked") ||
    balances[0];
  return preferred ? money(preferred.amount, preferred.currency) : "—";
}

async function accounts() {
  const page = await get("/accounts", { limit: 100 });
  if (!page.data.length) return h("p", {}, "No accounts yet. ", h("a", { href: "#/banks" }, "Connect a bank."));
  return h(
    "ul",
    { class: "cards" },
    page.data.map((a) =>
      h(
        "li",
        { class: "card" },
        h("strong", {}, a.name || a.owner_name || a.iban || a.id),
        h("span", { class: "big" }, balanceOf(a)),
        h("span", { class: "muted" }, `Last synced ${when(a.last_synced_at)}`),
      ),
    ),
  );
}

async function unmatchedToday() {
  const date = today();
  const stats = await get("/transactions/stats", {
    match_status: "unmatched",
    direction: "credit",
    booking_date_from: date,
    booking_date_to: date,
  });
  if (!stats.count) return h("p", {}, "No unmatched credits today.");
  return h(
    "ul",
    { class: "cards" },
    stats.currencies.map((c) =>
      h(
        "li",
        { class: "card", dataset: { currency: c.currency } },
        h("span", { class: "big" }, money(c.inflow, c.currency)),
        h("a", { href: `#/inbox` }, `${c.count} unmatched credit${c.count === 1 ? "" : "s"} in ${c.currency}`),
      ),
    ),
  );
}

async function expiringConsents() {
  const page = await get("/bank_connections", { status: "linked", limit: 100 });
  const soon = page.data.filter((c) => c.expiring_in_days !== null && c.expiring_in_days <= 14);
  if (!soon.length) return h("p", {}, "No bank consent expires in the next 14 days.");
  return h(
    "ul",
    {},
    soon.map((c) => h("li", {}, `${c.institution_name}: expires in ${c.expiring_in_days} days `, h("a", { href: "#/banks" }, "Renew"))),
  );
}

async function failingEndpoints() {
  const page = await get("/webhook_endpoints", { limit: 100 });
  const failing = page.data.filter((e) => !e.enabled || e.failing_since);
  if (!failing.length) return h("p", {}, "Every webhook endpoint is delivering.");
  return h(
    "ul",
    {},
    failing.map((e) =>
      h(
        "li",
        {},
        h("a", { href: `#/developers/webhooks/${e.id}` }, e.url),
        " ",
        e.enabled ? badge("failing") : badge("disabled"),
        e.failing_since ? ` since ${when(e.failing_since)}` : "",
      ),
    ),
  );
}

export async function render(main) {
  fill(
    main,
    screen(
      "Overview",
      h(
        "div",
        { class: "grid" },
        panel("Bank balances", accounts),
        panel("Unmatched credits today", unmatchedToday),
        panel("Consents expiring soon", expiringConsents),
        panel("Failing webhook endpoints", failingEndpoints),
      ),
    ),
  );
}
