// Invoices (and the matches that paid each), customers, and Stripe payouts with their
// breakdown and the bank line each landed as.

import { get } from "./api.js";
import { badge, day, debounce, endlessTable, field, fill, h, money, screen, when } from "./ui.js";

function filterForm(fields, query) {
  const form = h("form", { class: "filters", role: "search" }, fields.map(([name, label, attrs]) => field(label, { name, ...attrs })));
  for (const [name] of fields) if (query.get(name)) form.elements[name].value = query.get(name);
  form.addEventListener("submit", (e) => e.preventDefault());
  return form;
}

function values(form) {
  return Object.fromEntries([...new FormData(form)].filter(([, v]) => String(v).trim() !== ""));
}

export async function renderInvoices(main, _params, { query }) {
  const form = filterForm(
    [
      ["q", "Search", { type: "search", placeholder: "Number or customer" }],
      ["status", "Status", { options: [["", "Any"], ["open", "Open"], ["partially_paid", "Partially paid"], ["paid", "Paid"], ["void", "Void"], ["draft", "Draft"]] }],
      ["overdue", "Overdue", { options: [["", "Any"], ["true", "Overdue only"]] }],
      ["currency", "Currency", { maxlength: 3, size: 4 }],
    ],
    query,
  );
  const list = endlessTable(
    ["Number", "Issued", "Due", "Total", "Paid", "Due now", "Status"],
    (cursor) => get("/invoices", { ...values(form), limit: 50, cursor }),
    (i) =>
      h(
        "tr",
        { dataset: { id: i.id } },
        h("td", {}, h("a", { href: `#/invoices/${i.id}` }, i.number)),
        h("td", {}, day(i.issue_date)),
        h("td", {}, day(i.due_date)),
        h("td", { class: "num" }, money(i.amount_total, i.currency)),
        h("td", { class: "num" }, money(i.amount_paid, i.currency)),
        h("td", { class: "num" }, money(i.amount_due, i.currency)),
        h("td", {}, badge(i.status)),
      ),
    { empty: "No invoices match." },
  );
  form.addEventListener("input", debounce(() => list.reload(), 250));
  fill(main, screen("Invoices", form, list.element));
}

export async function renderInvoice(main, { id }) {
  const invoice = await get(`/invoices/${id}`);
  const customer = invoice.customer_id ? await get(`/customers/${invoice.customer_id}`).catch(() => null) : null;
  const matches = await get("/reconciliation/matches", { target_id: id, limit: 100 });
  fill(
    main,
    screen(
      `Invoice ${invoice.number}`,
      h("p", {}, badge(invoice.status), customer ? ` ${customer.name}` : ""),
      h(
        "dl",
        {},
        h("dt", {}, "Total"), h("dd", {}, money(invoice.amount_total, invoice.currency)),
        h("dt", {}, "Paid"), h("dd", { id: "amount-paid" }, money(invoice.amount_paid, invoice.currency)),
        h("dt", {}, "Due"), h("dd", { id: "amount-due" }, money(invoice.amount_due, invoice.currency)),
        h("dt", {}, "Issued"), h("dd", {}, day(invoice.issue_date)),
        h("dt", {}, "Due date"), h("dd", {}, day(invoice.due_date)),
        invoice.payment_reference ? [h("dt", {}, "Payment reference"), h("dd", {}, invoice.payment_reference)] : null,
      ),
      h("h2", {}, "Matches that paid it"),
      matches.data.length
        ? h(
            "ul",
            { class: "matches" },
            matches.data.map((m) => {
              const paid = m.allocations.filter((a) => a.target_id === id).reduce((s, a) => s + a.amount, 0);
              return h(
                "li",
                {},
                h("a", { href: `#/matches/${m.id}` }, `${money(paid, invoice.currency)} by ${m.origin} match`),
                " ",
                badge(m.status),
                ` · ${when(m.created_at)}`,
              );
            }),
          )
        : h("p", {}, "No payment is matched to this invoice yet."),
    ),
  );
}

export async function renderCustomers(main, _params, { query }) {
  const form = filterForm([["q", "Search", { type: "search", placeholder: "Name or email" }]], query);
  const list = endlessTable(
    ["Name", "Email", "Aliases", "Bank accounts", "Source"],
    (cursor) => get("/customers", { ...values(form), limit: 50, cursor }),
    (c) =>
      h(
        "tr",
        {},
        h("td", {}, h("a", { href: `#/invoices?q=${encodeURIComponent(c.name)}` }, c.name)),
        h("td", {}, c.email || ""),
        h("td", {}, (c.aliases || []).join(", ")),
        h("td", {}, (c.bank_accounts || []).map((b) => b.iban || b.account_number || "").join(", ")),
        h("td", {}, c.source),
      ),
    { empty: "No customers match." },
  );
  form.addEventListener("input", debounce(() => list.reload(), 250));
  fill(main, screen("Customers", form, list.element));
}

export async function renderPayouts(main, _params, { query }) {
  const form = filterForm(
    [["status", "Status", { options: [["", "Any"], ["paid", "Paid"], ["in_transit", "In transit"], ["pending", "Pending"], ["failed", "Failed"]] }]],
    query,
  );
  const list = endlessTable(
    ["Arrival", "Amount", "Status", "Charges", "Fees", "Adds up"],
    (cursor) => get("/stripe/payouts", { ...values(form), limit: 50, cursor }),
    (p) =>
      h(
        "tr",
        {},
        h("td", {}, h("a", { href: `#/payouts/${p.id}` }, day(p.arrival_date))),
        h("td", { class: "num" }, money(p.amount, p.currency)),
        h("td", {}, badge(p.status)),
        h("td", { class: "num" }, p.summary ? money(p.summary.gross, p.currency) : "—"),
        h("td", { class: "num" }, p.summary ? money(p.summary.fees, p.currency) : "—"),
        h("td", {}, p.summary ? (p.summary.adds_up ? "yes" : `no (${money(p.summary.difference, p.currency)})`) : "—"),
      ),
    { empty: "No Stripe payouts yet." },
  );
  form.addEventListener("input", () => list.reload());
  fill(main, screen("Stripe payouts", form, list.element));
}

export async function renderPayout(main, { id }) {
  const payout = await get(`/stripe/payouts/${id}`);
  const [lines, matches] = await Promise.all([
    get(`/stripe/payouts/${id}/balance_transactions`, { limit: 100 }),
    get("/reconciliation/matches", { target_id: id, status: "active", limit: 10 }),
  ]);
  const s = payout.summary;
  fill(
    main,
    screen(
      `Stripe payout ${money(payout.amount, payout.currency)}`,
      h("p", {}, badge(payout.status), ` arrives ${day(payout.arrival_date)} · ${payout.statement_descriptor || ""} ${payout.trace_id || ""}`),
      s
        ? h(
            "dl",
            {},
            h("dt", {}, "Charges"), h("dd", {}, money(s.gross, payout.currency)),
            h("dt", {}, "Refunds"), h("dd", {}, money(s.refunds, payout.currency)),
            h("dt", {}, "Fees"), h("dd", {}, money(s.fees, payout.currency)),
            h("dt", {}, "Adjustments"), h("dd", {}, money(s.adjustments, payout.currency)),
            h("dt", {}, "Net"), h("dd", {}, money(s.net, payout.currency)),
          )
        : null,
      h("h2", {}, "Landed in the bank as"),
      matches.data.length
        ? h("ul", {}, matches.data.map((m) => h("li", {}, h("a", { href: `#/matches/${m.id}` }, m.transactions.map((t) => `${t.transaction_id} (${money(t.amount, t.currency)})`).join(", ")))))
        : h("p", {}, "Not matched to a bank line yet."),
      h("h2", {}, `Breakdown (${lines.data.length})`),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ["Type", "Amount", "Fee", "Net", "Description"].map((c) => h("th", { scope: "col" }, c)))),
          h(
            "tbody",
            {},
            lines.data.map((b) =>
              h("tr", {}, h("td", {}, b.type), h("td", { class: "num" }, money(b.amount, b.currency)), h("td", { class: "num" }, money(b.fee, b.currency)), h("td", { class: "num" }, money(b.net, b.currency)), h("td", {}, b.description || "")),
            ),
          ),
        ),
      ),
    ),
  );
}
