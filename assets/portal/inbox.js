// The reconciliation inbox: credits waiting for a person, each with its ranked suggestions and
// the reasons in words. Keyboard: j/k move, a accepts, r rejects the top suggestion, m matches
// by hand, / searches.

import { api, get } from "./api.js";
import { badge, day, debounce, errorBox, field, fill, h, money, notify, screen } from "./ui.js";

// Headlines fetched for this screen. A decision changes what invoices owe, so the cache lives
// only until the next decision or the next screen (`forgetTargets`).
const targets = new Map();

export function forgetTargets() {
  targets.clear();
}

/** An invoice's or payout's headline, fetched once. */
export async function describe(type, id) {
  if (type === "invoices") type = "invoice";
  const key = `${type}:${id}`;
  if (!targets.has(key)) {
    const path = type === "invoice" ? `/invoices/${id}` : `/stripe/payouts/${id}`;
    targets.set(key, get(path).catch(() => null));
  }
  const item = await targets.get(key);
  if (!item) return id;
  if (type === "invoice") return `Invoice ${item.number} · due ${money(item.amount_due, item.currency)}`;
  return `Stripe payout ${money(item.amount, item.currency)} · ${day(item.arrival_date)}`;
}

function suggestionCard(suggestion, tx, onDecided) {
  const heading = h("h3", {}, `#${suggestion.rank} · score ${suggestion.score.toFixed(2)}`);
  const what = h("ul", { class: "targets" });
  Promise.all(suggestion.target_ids.map((id) => describe(suggestion.target_type, id))).then((lines) =>
    fill(what, lines.map((line, i) => h("li", {}, h("a", { href: targetHref(suggestion.target_type, suggestion.target_ids[i]) }, line)))),
  );
  const reasons = h(
    "ul",
    { class: "reasons" },
    suggestion.reasons.map((r) =>
      h("li", { class: r.weight < 0 ? "against" : "" }, r.detail, h("span", { class: "muted" }, ` (${r.signal} ${r.strength.toFixed(2)})`)),
    ),
  );
  const adjustments = (suggestion.adjustments || []).map((a) =>
    h("li", {}, `${a.kind.replace(/_/g, " ")}: ${money(a.amount, a.currency)}`),
  );
  const out = h("div", { "aria-live": "polite" });
  const decide = async (verb) => {
    try {
      await api("POST", `/reconciliation/suggestions/${suggestion.id}/${verb}`);
      notify(verb === "accept" ? `Matched ${money(tx.amount, tx.currency)}.` : "Suggestion rejected.");
      onDecided(verb);
    } catch (error) {
      fill(out, errorBox(error));
    }
  };
  return h(
    "article",
    { class: "suggestion", dataset: { id: suggestion.id } },
    heading,
    what,
    reasons,
    adjustments.length ? h("ul", { class: "adjustments" }, adjustments) : null,
    out,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "primary accept", onclick: () => decide("accept") }, "Accept (a)"),
      h("button", { type: "button", class: "reject", onclick: () => decide("reject") }, "Reject (r)"),
    ),
  );
}

export function targetHref(type, id) {
  return type === "stripe_payout" ? `#/payouts/${id}` : `#/invoices/${id}`;
}

/** Shows `tx` and its suggestions in `pane`, unless another credit was selected meanwhile. */
async function detail(pane, tx, onDecided, isCurrent) {
  fill(pane, h("p", { class: "muted" }, "Loading suggestions…"));
  const page = await get("/reconciliation/suggestions", { transaction_id: tx.id, status: "open", limit: 10 });
  if (!isCurrent()) return;
  const exclude = async () => {
    try {
      await api("POST", `/transactions/${tx.id}/exclude`, { body: {} });
      notify("Transaction excluded from reconciliation.");
      onDecided("exclude");
    } catch (error) {
      pane.prepend(errorBox(error));
    }
  };
  fill(
    pane,
    h("h2", {}, `${money(tx.amount, tx.currency)} from ${tx.counterparty_name || "an unknown payer"}`),
    h("p", { class: "muted" }, `${day(tx.booking_date || tx.value_date)} · ${tx.description || tx.reference || "no remittance text"}`),
    page.data.length
      ? page.data.map((s) => suggestionCard(s, tx, onDecided))
      : h("p", {}, "No suggestion: match it by hand, or exclude it."),
    h(
      "div",
      { class: "actions" },
      h("a", { class: "button", href: `#/match?transaction_id=${tx.id}` }, "Match by hand (m)"),
      h("button", { type: "button", onclick: exclude }, "Exclude"),
    ),
  );
}

export async function render(main) {
  forgetTargets();
  const list = h("ul", { class: "inbox-list", role: "listbox", "aria-label": "Credits to reconcile", tabindex: "0" });
  const pane = h("section", { class: "inbox-detail", "aria-live": "polite", "aria-label": "Suggestions" });
  const search = field("Search", { type: "search", name: "q", placeholder: "Press / to search" });
  const status = field("Show", { name: "match_status", options: [["suggested", "Suggested"], ["unmatched", "Unmatched"]] });
  const filters = h("form", { class: "filters", role: "search" }, search, status);
  filters.addEventListener("submit", (e) => e.preventDefault());
  let items = [];
  let selected = 0;
  let shown = 0; // which selection the detail pane may show: a slow answer for an earlier one is dropped

  const select = (index) => {
    if (!items.length) return;
    selected = Math.max(0, Math.min(items.length - 1, index));
    for (const [i, li] of [...list.children].entries()) li.setAttribute("aria-selected", String(i === selected));
    const li = list.children[selected];
    li.scrollIntoView({ block: "nearest" });
    list.setAttribute("aria-activedescendant", li.id);
    const mine = ++shown;
    const isCurrent = () => mine === shown;
    detail(pane, items[selected], afterDecision, isCurrent).catch((error) => isCurrent() && fill(pane, errorBox(error)));
  };

  async function load() {
    const page = await get("/transactions", {
      direction: "credit",
      match_status: filters.elements.match_status.value,
      q: filters.elements.q.value.trim(),
      limit: 100,
    });
    items = page.data;
    fill(
      list,
      items.map((tx, i) =>
        h(
          "li",
          { id: `tx-${tx.id}`, role: "option", dataset: { id: tx.id }, "aria-selected": "false", onclick: () => select(i) },
          h("span", { class: "num" }, money(tx.amount, tx.currency)),
          h("span", {}, tx.counterparty_name || "—"),
          h("span", { class: "muted small" }, day(tx.booking_date || tx.value_date)),
          badge(tx.match_status),
        ),
      ),
    );
    if (items.length) select(Math.min(selected, items.length - 1));
    else fill(pane, h("p", {}, "Nothing to reconcile here. Well done."));
  }

  function afterDecision() {
    forgetTargets();
    load().catch((error) => fill(pane, errorBox(error)));
  }

  const reload = debounce(() => {
    selected = 0;
    load().catch((error) => fill(pane, errorBox(error)));
  }, 250);
  filters.addEventListener("input", reload);

  fill(main, screen("Reconciliation inbox", filters, h("div", { class: "inbox" }, list, pane)));
  await load();

  const onKey = (event) => {
    if (event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey || event.altKey) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const top = pane.querySelector(".suggestion");
    const actions = {
      j: () => select(selected + 1),
      k: () => select(selected - 1),
      a: () => top && top.querySelector(".accept").click(),
      r: () => top && top.querySelector(".reject").click(),
      m: () => items[selected] && (location.hash = `#/match?transaction_id=${items[selected].id}`),
      "/": () => filters.elements.q.focus(),
    };
    if (actions[event.key]) {
      event.preventDefault();
      actions[event.key]();
    }
  };
  document.addEventListener("keydown", onKey);
  return () => document.removeEventListener("keydown", onKey);
}
