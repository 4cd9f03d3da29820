// Transactions: the API's filters, search as you type, endless scrolling on the cursor,
// editing category, notes and tags, and the CSV export of the current filter.

import { api, get } from "./api.js";
import { badge, day, debounce, endlessTable, errorBox, field, fill, h, money, notify, saveBlob, screen } from "./ui.js";

const FILTERS = [
  ["q", "Search", { type: "search", placeholder: "Text, counterparty, reference" }],
  ["match_status", "Match status", { options: [["", "Any"], ["unmatched", "Unmatched"], ["suggested", "Suggested"], ["matched", "Matched"], ["excluded", "Excluded"]] }],
  ["direction", "Direction", { options: [["", "Any"], ["credit", "Money in"], ["debit", "Money out"]] }],
  ["currency", "Currency", { placeholder: "EUR", maxlength: 3, size: 4 }],
  ["booking_date_from", "Booked from", { type: "date" }],
  ["booking_date_to", "Booked to", { type: "date" }],
  ["category", "Category", {}],
];

function filtersOf(form) {
  const query = {};
  for (const [name] of FILTERS) {
    const value = form.elements[name].value.trim();
    if (value) query[name] = name === "currency" ? value.toUpperCase() : value;
  }
  return query;
}

function editor(tx, onSaved) {
  const form = h(
    "form",
    { class: "editor", "aria-label": "Edit transaction" },
    field("Category", { name: "category", value: tx.category || "" }),
    h("label", { class: "field" }, h("span", {}, "Notes"), h("textarea", { name: "notes", rows: 3 }, tx.notes || "")),
    field("Tags (comma separated)", { name: "tags", value: (tx.tags || []).join(", ") }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Save"), h("button", { type: "button", class: "cancel" }, "Cancel")),
  );
  const out = h("div", { "aria-live": "polite" });
  form.prepend(out);
  form.querySelector(".cancel").addEventListener("click", () => form.closest("tr").remove());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = {
      category: data.get("category").trim() || null,
      notes: data.get("notes").trim() || null,
      tags: data.get("tags").split(",").map((t) => t.trim()).filter(Boolean),
    };
    try {
      const saved = await api("PATCH", `/transactions/${tx.id}`, { body });
      notify("Transaction saved.");
      onSaved(saved);
    } catch (error) {
      fill(out, errorBox(error));
    }
  });
  return form;
}

function row(tx) {
  const tr = h(
    "tr",
    { dataset: { id: tx.id } },
    h("td", {}, day(tx.booking_date || tx.value_date)),
    h("td", {}, h("div", {}, tx.counterparty_name || "—"), h("div", { class: "muted small" }, tx.description || tx.reference || "")),
    h("td", { class: "num" }, money(tx.amount, tx.currency)),
    h("td", {}, badge(tx.match_status)),
    h("td", {}, tx.category || "", (tx.tags || []).map((t) => h("span", { class: "tag" }, t))),
    h("td", {}, h("button", { type: "button", class: "link", "aria-label": `Edit ${tx.counterparty_name || tx.id}` }, "Edit")),
  );
  tr.querySelector("button").addEventListener("click", () => {
    if (tr.nextElementSibling && tr.nextElementSibling.classList.contains("edit-row")) return;
    const cell = h("td", { colspan: 6 });
    const editRow = h("tr", { class: "edit-row" }, cell);
    cell.append(editor(tx, (saved) => {
      editRow.remove();
      tr.replaceWith(row(saved));
    }));
    tr.after(editRow);
    cell.querySelector("input").focus();
  });
  return tr;
}

async function download(query, out) {
  try {
    const response = await api("GET", "/transactions/export", { query, raw: true });
    saveBlob(await response.blob(), `transactions-${new Date().toISOString().slice(0, 10)}.csv`);
    notify("Export downloaded.");
  } catch (error) {
    fill(out, errorBox(error));
  }
}

export async function render(main, _params, { query }) {
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter transactions" },
    FILTERS.map(([name, label, attrs]) => field(label, { name, ...attrs })),
  );
  for (const [name] of FILTERS) if (query.get(name)) form.elements[name].value = query.get(name);
  const out = h("div", { "aria-live": "polite" });
  const list = endlessTable(
    ["Date", "Counterparty", "Amount", "Status", "Category", ""],
    (cursor) => get("/transactions", { ...filtersOf(form), limit: 50, cursor }),
    row,
    { empty: "No transactions match." },
  );
  const reload = debounce(() => list.reload(), 250);
  form.addEventListener("input", reload);
  form.addEventListener("submit", (e) => e.preventDefault());
  const exportButton = h("button", { type: "button", id: "export" }, "Download CSV");
  exportButton.addEventListener("click", () => download(filtersOf(form), out));
  fill(main, screen("Transactions", form, h("div", { class: "toolbar" }, exportButton), out, list.element));
  const onKey = (event) => {
    if (event.key === "/" && !event.target.closest("input, textarea, select")) {
      event.preventDefault();
      form.elements.q.focus();
    }
  };
  document.addEventListener("keydown", onKey);
  return () => document.removeEventListener("keydown", onKey);
}
