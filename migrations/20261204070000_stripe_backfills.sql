-- The backfill of a connected account's history: one per connection, read page by page through
-- its phases (charges, refunds, payouts), each page written with the position it reached, so a
-- crash resumes where it stopped.
create table stripe_backfills (
    tenant_id            text not null references tenants (id),
    connection_id        text not null,
    status               text not null default 'running' check (status in ('running', 'completed', 'failed')),
    since                timestamptz not null,
    -- Stripe's time when it started (its newest event): what is created after arrives as events.
    until                timestamptz not null,
    phase                text not null default 'charges'
                         check (phase in ('charges', 'refunds', 'payouts', 'done')),
    -- The last id read in the phase (`starting_after` of the next page).
    position             text,
    charges              bigint not null default 0,
    refunds              bigint not null default 0,
    payouts              bigint not null default 0,
    balance_transactions bigint not null default 0,
    error                text,
    started_at           timestamptz not null default now(),
    completed_at         timestamptz,
    updated_at           timestamptz not null default now(),
    primary key (tenant_id, connection_id),
    foreign key (tenant_id, connection_id) references stripe_connections (tenant_id, id)
);
create trigger stripe_backfills_touch before update on stripe_backfills
    for each row execute function payymo_touch_updated_at();

alter table stripe_backfills enable row level security;
alter table stripe_backfills force row level security;
create policy tenant_isolation on stripe_backfills
    using (tenant_id = current_setting('payymo.tenant_id', true)
           or current_setting('payymo.platform', true) = 'on')
    with check (tenant_id = current_setting('payymo.tenant_id', true)
                or current_setting('payymo.platform', true) = 'on');
