-- The webhook endpoint Payymo registers at a connected Stripe account, and the inbox Stripe's
-- events land in: unique by Stripe event id per connection, so a duplicate delivery is a no-op,
-- kept until applied.
alter table stripe_connections add column webhook_endpoint_id text;
alter table stripe_connections add column webhook_secret_sealed text;
alter table stripe_connections add column webhook_status text not null default 'not_registered'
    check (webhook_status in ('registered', 'not_registered'));
-- Why the endpoint is not registered.
alter table stripe_connections add column webhook_error text;
-- The inbound route finds a connection by id alone.
create unique index stripe_connections_id on stripe_connections (id);

create table stripe_events (
    tenant_id     text not null references tenants (id),
    connection_id text not null,
    id            text not null,
    event_type    text not null,
    -- When Stripe created the event.
    created       timestamptz not null,
    payload       jsonb not null,
    source        text not null check (source in ('webhook', 'poll')),
    received_at   timestamptz not null default now(),
    applied_at    timestamptz,
    primary key (tenant_id, connection_id, id),
    foreign key (tenant_id, connection_id) references stripe_connections (tenant_id, id)
);
-- The worker reads what is not applied yet, oldest first.
create index stripe_events_unapplied on stripe_events (tenant_id, connection_id, created) where applied_at is null;

alter table stripe_events enable row level security;
alter table stripe_events force row level security;
create policy tenant_isolation on stripe_events
    using (tenant_id = current_setting('payymo.tenant_id', true)
           or current_setting('payymo.platform', true) = 'on')
    with check (tenant_id = current_setting('payymo.tenant_id', true)
                or current_setting('payymo.platform', true) = 'on');
