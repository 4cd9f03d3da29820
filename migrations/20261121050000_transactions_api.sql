-- The transactions API: search, annotation (category, notes, tags, metadata), manual accounts and
-- imported transactions.

create extension if not exists pg_trgm;

-- Manual accounts hold imported transactions for accounts no bank feed covers.
alter table bank_accounts
    add column kind text not null default 'bank_feed' check (kind in ('bank_feed', 'manual')),
    alter column connection_id drop not null,
    alter column provider_account_id drop not null,
    add constraint bank_accounts_kind_shape check (
        (kind = 'bank_feed' and connection_id is not null and provider_account_id is not null)
        or (kind = 'manual' and connection_id is null and provider_account_id is null));

alter table transactions
    -- A structured reference the bank gives besides the description (end-to-end id, creditor
    -- reference), or the imported row's reference.
    add column reference         text,
    add column category          text check (length(category) between 1 and 100),
    -- Who set the category: a rule (re-evaluated when rules run) or a user (never overridden).
    add column category_source   text check (category_source in ('rule', 'user')),
    add column category_rule_id  text,
    add column notes             text check (length(notes) <= 5000),
    add column tags              text[] not null default '{}',
    -- String key-value pairs set by API clients (Stripe-style bounds are enforced by the API).
    add column metadata          jsonb not null default '{}',
    -- `bank_feed` (synced) or `import` (through the import endpoint, keyed by external_id).
    add column source            text not null default 'bank_feed' check (source in ('bank_feed', 'import')),
    add column external_id       text,
    add constraint transactions_category_shape check ((category is null) = (category_source is null)),
    add constraint transactions_external_id_shape check ((source = 'import') = (external_id is not null));

-- Lowercased text that free-text search (`q`) matches against, trigram-indexed so a substring
-- search never scans the tenant's rows.
alter table transactions add column search_text text generated always as (
    lower(coalesce(description, '') || ' ' || coalesce(counterparty_name, '') || ' ' || coalesce(reference, ''))
) stored;
create index transactions_search_idx on transactions using gin (search_text gin_trgm_ops);

-- One imported row per external_id and account: re-importing a file changes nothing.
create unique index transactions_external_key on transactions (tenant_id, account_id, external_id)
    where external_id is not null;
-- Filtered lists: one account by date; sort by amount; incremental sync by updated_at; category.
create index transactions_account_date_idx
    on transactions (tenant_id, account_id, coalesce(booking_date, value_date) desc, id desc);
create index transactions_amount_idx on transactions (tenant_id, amount, id);
create index transactions_updated_idx on transactions (tenant_id, updated_at, id);
create index transactions_category_idx on transactions (tenant_id, category) where category is not null;
