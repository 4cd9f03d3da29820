-- A connected account's card payments (Stripe charges), normalised, kept up to date from the
-- events in the inbox. `version` is the `created` time of the newest event applied, so an older
-- event that arrives late never overwrites a newer state.
create table stripe_payments (
    tenant_id              text not null references tenants (id),
    connection_id          text not null,
    id                     text not null,
    payment_intent_id      text,
    status                 text not null check (status in ('succeeded', 'pending', 'failed')),
    amount                 bigint not null,
    currency               text not null,
    fee                    bigint,
    net                    bigint,
    amount_refunded        bigint not null default 0,
    disputed               boolean not null default false,
    customer               text,
    description            text,
    metadata               jsonb not null default '{}',
    balance_transaction_id text,
    failure_code           text,
    created                timestamptz not null,
    version                timestamptz not null,
    updated_at             timestamptz not null default now(),
    primary key (tenant_id, id),
    foreign key (tenant_id, connection_id) references stripe_connections (tenant_id, id)
);
create index stripe_payments_list on stripe_payments (tenant_id, created desc, id desc);
create trigger stripe_payments_touch before update on stripe_payments
    for each row execute function payymo_touch_updated_at();

alter table stripe_payments enable row level security;
alter table stripe_payments force row level security;
create policy tenant_isolation on stripe_payments
    using (tenant_id = current_setting('payymo.tenant_id', true)
           or current_setting('payymo.platform', true) = 'on')
    with check (tenant_id = current_setting('payymo.tenant_id', true)
                or current_setting('payymo.platform', true) = 'on');
