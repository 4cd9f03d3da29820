-- Events: what happened to a tenant's resources, recorded in the same transaction as the change
-- (the outbox that webhook delivery reads). Immutable once written; pruned by retention later.

create table events (
    tenant_id   text not null references tenants (id),
    id          text not null,
    event_type  text not null,
    occurred_at timestamptz not null default now(),
    data        jsonb not null,
    primary key (tenant_id, id)
);
-- Newest first, optionally by type: ids are UUIDv7, so id order is time order.
create index events_tenant_type_idx on events (tenant_id, event_type, id desc);
create index events_tenant_time_idx on events (tenant_id, occurred_at desc);

alter table events enable row level security;
alter table events force row level security;
create policy tenant_isolation on events
    using (tenant_id = current_setting('payymo.tenant_id', true)
           or current_setting('payymo.platform', true) = 'on')
    with check (tenant_id = current_setting('payymo.tenant_id', true)
                or current_setting('payymo.platform', true) = 'on');
