-- Reconciliation (docs/reconciliation.md): matches that tie bank credits to the invoices and
-- Stripe payouts they pay, the engine's suggestions, the pairs people rejected, each tenant's
-- settings and rules, and runs over a date range.

-- A transaction is `unmatched`, `suggested` (the engine proposes something a person must decide),
-- `matched` (it belongs to an active match) or `excluded` (a person or a rule took it out of
-- reconciliation: an internal transfer, a loan, a refund). `partially_matched` is gone: a
-- transaction always belongs wholly to one match; a difference is an adjustment.
alter table transactions drop constraint transactions_match_status_check;
update transactions set match_status = 'matched' where match_status = 'partially_matched';
alter table transactions
    add constraint transactions_match_status_check
        check (match_status in ('unmatched', 'suggested', 'matched', 'excluded')),
    -- Why a transaction is excluded, and who excluded it (a user, a key or a rule).
    add column excluded_reason    text check (length(excluded_reason) <= 500),
    add column excluded_by        text,
    -- The customer a reconciliation rule assigned (a hint the engine uses).
    add column customer_id        text,
    -- Set when the transaction needs the engine's attention (new, changed, unmatched, or a
    -- counterpart it might pay appeared); cleared when the engine has looked at it.
    add column reconcile_pending  boolean not null default true,
    add constraint transactions_excluded_shape check ((match_status = 'excluded') = (excluded_by is not null));
-- The engine's bookkeeping (`reconcile_pending`) is not a change to the transaction: it leaves
-- `updated_at` alone, so lists by `updated_since` and sync clients do not see the engine looking.
-- (Generated columns are left out: a BEFORE trigger does not see their new values; they follow
-- the columns compared.)
create function payymo_touch_transaction() returns trigger
    language plpgsql as $$
begin
    if (to_jsonb(old) - array['reconcile_pending', 'updated_at', 'search_text', 'list_date', 'counterparty_account'])
       is distinct from
       (to_jsonb(new) - array['reconcile_pending', 'updated_at', 'search_text', 'list_date', 'counterparty_account']) then
        new.updated_at = now();
    end if;
    return new;
end;
$$;
drop trigger transactions_touch on transactions;
create trigger transactions_touch before update on transactions
    for each row execute function payymo_touch_transaction();
-- What the engine still has to look at: only unmatched and suggested credits.
create index transactions_reconcile_pending_idx on transactions (tenant_id, id)
    where reconcile_pending and match_status in ('unmatched', 'suggested') and amount > 0;
-- The inbox: credits left for a person, newest first.
create index transactions_open_credits_idx on transactions (tenant_id, coalesce(booking_date, value_date) desc, id desc)
    where match_status in ('unmatched', 'suggested') and amount > 0;

-- What references are compared on: uppercase letters and digits only ("inv-2026/0104" is
-- INV20260104), so spacing, case and punctuation never matter.
create function payymo_ref_key(value text) returns text
    language sql immutable parallel safe
    return nullif(upper(regexp_replace(value, '[^A-Za-z0-9]', '', 'g')), '');

-- The other side's account as the bank reports it (the payer's on a credit, the payee's on a
-- debit), IBAN or else BBAN, as a reference key: compared with customers' bank accounts.
alter table transactions add column counterparty_account text generated always as (
    payymo_ref_key(case when amount > 0
                        then coalesce(raw #>> '{debtorAccount,iban}', raw #>> '{debtorAccount,bban}')
                        else coalesce(raw #>> '{creditorAccount,iban}', raw #>> '{creditorAccount,bban}') end)
) stored;

-- A customer's bank accounts as the same keys (IBAN, else sort code and account number, else
-- routing and account number), GIN-indexed: who paid, by account.
create function payymo_account_keys(accounts jsonb) returns text[]
    language sql immutable parallel safe
    return array(select k from (select payymo_ref_key(coalesce(
                     a ->> 'iban',
                     nullif(coalesce(a ->> 'sort_code', a ->> 'routing_number', '') || coalesce(a ->> 'account_number', ''), ''))) as k
                 from jsonb_array_elements(accounts) a) keys where k is not null);
alter table customers add column account_keys text[] generated always as (payymo_account_keys(bank_accounts)) stored;
create index customers_account_keys_idx on customers using gin (account_keys);

alter table invoices
    add constraint invoices_paid_within_total check (amount_paid <= amount_total),
    add column number_key    text generated always as (payymo_ref_key(number)) stored,
    add column reference_key text generated always as (payymo_ref_key(payment_reference)) stored,
    add column rf_key        text generated always as (payymo_ref_key(rf_reference)) stored;
-- Candidates by reference, by amount due, by customer: open invoices only.
create index invoices_open_number_idx on invoices (tenant_id, number_key)
    where status in ('open', 'partially_paid');
create index invoices_open_reference_idx on invoices (tenant_id, reference_key)
    where status in ('open', 'partially_paid') and reference_key is not null;
create index invoices_open_rf_idx on invoices (tenant_id, rf_key)
    where status in ('open', 'partially_paid') and rf_key is not null;
create index invoices_open_due_idx on invoices (tenant_id, currency, (amount_total - amount_paid))
    where status in ('open', 'partially_paid');
create index invoices_open_customer_idx on invoices (tenant_id, customer_id)
    where status in ('open', 'partially_paid');
create index invoices_open_number_trgm_idx on invoices using gin (number_key gin_trgm_ops)
    where status in ('open', 'partially_paid');

-- A match: one or more bank transactions, the counterparts they pay (allocations) and the
-- adjustments that explain the difference. It balances per currency:
--   Σ transactions = Σ direct allocations + Σ adjustments
-- (an allocation `via_payout_id` pays an invoice through a Stripe payout's charge; it is part of
-- that payout's gross, not of the bank-level sum). Unmatching keeps the match, `unmatched`.
create table reconciliation_matches (
    tenant_id      text not null references tenants (id) on delete cascade,
    id             text not null,
    status         text not null default 'active' check (status in ('active', 'unmatched')),
    -- `manual` (POST /matches), `suggestion` (a person accepted one), `auto` (the engine).
    origin         text not null check (origin in ('manual', 'suggestion', 'auto')),
    -- Who decided: `user:usr_…`, `api_key:key_…`, `oauth_client:…`, `engine`.
    created_by     text not null,
    suggestion_id  text,
    score          numeric(5, 4),
    -- The signals behind an engine's or a suggestion's match, as reported.
    reasons        jsonb not null default '[]',
    note           text check (length(note) <= 2000),
    metadata       jsonb not null default '{}',
    unmatched_at   timestamptz,
    unmatched_by   text,
    unmatch_reason text check (length(unmatch_reason) <= 2000),
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    primary key (tenant_id, id),
    constraint reconciliation_matches_unmatched_shape
        check ((status = 'unmatched') = (unmatched_at is not null))
);
create index reconciliation_matches_list_idx on reconciliation_matches (tenant_id, id desc);
create trigger reconciliation_matches_touch before update on reconciliation_matches
    for each row execute function payymo_touch_updated_at();

-- The bank side of a match: each transaction wholly. `active` mirrors the match's status so that
-- a transaction belongs to one active match at most, enforced here, whoever races.
create table reconciliation_match_transactions (
    tenant_id      text not null references tenants (id) on delete cascade,
    match_id       text not null,
    transaction_id text not null,
    amount         bigint not null,
    currency       text not null check (currency ~ '^[A-Z]{3}$'),
    active         boolean not null default true,
    primary key (tenant_id, match_id, transaction_id),
    foreign key (tenant_id, match_id) references reconciliation_matches (tenant_id, id) on delete cascade,
    foreign key (tenant_id, transaction_id) references transactions (tenant_id, id)
);
create unique index reconciliation_match_transactions_active_key
    on reconciliation_match_transactions (tenant_id, transaction_id) where active;

-- The counterpart side: how much of the match pays which invoice or Stripe payout.
create table reconciliation_allocations (
    tenant_id      text not null references tenants (id) on delete cascade,
    match_id       text not null,
    position       integer not null,
    target_type    text not null check (target_type in ('invoice', 'stripe_payout')),
    target_id      text not null,
    amount         bigint not null check (amount > 0),
    currency       text not null check (currency ~ '^[A-Z]{3}$'),
    -- Set on an invoice paid by a charge inside a Stripe payout of the same match.
    via_payout_id  text,
    via_payment_id text,
    active         boolean not null default true,
    primary key (tenant_id, match_id, position),
    foreign key (tenant_id, match_id) references reconciliation_matches (tenant_id, id) on delete cascade,
    constraint reconciliation_allocations_via_shape
        check (via_payout_id is null or target_type = 'invoice')
);
create index reconciliation_allocations_target_idx on reconciliation_allocations (tenant_id, target_type, target_id);
-- A payout is paid out once: it belongs to one active match at most.
create unique index reconciliation_allocations_payout_key on reconciliation_allocations (tenant_id, target_id)
    where active and target_type = 'stripe_payout';

-- Typed differences: a Stripe fee or refund inside a payout, a bank charge, a short payment
-- written off, an overpayment, an FX difference. Signed: a fee that reduced the credit is negative.
create table reconciliation_adjustments (
    tenant_id   text not null references tenants (id) on delete cascade,
    match_id    text not null,
    position    integer not null,
    kind        text not null check (kind in ('stripe_fee', 'stripe_refund', 'stripe_adjustment', 'bank_charge',
                                             'short_payment', 'overpayment', 'fx_difference', 'other')),
    amount      bigint not null check (amount <> 0),
    currency    text not null check (currency ~ '^[A-Z]{3}$'),
    description text check (length(description) <= 500),
    primary key (tenant_id, match_id, position),
    foreign key (tenant_id, match_id) references reconciliation_matches (tenant_id, id) on delete cascade
);

-- What the engine proposes for one transaction, ranked, with its score and reasons. `proposal`
-- holds the match it would make (transactions, allocations, adjustments) as the API shows it.
create table reconciliation_suggestions (
    tenant_id      text not null references tenants (id) on delete cascade,
    id             text not null,
    transaction_id text not null,
    -- `invoice:inv_…`, `invoices:inv_a,inv_b` (sorted), `stripe_payout:stp_…`: what a rejection names.
    target_key     text not null,
    rank           integer not null check (rank >= 1),
    score          numeric(5, 4) not null check (score between 0 and 1),
    reasons        jsonb not null,
    proposal       jsonb not null,
    status         text not null default 'open' check (status in ('open', 'accepted', 'rejected', 'superseded')),
    decided_by     text,
    decided_at     timestamptz,
    match_id       text,
    created_at     timestamptz not null default now(),
    primary key (tenant_id, id),
    foreign key (tenant_id, transaction_id) references transactions (tenant_id, id)
);
create index reconciliation_suggestions_open_idx on reconciliation_suggestions (tenant_id, transaction_id, rank)
    where status = 'open';
create index reconciliation_suggestions_list_idx on reconciliation_suggestions (tenant_id, id desc) where status = 'open';
-- The reverse lookup (suggestions for an invoice or payout) reads the targets out of the key.
create index reconciliation_suggestions_target_idx on reconciliation_suggestions
    using gin (string_to_array(split_part(target_key, ':', 2), ',')) where status = 'open';

-- Pairs a person rejected: never suggested again.
create table reconciliation_rejections (
    tenant_id      text not null references tenants (id) on delete cascade,
    transaction_id text not null,
    target_key     text not null,
    rejected_by    text not null,
    rejected_at    timestamptz not null default now(),
    primary key (tenant_id, transaction_id, target_key)
);

-- A tenant's settings; a tenant without a row has the defaults (docs/reconciliation.md).
create table reconciliation_settings (
    tenant_id            text primary key references tenants (id) on delete cascade,
    -- The score at or above which a certain candidate is matched automatically.
    auto_match_threshold numeric(5, 4) not null default 0.90 check (auto_match_threshold between 0.5 and 1),
    -- Below this, a candidate is not suggested at all.
    suggest_threshold    numeric(5, 4) not null default 0.40 check (suggest_threshold between 0 and 1),
    -- How far an amount may differ and still count as equal (minor units, and per mille of the amount).
    amount_tolerance     bigint not null default 0 check (amount_tolerance between 0 and 100000000),
    amount_tolerance_permille integer not null default 0 check (amount_tolerance_permille between 0 and 100),
    -- How many days before the issue date and after the due date a payment may come.
    date_window_days     integer not null default 60 check (date_window_days between 0 and 730),
    -- How many days a bank takes to book a payment (or a Stripe payout to arrive).
    banking_delay_days   integer not null default 3 check (banking_delay_days between 0 and 30),
    -- Which signals count: a map of signal name to on/off.
    signals              jsonb not null default '{}',
    updated_at           timestamptz not null default now()
);
create trigger reconciliation_settings_touch before update on reconciliation_settings
    for each row execute function payymo_touch_updated_at();

-- Rules: when a transaction's text or counterparty matches a pattern, assign a customer, exclude
-- it, or prefer a counterpart type. Evaluated in `position` order; the first match applies.
create table reconciliation_rules (
    tenant_id   text not null references tenants (id) on delete cascade,
    id          text not null,
    name        text not null check (length(name) between 1 and 200),
    position    integer not null default 0,
    enabled     boolean not null default true,
    -- What the pattern is matched against, and how.
    field       text not null check (field in ('any', 'description', 'counterparty_name', 'reference', 'counterparty_account')),
    operator    text not null check (operator in ('contains', 'equals', 'starts_with', 'regex')),
    pattern     text not null check (length(pattern) between 1 and 500),
    -- Optional limits on the amount (minor units, credits positive).
    amount_min  bigint,
    amount_max  bigint,
    action      text not null check (action in ('assign_customer', 'exclude', 'prefer')),
    customer_id text,
    prefer      text check (prefer in ('invoice', 'stripe_payout')),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    primary key (tenant_id, id),
    constraint reconciliation_rules_action_shape check (
        (action = 'assign_customer' and customer_id is not null and prefer is null)
        or (action = 'exclude' and customer_id is null and prefer is null)
        or (action = 'prefer' and prefer is not null and customer_id is null)),
    foreign key (tenant_id, customer_id) references customers (tenant_id, id) on delete cascade
);
create index reconciliation_rules_order_idx on reconciliation_rules (tenant_id, position, id);
create trigger reconciliation_rules_touch before update on reconciliation_rules
    for each row execute function payymo_touch_updated_at();

-- Runs over a date range (POST /reconciliation/runs): one at a time per tenant, resumable from
-- `position` (the last transaction id it finished) after a crash.
create table reconciliation_runs (
    tenant_id      text not null references tenants (id) on delete cascade,
    id             text not null,
    status         text not null default 'queued' check (status in ('queued', 'running', 'succeeded', 'failed')),
    date_from      date,
    date_to        date,
    requested_by   text not null,
    position       text,
    total          bigint,
    examined       bigint not null default 0,
    auto_matched   bigint not null default 0,
    suggested      bigint not null default 0,
    unmatched      bigint not null default 0,
    excluded       bigint not null default 0,
    error          text,
    started_at     timestamptz,
    finished_at    timestamptz,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    primary key (tenant_id, id)
);
create unique index reconciliation_runs_one_at_a_time on reconciliation_runs (tenant_id)
    where status in ('queued', 'running');
create index reconciliation_runs_list_idx on reconciliation_runs (tenant_id, id desc);
create trigger reconciliation_runs_touch before update on reconciliation_runs
    for each row execute function payymo_touch_updated_at();

do $$
declare
    t text;
begin
    foreach t in array array['reconciliation_matches', 'reconciliation_match_transactions',
                             'reconciliation_allocations', 'reconciliation_adjustments',
                             'reconciliation_suggestions', 'reconciliation_rejections',
                             'reconciliation_settings', 'reconciliation_rules', 'reconciliation_runs']
    loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format($p$create policy tenant_isolation on %I
            using (tenant_id = current_setting('payymo.tenant_id', true)
                   or current_setting('payymo.platform', true) = 'on')
            with check (tenant_id = current_setting('payymo.tenant_id', true)
                        or current_setting('payymo.platform', true) = 'on')$p$, t);
    end loop;
end;
$$;
