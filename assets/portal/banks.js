// Bank connections: connect a bank through its consent flow (the sandbox in test mode),
// refresh, remove; status, consent expiry and the day's call budget.

import { api, get } from "./api.js";
import { badge, errorBox, field, fill, h, notify, screen, when } from "./ui.js";

const COUNTRIES = ["GB", "DE", "FR", "NL", "ES", "IT", "IE", "BE", "SE", "FI", "DK", "NO", "PL", "PT", "AT", "LT", "LV", "EE"];

function connectionRow(c, reload, out) {
  const act = (label, run) =>
    h("button", {
      type: "button",
      class: "link",
      onclick: async () => {
        try {
          await run();
          reload();
        } catch (error) {
          fill(out, errorBox(error));
        }
      },
    }, label);
  const budget = c.sync_budget;
  return h(
    "tr",
    { dataset: { id: c.id } },
    h("td", {}, c.institution_name),
    h("td", {}, badge(c.status), c.error ? h("div", { class: "muted small" }, c.error) : null),
    h("td", {}, `${c.accounts.length}`),
    h("td", {}, when(c.last_synced_at)),
    h("td", {}, c.expires_at ? `${when(c.expires_at)}${c.expiring_in_days !== null ? ` (${c.expiring_in_days} days)` : ""}` : "—"),
    h("td", {}, budget ? `${budget.transactions_remaining} of ${budget.day_limit} syncs left today` : "—"),
    h(
      "td",
      {},
      c.status === "pending" && c.consent_link ? h("a", { href: c.consent_link }, "Continue consent") : null,
      c.status === "linked" ? act("Refresh", async () => (await api("POST", `/bank_connections/${c.id}/refresh`), notify("Sync queued."))) : null,
      c.status !== "deleted" ? act("Remove", async () => {
        if (!confirm(`Remove the connection to ${c.institution_name}? Its transactions are kept.`)) return;
        await api("DELETE", `/bank_connections/${c.id}`);
        notify("Connection removed.");
      }) : null,
    ),
  );
}

export async function render(main, _params, { query }) {
  const out = h("div", { "aria-live": "polite" });
  if (query.get("status")) {
    const ok = query.get("status") === "linked";
    out.append(ok ? h("p", { class: "ok", role: "status" }, "The bank is connected; its transactions are arriving.") : errorBox({ message: `The bank was not connected: ${query.get("error") || query.get("status")}.` }));
  }
  const body = h("tbody");
  const reload = async () => {
    const page = await get("/bank_connections", { limit: 100 });
    fill(body, page.data.length ? page.data.map((c) => connectionRow(c, reload, out)) : h("tr", {}, h("td", { colspan: 7 }, "No bank is connected yet.")));
  };
  const country = field("Country", { name: "country", options: COUNTRIES.map((c) => [c, c]) });
  const institution = field("Bank", { name: "institution_id", options: [] });
  const connect = h("form", { class: "filters", id: "connect-bank", "aria-label": "Connect a bank" }, country, institution, h("button", { type: "submit", class: "primary" }, "Connect"));
  const loadInstitutions = async () => {
    const list = await get("/institutions", { country: connect.elements.country.value });
    fill(connect.elements.institution_id, list.map((i) => h("option", { value: i.id }, i.name)));
  };
  connect.elements.country.addEventListener("change", () => loadInstitutions().catch((e) => fill(out, errorBox(e))));
  connect.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await api("POST", "/bank_connections", {
        body: { institution_id: connect.elements.institution_id.value, redirect_url: `${location.origin}/app#/banks` },
      });
      location.assign(created.consent_link);
    } catch (error) {
      fill(out, errorBox(error));
    }
  });
  fill(
    main,
    screen(
      "Bank connections",
      connect,
      out,
      h(
        "div",
        { class: "table-wrap" },
        h("table", { id: "connections" }, h("thead", {}, h("tr", {}, ["Bank", "Status", "Accounts", "Last synced", "Consent until", "Call budget", ""].map((c) => h("th", { scope: "col" }, c)))), body),
      ),
    ),
  );
  await Promise.all([reload(), loadInstitutions().catch((e) => fill(out, errorBox(e)))]);
}
