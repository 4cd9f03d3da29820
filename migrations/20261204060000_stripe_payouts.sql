-- A connected account's payouts and the balance transactions they carry, kept from Stripe's
-- events. A payout's summary (gross charges, refunds, adjustments, fees, net) is the sum of its
-- balance transactions, kept beside it so that a payout whose parts do not add up shows it.
create table stripe_balance_transactions (
    tenant_id          text not null references tenants (id),
    connection_id      text not null,
    id                 text not null,
    -- The payout that carried it to the bank; null while it waits in the balance.
    payout_id          text,
    type               text not null,
    reporting_category text not null,
    amount             bigint not null,
    fee                bigint not null,
    net                bigint not null,
    currency           text not null,
    source             text,
    status             text not null,
    description        text,
    fee_details        jsonb not null default '[]',
    exchange_rate      numeric,
    available_on       timestamptz not null,
    created            timestamptz not null,
    updated_at         timestamptz not null default now(),
    primary key (tenant_id, id),
    foreign key (tenant_id, connection_id) references stripe_connections (tenant_id, id)
);
create index stripe_balance_transactions_payout on stripe_balance_transactions (tenant_id, payout_id, created desc, id desc)
    where payout_id is not null;
create index stripe_balance_transactions_source on stripe_balance_transactions (tenant_id, source)
    where source is not null;
create trigger stripe_balance_transactions_touch before update on stripe_balance_transactions
    for each row execute function payymo_touch_updated_at();

create table stripe_payouts (
    tenant_id                       text not null references tenants (id),
    connection_id                   text not null,
    id                              text not null,
    status                          text not null
                                    check (status in ('pending', 'in_transit', 'paid', 'failed', 'canceled')),
    amount                          bigint not null,
    currency                        text not null,
    arrival_date                    date not null,
    automatic                       boolean not null,
    method                          text,
    statement_descriptor            text,
    trace_id                        text,
    description                     text,
    destination                     text,
    failure_code                    text,
    failure_message                 text,
    balance_transaction_id          text,
    failure_balance_transaction_id  text,
    -- The sums of the balance transactions the payout carries (its own `payout` transaction
    -- left out); null until they have been read.
    gross                           bigint,
    refunds                         bigint,
    adjustments                     bigint,
    fees                            bigint,
    net                             bigint,
    transaction_count               integer,
    created                         timestamptz not null,
    version                         timestamptz not null,
    updated_at                      timestamptz not null default now(),
    primary key (tenant_id, id),
    foreign key (tenant_id, connection_id) references stripe_connections (tenant_id, id)
);
create index stripe_payouts_list on stripe_payouts (tenant_id, created desc, id desc);
create index stripe_payouts_arrival on stripe_payouts (tenant_id, arrival_date);
create trigger stripe_payouts_touch before update on stripe_payouts
    for each row execute function payymo_touch_updated_at();

-- The payout a payment went out in, and the filters the payments list gains.
alter table stripe_payments add column payout_id text;
create index stripe_payments_payout on stripe_payments (tenant_id, payout_id) where payout_id is not null;
create index stripe_payments_updated on stripe_payments (tenant_id, updated_at);

alter table stripe_balance_transactions enable row level security;
alter table stripe_balance_transactions force row level security;
create policy tenant_isolation on stripe_balance_transactions
    using (tenant_id = current_setting('payymo.tenant_id', true)
           or current_setting('payymo.platform', true) = 'on')
    with check (tenant_id = current_setting('payymo.tenant_id', true)
                or current_setting('payymo.platform', true) = 'on');

alter table stripe_payouts enable row level security;
alter table stripe_payouts force row level security;
create policy tenant_isolation on stripe_payouts
    using (tenant_id = current_setting('payymo.tenant_id', true)
           or current_setting('payymo.platform', true) = 'on')
    with check (tenant_id = current_setting('payymo.tenant_id', true)
                or current_setting('payymo.platform', true) = 'on');
