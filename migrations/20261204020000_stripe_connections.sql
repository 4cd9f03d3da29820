-- A tenant's Stripe account: at most one connection per tenant, its key sealed with the key ring
-- (never shown again), what Stripe said about the account, and the read permissions a
-- restricted key was found to lack.
create table stripe_connections (
    tenant_id           text not null references tenants (id),
    id                  text not null,
    status              text not null default 'connected'
                        check (status in ('connected', 'failed', 'disconnected')),
    account_id          text not null,
    account_name        text,
    livemode            boolean not null,
    -- `rk_test_…` or `sk_live_…` with the last four characters: enough to tell keys apart.
    key_hint            text not null,
    key_kind            text not null check (key_kind in ('secret', 'restricted')),
    key_sealed          text not null,
    missing_permissions text[] not null default '{}',
    -- Why a `failed` connection failed.
    error               text,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    primary key (tenant_id, id)
);
create unique index stripe_connections_one_per_tenant on stripe_connections (tenant_id)
    where status <> 'disconnected';
create trigger stripe_connections_touch before update on stripe_connections
    for each row execute function payymo_touch_updated_at();

alter table stripe_connections enable row level security;
alter table stripe_connections force row level security;
create policy tenant_isolation on stripe_connections
    using (tenant_id = current_setting('payymo.tenant_id', true)
           or current_setting('payymo.platform', true) = 'on')
    with check (tenant_id = current_setting('payymo.tenant_id', true)
                or current_setting('payymo.platform', true) = 'on');
