// A match's page (and unmatching it), matching by hand with allocations and adjustments, and
// the end-of-day report.

import { api, get } from "./api.js";
import { describe, forgetTargets, targetHref } from "./inbox.js";
import { badge, day, errorBox, field, fill, h, minorToText, money, notify, saveBlob, screen, toMinor, today, when } from "./ui.js";

const ADJUSTMENT_KINDS = [
  ["bank_charge", "Bank charge"],
  ["short_payment", "Short payment written off"],
  ["overpayment", "Overpayment"],
  ["fx_difference", "FX difference"],
  ["other", "Other"],
];

export async function renderMatch(main, { id }) {
  forgetTargets();
  const match = await get(`/reconciliation/matches/${id}`);
  const out = h("div", { "aria-live": "polite" });
  const allocations = h("ul", {});
  Promise.all(match.allocations.map((a) => describe(a.target_type, a.target_id))).then((lines) =>
    fill(
      allocations,
      match.allocations.map((a, i) =>
        h("li", {}, h("a", { href: targetHref(a.target_type, a.target_id) }, lines[i]), ` ← ${money(a.amount, a.currency)}`),
      ),
    ),
  );
  const unmatchForm = h(
    "form",
    { class: "inline", "aria-label": "Unmatch" },
    field("Reason", { name: "reason", required: true, placeholder: "Why this match was wrong" }),
    h("button", { type: "submit", class: "danger" }, "Unmatch"),
  );
  unmatchForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const reason = unmatchForm.elements.reason.value.trim();
      await api("DELETE", `/reconciliation/matches/${id}`, { query: { reason } });
      notify("Unmatched: the invoices owe their amounts again.");
      await renderMatch(main, { id });
    } catch (error) {
      fill(out, errorBox(error));
    }
  });
  fill(
    main,
    screen(
      `Match ${match.id}`,
      h("p", {}, badge(match.status), ` ${match.origin} · created ${when(match.created_at)}`, match.score ? ` · score ${match.score}` : ""),
      h("h2", {}, "Bank transactions"),
      h("ul", {}, match.transactions.map((t) => h("li", {}, `${t.transaction_id}: ${money(t.amount, t.currency)}`))),
      h("h2", {}, "Pays"),
      allocations,
      match.adjustments.length ? h("h2", {}, "Adjustments") : null,
      h("ul", {}, match.adjustments.map((a) => h("li", {}, `${a.kind.replace(/_/g, " ")}: ${money(a.amount, a.currency)} ${a.description || ""}`))),
      match.reasons.length ? h("h2", {}, "Why") : null,
      h("ul", { class: "reasons" }, match.reasons.map((r) => h("li", {}, r.detail))),
      match.note ? h("p", {}, `Note: ${match.note}`) : null,
      match.status === "active" ? unmatchForm : h("p", {}, `Unmatched ${when(match.unmatched_at)}: ${match.unmatch_reason || ""}`),
      out,
    ),
  );
}

/** Match by hand: the transaction, invoices picked by search with their amounts, adjustments. */
export async function renderManual(main, _params, { query }) {
  const txId = query.get("transaction_id");
  if (!txId) {
    fill(main, screen("Match by hand", h("p", {}, "Pick a credit in the ", h("a", { href: "#/inbox" }, "inbox"), " first.")));
    return;
  }
  const tx = await get(`/transactions/${txId}`);
  const chosen = new Map(); // invoice id -> { invoice, amount }
  const adjustments = [];
  const out = h("div", { "aria-live": "polite" });
  const picked = h("tbody");
  const balance = h("p", { class: "balance", role: "status" });
  const results = h("ul", { class: "results" });

  const redraw = () => {
    fill(
      picked,
      [...chosen.values()].map(({ invoice, amount }) => {
        const input = h("input", { type: "text", inputmode: "decimal", value: minorToText(amount, invoice.currency), "aria-label": `Amount for ${invoice.number}`, size: 10 });
        input.addEventListener("change", () => {
          chosen.get(invoice.id).amount = toMinor(input.value, invoice.currency);
          showBalance();
        });
        return h(
          "tr",
          {},
          h("td", {}, invoice.number),
          h("td", { class: "num" }, money(invoice.amount_due, invoice.currency)),
          h("td", {}, input),
          h("td", {}, h("button", { type: "button", class: "link", onclick: () => (chosen.delete(invoice.id), redraw()) }, "Remove")),
        );
      }),
      adjustments.map((a, i) =>
        h(
          "tr",
          { class: "adjustment" },
          h("td", {}, ADJUSTMENT_KINDS.find((k) => k[0] === a.kind)[1]),
          h("td", {}, ""),
          h("td", { class: "num" }, money(a.amount, tx.currency)),
          h("td", {}, h("button", { type: "button", class: "link", onclick: () => (adjustments.splice(i, 1), redraw()) }, "Remove")),
        ),
      ),
    );
    showBalance();
  };
  const showBalance = () => {
    const allocated = [...chosen.values()].reduce((s, c) => s + c.amount, 0);
    const adjusted = adjustments.reduce((s, a) => s + a.amount, 0);
    const left = tx.amount - allocated - adjusted;
    balance.textContent =
      left === 0
        ? "Balanced to the cent."
        : `Still to explain: ${money(left, tx.currency)} (book it as an adjustment, or change an amount).`;
    balance.dataset.left = String(left);
  };

  const search = field("Find open invoices", { type: "search", name: "invoice_q", placeholder: "Number, customer, amount" });
  const input = search.querySelector("input");
  const find = async () => {
    const q = input.value.trim();
    const page = await get("/invoices", { q: q || undefined, currency: tx.currency, status: undefined, limit: 10 });
    const open = page.data.filter((i) => i.status === "open" || i.status === "partially_paid");
    fill(
      results,
      open.length
        ? open.map((invoice) =>
            h(
              "li",
              {},
              h(
                "button",
                {
                  type: "button",
                  class: "link add-invoice",
                  dataset: { number: invoice.number },
                  onclick: () => {
                    const allocated = [...chosen.values()].reduce((s, c) => s + c.amount, 0);
                    chosen.set(invoice.id, { invoice, amount: Math.min(invoice.amount_due, Math.max(tx.amount - allocated, 0)) || invoice.amount_due });
                    redraw();
                  },
                },
                `Add ${invoice.number}`,
              ),
              ` · owes ${money(invoice.amount_due, invoice.currency)} · due ${day(invoice.due_date)}`,
            ),
          )
        : h("li", { class: "muted" }, "No open invoice matches."),
    );
  };
  let timer;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => find().catch((e) => fill(results, errorBox(e))), 250);
  });

  const adjustmentForm = h(
    "form",
    { class: "inline", "aria-label": "Book the difference" },
    field("Adjustment", { name: "kind", options: ADJUSTMENT_KINDS }),
    field("Amount (negative when less arrived)", { name: "amount", inputmode: "decimal", required: true }),
    h("button", { type: "submit" }, "Add adjustment"),
  );
  adjustmentForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const amount = toMinor(adjustmentForm.elements.amount.value, tx.currency);
    if (!Number.isFinite(amount) || amount === 0) {
      fill(out, errorBox({ message: "An adjustment needs an amount other than zero, such as -5.00." }));
      return;
    }
    adjustments.push({ kind: adjustmentForm.elements.kind.value, amount });
    adjustmentForm.reset();
    redraw();
  });
  const note = field("Note", { name: "note" });
  const save = h("button", { type: "button", class: "primary", id: "save-match" }, "Match");
  save.addEventListener("click", async () => {
    try {
      const body = {
        transaction_ids: [tx.id],
        allocations: [...chosen.values()].map(({ invoice, amount }) => ({ target_type: "invoice", target_id: invoice.id, amount })),
        adjustments: adjustments.map((a) => ({ kind: a.kind, amount: a.amount })),
        note: note.querySelector("input").value.trim() || null,
      };
      const match = await api("POST", "/reconciliation/matches", { body });
      notify("Matched.");
      location.hash = `#/matches/${match.id}`;
    } catch (error) {
      fill(out, errorBox(error));
    }
  });
  fill(
    main,
    screen(
      "Match by hand",
      h("p", {}, `${money(tx.amount, tx.currency)} from ${tx.counterparty_name || "an unknown payer"} on ${day(tx.booking_date || tx.value_date)}: ${tx.description || tx.reference || ""}`),
      search,
      results,
      h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, ["Invoice", "Owes", "Allocate", ""].map((c) => h("th", { scope: "col" }, c)))), picked)),
      adjustmentForm,
      balance,
      note,
      out,
      h("div", { class: "actions" }, save),
    ),
  );
  redraw();
  await find();
}

export async function renderReport(main, _params, { query }) {
  const date = query.get("date") || today();
  const form = h("form", { class: "filters", "aria-label": "Report date" }, field("Date", { type: "date", name: "date", value: date }), h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/report?date=${form.elements.date.value}`;
  });
  const report = await get("/reconciliation/report", { date });
  const csv = h("button", { type: "button" }, "Download CSV");
  const out = h("div", { "aria-live": "polite" });
  csv.addEventListener("click", async () => {
    try {
      const response = await api("GET", "/reconciliation/report", { query: { date, format: "csv" }, raw: true });
      saveBlob(await response.blob(), `report-${date}.csv`);
    } catch (error) {
      fill(out, errorBox(error));
    }
  });
  const split = (s, currency) => `${s.credits.count} in (${money(s.credits.amount, currency)}), ${s.debits.count} out (${money(s.debits.amount, currency)})`;
  fill(
    main,
    screen(
      `End of day ${date}`,
      form,
      h("div", { class: "toolbar" }, csv),
      out,
      report.accounts.map((a) =>
        h(
          "section",
          { class: "panel" },
          h("h2", {}, a.account_name || a.account_id),
          h(
            "dl",
            {},
            h("dt", {}, "Opening balance"), h("dd", {}, money(a.opening_balance.amount, a.currency)),
            h("dt", {}, "Closing balance"), h("dd", {}, money(a.closing_balance.amount, a.currency)),
            h("dt", {}, "Booked"), h("dd", {}, `${money(a.booked.net, a.currency)} net over ${a.booked.count}`),
            h("dt", {}, "Balance check"), h("dd", {}, badge(a.balance_check.status), " ", a.balance_check.detail),
            h("dt", {}, "Matched"), h("dd", {}, split(a.by_match_status.matched, a.currency)),
            h("dt", {}, "Suggested"), h("dd", {}, split(a.by_match_status.suggested, a.currency)),
            h("dt", {}, "Unmatched"), h("dd", {}, split(a.by_match_status.unmatched, a.currency)),
            h("dt", {}, "Excluded"), h("dd", {}, split(a.by_match_status.excluded, a.currency)),
          ),
        ),
      ),
      h("h2", {}, "Overdue invoices"),
      report.overdue_invoices.length
        ? h("ul", {}, report.overdue_invoices.map((o) => h("li", {}, h("a", { href: `#/invoices?overdue=true&currency=${o.currency}` }, `${o.count} in ${o.currency}`), ` owing ${money(o.amount_due, o.currency)}`)))
        : h("p", {}, "None."),
    ),
  );
}
