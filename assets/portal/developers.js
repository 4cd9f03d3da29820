// Developers: API keys (the secret shown once, revoke), webhook endpoints with their deliveries
// and redelivery, and the audit log.

import { api, get } from "./api.js";
import { badge, endlessTable, errorBox, field, fill, h, notify, screen, when } from "./ui.js";

const SCOPES = [
  "transactions:read", "transactions:write", "bank_connections:read", "bank_connections:write",
  "invoices:read", "invoices:write", "stripe:read", "stripe:write", "payments:read", "payments:write",
  "reconciliation:read", "reconciliation:write", "webhooks:read", "webhooks:write",
  "api_keys:read", "api_keys:write", "members:read", "members:write", "audit_logs:read",
];

function tabs(current) {
  const items = [["#/developers", "API keys"], ["#/developers/webhooks", "Webhooks"], ["#/developers/audit", "Audit log"]];
  return h("nav", { class: "tabs", "aria-label": "Developers" }, items.map(([href, label]) => h("a", { href, "aria-current": href === current ? "page" : undefined }, label)));
}

export async function renderKeys(main) {
  const out = h("div", { "aria-live": "polite" });
  const list = endlessTable(
    ["Label", "Key", "Scopes", "Last used", "Created", ""],
    (cursor) => get("/api_keys", { limit: 50, cursor }),
    (k) =>
      h(
        "tr",
        { dataset: { id: k.id } },
        h("td", {}, k.label),
        h("td", {}, h("code", {}, `${k.prefix}…`)),
        h("td", { class: "small" }, k.scopes.join(" ")),
        h("td", {}, when(k.last_used_at)),
        h("td", {}, when(k.created_at)),
        h(
          "td",
          {},
          k.revoked_at
            ? badge("revoked")
            : h("button", {
                type: "button",
                class: "link revoke",
                "aria-label": `Revoke ${k.label}`,
                onclick: async () => {
                  try {
                    await api("POST", `/api_keys/${k.id}/revoke`);
                    notify(`Key ${k.label} revoked.`);
                    list.reload();
                  } catch (error) {
                    fill(out, errorBox(error));
                  }
                },
              }, "Revoke"),
        ),
      ),
  );
  const form = h(
    "form",
    { id: "create-key", "aria-label": "Create an API key" },
    field("Label", { name: "label", required: true, maxlength: 100 }),
    h(
      "fieldset",
      { class: "scopes" },
      h("legend", {}, "Scopes"),
      SCOPES.map((s) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "scopes", value: s }), ` ${s}`)),
    ),
    h("button", { type: "submit", class: "primary" }, "Create key"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const scopes = [...form.querySelectorAll("input[name=scopes]:checked")].map((i) => i.value);
    try {
      const created = await api("POST", "/api_keys", { body: { label: form.elements.label.value.trim(), scopes } });
      fill(
        out,
        h(
          "div",
          { class: "secret", role: "status" },
          h("p", {}, "Your new key. It is shown this once: store it now."),
          h("code", { id: "new-secret" }, created.secret),
        ),
      );
      form.reset();
      list.reload();
    } catch (error) {
      fill(out, errorBox(error));
    }
  });
  fill(main, screen("Developers", tabs("#/developers"), form, out, list.element));
}

export async function renderWebhooks(main) {
  const list = endlessTable(
    ["URL", "Events", "State", "Created"],
    (cursor) => get("/webhook_endpoints", { limit: 50, cursor }),
    (e) =>
      h(
        "tr",
        {},
        h("td", {}, h("a", { href: `#/developers/webhooks/${e.id}` }, e.url)),
        h("td", { class: "small" }, e.event_types.join(" ")),
        h("td", {}, e.enabled ? (e.failing_since ? badge("failing") : badge("enabled")) : badge("disabled")),
        h("td", {}, when(e.created_at)),
      ),
    { empty: "No webhook endpoint yet: create one through the API." },
  );
  fill(main, screen("Webhooks", tabs("#/developers/webhooks"), list.element));
}

export async function renderEndpoint(main, { id }) {
  const endpoint = await get(`/webhook_endpoints/${id}`);
  const out = h("div", { "aria-live": "polite" });
  const list = endlessTable(
    ["Event", "Status", "Attempts", "Last answer", "Created", ""],
    (cursor) => get(`/webhook_endpoints/${id}/deliveries`, { limit: 50, cursor }),
    (d) =>
      h(
        "tr",
        {},
        h("td", {}, d.event_type, h("div", { class: "muted small" }, d.event_id)),
        h("td", {}, badge(d.status)),
        h("td", {}, String(d.attempt_count)),
        h("td", {}, d.last_status_code ? String(d.last_status_code) : d.last_error || "—"),
        h("td", {}, when(d.created_at)),
        h("td", {}, h("button", {
          type: "button",
          class: "link",
          onclick: async () => {
            try {
              await api("POST", `/events/${d.event_id}/redeliver`, { body: { endpoint_id: id } });
              notify("Redelivery queued.");
              list.reload();
            } catch (error) {
              fill(out, errorBox(error));
            }
          },
        }, "Redeliver")),
      ),
    { empty: "No deliveries yet." },
  );
  fill(
    main,
    screen(
      endpoint.url,
      tabs("#/developers/webhooks"),
      h("p", {}, endpoint.enabled ? badge("enabled") : badge("disabled"), ` ${endpoint.disabled_reason || ""}`),
      h("p", { class: "small" }, `Events: ${endpoint.event_types.join(", ")}`),
      out,
      list.element,
    ),
  );
}

export async function renderAudit(main) {
  const list = endlessTable(
    ["When", "Who", "Action", "Outcome", "Resource"],
    (cursor) => get("/audit_logs", { limit: 50, cursor }),
    (a) =>
      h(
        "tr",
        {},
        h("td", {}, when(a.occurred_at)),
        h("td", {}, `${a.actor_type} ${a.actor_id || ""}`),
        h("td", {}, h("code", {}, a.action)),
        h("td", {}, a.outcome ? badge(a.outcome) : "", a.status ? ` ${a.status}` : ""),
        h("td", { class: "small" }, a.resource_id || ""),
      ),
  );
  fill(main, screen("Audit log", tabs("#/developers/audit"), list.element));
}
