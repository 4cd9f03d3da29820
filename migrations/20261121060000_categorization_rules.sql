-- Categorisation rules: a tenant's ordered rules that set a transaction's category, applied to
-- new transactions as they arrive and, on demand, to existing ones by a durable job whose
-- progress is kept in categorization_rule_runs.

create table categorization_rules (
    tenant_id             text not null references tenants (id),
    id                    text not null,
    name                  text not null check (length(name) between 1 and 200),
    -- Lower runs first; ties by id (creation order).
    priority              integer not null check (priority between 0 and 1000000),
    enabled               boolean not null default true,
    -- Conditions: every one given must hold. Text conditions are case-insensitive; amounts are
    -- signed minor units, inclusive; direction is `credit` (amount >= 0) or `debit` (< 0).
    description_contains  text check (length(description_contains) between 1 and 200),
    counterparty_contains text check (length(counterparty_contains) between 1 and 200),
    description_regex     text check (length(description_regex) between 1 and 500),
    counterparty_regex    text check (length(counterparty_regex) between 1 and 500),
    amount_min            bigint,
    amount_max            bigint,
    direction             text check (direction in ('credit', 'debit')),
    account_id            text,
    category              text not null check (length(category) between 1 and 100),
    created_at            timestamptz not null default now(),
    updated_at            timestamptz not null default now(),
    primary key (tenant_id, id),
    foreign key (tenant_id, account_id) references bank_accounts (tenant_id, id),
    constraint categorization_rules_has_condition check (num_nonnulls(description_contains,
        counterparty_contains, description_regex, counterparty_regex, amount_min, amount_max, direction,
        account_id) >= 1),
    constraint categorization_rules_amount_range check (amount_min is null or amount_max is null
        or amount_min <= amount_max)
);
-- Evaluation and listing order.
create index categorization_rules_order_idx on categorization_rules (tenant_id, priority, id);
create trigger categorization_rules_touch before update on categorization_rules
    for each row execute function payymo_touch_updated_at();

-- One on-demand application of the rules to existing transactions. The job walks the tenant's
-- transactions by id in batches; `last_transaction_id` is the committed position, so a job that
-- is killed and run again continues where the last committed batch ended.
create table categorization_rule_runs (
    tenant_id           text not null references tenants (id),
    id                  text not null,
    -- Only this account's transactions, when set.
    account_id          text,
    status              text not null default 'queued'
                        check (status in ('queued', 'running', 'succeeded', 'failed')),
    total               bigint not null default 0 check (total >= 0),
    processed           bigint not null default 0 check (processed >= 0),
    changed             bigint not null default 0 check (changed >= 0),
    last_transaction_id text,
    error               text,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    primary key (tenant_id, id),
    foreign key (tenant_id, account_id) references bank_accounts (tenant_id, id)
);
create trigger categorization_rule_runs_touch before update on categorization_rule_runs
    for each row execute function payymo_touch_updated_at();

do $$
declare
    t text;
begin
    foreach t in array array['categorization_rules', 'categorization_rule_runs']
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
