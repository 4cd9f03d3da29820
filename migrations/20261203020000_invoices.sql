-- Customers and invoices: what the money in the bank should pay (docs/invoices.md).

create table customers (
    tenant_id     text not null references tenants (id) on delete cascade,
    id            text not null,
    name          text not null check (length(name) between 1 and 500),
    email         text check (length(email) between 3 and 320),
    -- Where the customer comes from (`api`, `hubspot`, `xero`, …): external ids are unique per source.
    source        text not null default 'api' check (length(source) between 1 and 100),
    external_id   text check (length(external_id) between 1 and 255),
    -- Names the customer's payments show on bank statements.
    aliases       text[] not null default '{}',
    bank_accounts jsonb not null default '[]',
    metadata      jsonb not null default '{}',
    search_text   text generated always as (lower(name || ' ' || coalesce(email, ''))) stored,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    primary key (tenant_id, id),
    unique (tenant_id, source, external_id)
);
create index customers_search_idx on customers using gin (search_text gin_trgm_ops);
create trigger customers_touch before update on customers
    for each row execute function payymo_touch_updated_at();

create table invoices (
    tenant_id         text not null references tenants (id) on delete cascade,
    id                text not null,
    number            text not null check (length(number) between 1 and 100),
    source            text not null default 'api' check (length(source) between 1 and 100),
    external_id       text check (length(external_id) between 1 and 255),
    customer_id       text,
    currency          text not null check (currency ~ '^[A-Z]{3}$'),
    amount_total      bigint not null check (amount_total >= 0),
    amount_tax        bigint check (amount_tax >= 0 and amount_tax <= amount_total),
    -- Kept by reconciliation (matches), never by clients.
    amount_paid       bigint not null default 0 check (amount_paid >= 0),
    issue_date        date,
    due_date          date check (due_date >= issue_date),
    status            text not null default 'open'
                      check (status in ('draft', 'open', 'partially_paid', 'paid', 'void', 'uncollectible')),
    payment_reference text check (length(payment_reference) between 1 and 500),
    rf_reference      text check (rf_reference ~ '^RF[0-9]{2}[A-Z0-9]{1,21}$'),
    lines             jsonb not null default '[]',
    metadata          jsonb not null default '{}',
    search_text       text generated always as (
                          lower(number || ' ' || coalesce(payment_reference, '') || ' ' || coalesce(rf_reference, ''))
                      ) stored,
    voided_at         timestamptz,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    primary key (tenant_id, id),
    unique (tenant_id, number),
    unique (tenant_id, source, external_id),
    -- A deleted customer (only ever one with nothing but void invoices) leaves them unlinked.
    foreign key (tenant_id, customer_id) references customers (tenant_id, id) on delete set null (customer_id)
);
create index invoices_list_idx on invoices (tenant_id, id desc);
create index invoices_customer_idx on invoices (tenant_id, customer_id, id desc);
create index invoices_status_idx on invoices (tenant_id, status, due_date);
create index invoices_search_idx on invoices using gin (search_text gin_trgm_ops);
create trigger invoices_touch before update on invoices
    for each row execute function payymo_touch_updated_at();

-- The changes feed (GET /invoices/changes, /customers/changes): one row per change, in the
-- transaction that makes it. `xid` is that transaction's id: a reader returns only rows whose
-- transaction finished before every transaction still running began (below its snapshot's
-- xmin), ordered by (xid, seq), so a change committed late by a long transaction is never
-- skipped by a cursor that already moved past later ones: it cannot have been passed.
create table resource_changes (
    tenant_id   text not null references tenants (id) on delete cascade,
    seq         bigint generated always as identity,
    xid         xid8 not null default pg_current_xact_id(),
    resource    text not null check (resource in ('invoice', 'customer')),
    object_id   text not null,
    external_id text,
    change      text not null check (change in ('created', 'updated', 'voided', 'deleted')),
    -- The object after the change; null for a deletion (the tombstone carries the ids).
    data        jsonb,
    changed_at  timestamptz not null default now(),
    primary key (tenant_id, seq)
);
create index resource_changes_feed_idx on resource_changes (tenant_id, resource, xid, seq);

do $$
declare
    t text;
begin
    foreach t in array array['customers', 'invoices', 'resource_changes']
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
