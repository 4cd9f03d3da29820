-- Bank feeds: provider credentials and tokens, bank connections, their accounts, per-account call
-- budgets, and the transactions synced from them.
--
-- Amounts are integer minor units with an uppercase ISO 4217 currency (never floats). Calendar
-- dates from the bank (booking, value) are `date`, never shifted between time zones.

-- The fallback encryption key, generated once when PAYYMO_ENCRYPTION_KEYS is not set (development
-- only: it sits beside what it protects). Platform table.
create table encryption_keys (
    kid        text primary key,
    secret     bytea not null,
    created_at timestamptz not null default now()
);

-- Provider access tokens, shared by every instance so a fleet asks for one token, not one each.
-- Keyed by a hash of (base URL, secret_id); the tokens themselves are sealed (src/crypto.rs).
-- Platform table: credentials may be the deployment's, shared by many tenants.
create table provider_tokens (
    credential_key     text primary key,
    access_sealed      text not null,
    access_expires_at  timestamptz not null,
    refresh_sealed     text not null,
    refresh_expires_at timestamptz not null,
    updated_at         timestamptz not null default now()
);
create trigger provider_tokens_touch before update on provider_tokens
    for each row execute function payymo_touch_updated_at();

-- A tenant's own provider credentials, overriding the deployment's. Both halves are sealed.
create table provider_credentials (
    tenant_id         text not null references tenants (id),
    provider          text not null check (provider in ('gocardless')),
    secret_id_sealed  text not null,
    secret_key_sealed text not null,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    primary key (tenant_id, provider)
);
create trigger provider_credentials_touch before update on provider_credentials
    for each row execute function payymo_touch_updated_at();

-- One consent at one bank: a GoCardless end-user agreement plus requisition.
--   pending -> linked -> expired          (consent given; access ran out)
--   pending -> rejected                   (the account holder refused, or the bank failed)
--   linked  -> suspended                  (the provider suspended access after repeated errors)
--   any     -> deleted                    (DELETE: requisition removed upstream, history kept)
create table bank_connections (
    tenant_id             text not null references tenants (id),
    id                    text not null,
    institution_id        text not null,
    institution_name      text not null,
    status                text not null default 'pending'
                          check (status in ('pending', 'linked', 'rejected', 'expired', 'suspended', 'deleted')),
    redirect_url          text not null,
    -- The requisition's reference, echoed back to our callback as ?ref=.
    reference             text not null,
    agreement_id          text,
    requisition_id        text,
    consent_link          text,
    max_historical_days   integer not null check (max_historical_days between 1 and 730),
    access_valid_for_days integer not null check (access_valid_for_days between 1 and 730),
    error_code            text,
    error_detail          text,
    linked_at             timestamptz,
    expires_at            timestamptz,
    -- The smallest "days before expiry" warning already announced (7, 3, 1), so each goes out once.
    expiry_warned_days    integer,
    last_synced_at        timestamptz,
    deleted_at            timestamptz,
    created_at            timestamptz not null default now(),
    updated_at            timestamptz not null default now(),
    primary key (tenant_id, id)
);
create unique index bank_connections_reference_key on bank_connections (tenant_id, reference);
create index bank_connections_status_idx on bank_connections (tenant_id, status, expires_at);
create trigger bank_connections_touch before update on bank_connections
    for each row execute function payymo_touch_updated_at();

create table bank_accounts (
    tenant_id           text not null references tenants (id),
    id                  text not null,
    connection_id       text not null,
    provider_account_id text not null,
    status              text not null default 'ready',
    iban                text,
    owner_name          text,
    name                text,
    currency            text check (currency ~ '^[A-Z]{3}$'),
    -- [{type, amount (minor units), currency, reference_date}], as last fetched.
    balances            jsonb not null default '[]',
    balances_fetched_at timestamptz,
    -- The newest booked date synced: the next sync starts from it minus an overlap window.
    last_booked_date    date,
    last_synced_at      timestamptz,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    primary key (tenant_id, id),
    foreign key (tenant_id, connection_id) references bank_connections (tenant_id, id)
);
create unique index bank_accounts_provider_key on bank_accounts (tenant_id, provider_account_id);
create index bank_accounts_connection_idx on bank_accounts (tenant_id, connection_id);
create trigger bank_accounts_touch before update on bank_accounts
    for each row execute function payymo_touch_updated_at();

-- Successful provider calls per account, endpoint and (UTC) day, as the bank counts them, with the
-- limit the provider last reported: syncs never spend calls the bank would refuse.
create table provider_call_budgets (
    tenant_id  text not null references tenants (id),
    account_id text not null,
    endpoint   text not null check (endpoint in ('details', 'balances', 'transactions')),
    day        date not null,
    used       integer not null default 0,
    day_limit  integer not null,
    -- The provider's own count of what is left, when it told us.
    remaining  integer,
    primary key (tenant_id, account_id, endpoint, day),
    foreign key (tenant_id, account_id) references bank_accounts (tenant_id, id)
);

create table transactions (
    tenant_id               text not null references tenants (id),
    id                      text not null,
    account_id              text not null,
    connection_id           text,
    -- The provider's stable key within the account: internalTransactionId when booked, else
    -- transactionId, else a digest of the pending entry's content.
    provider_transaction_id text not null,
    -- The bank's own transactionId, which may change between pending and booked.
    bank_transaction_id     text,
    status                  text not null check (status in ('pending', 'booked', 'cancelled')),
    amount                  bigint not null,
    currency                text not null check (currency ~ '^[A-Z]{3}$'),
    booking_date            date,
    value_date              date,
    description             text,
    counterparty_name       text,
    bank_transaction_code   text,
    match_status            text not null default 'unmatched'
                            check (match_status in ('unmatched', 'matched', 'partially_matched')),
    -- The provider's entry as received (untrusted; kept for audit and re-processing).
    raw                     jsonb not null,
    created_at              timestamptz not null default now(),
    updated_at              timestamptz not null default now(),
    primary key (tenant_id, id),
    foreign key (tenant_id, account_id) references bank_accounts (tenant_id, id)
);
create unique index transactions_provider_key on transactions (tenant_id, account_id, provider_transaction_id);
-- The default list order: newest booking (pending ones use their value date) first, id as tiebreak.
create index transactions_list_idx on transactions (tenant_id, coalesce(booking_date, value_date) desc, id desc);
create index transactions_account_idx on transactions (tenant_id, account_id, status);
create trigger transactions_touch before update on transactions
    for each row execute function payymo_touch_updated_at();

-- Periodic work (scheduling syncs, expiry checks): each instance's ticker tries to claim the
-- task by moving next_run_at forward; exactly one wins per period, so work is never doubled.
create table periodic_tasks (
    name        text primary key,
    next_run_at timestamptz not null default now()
);

do $$
declare
    t text;
begin
    foreach t in array array['provider_credentials', 'bank_connections', 'bank_accounts',
                             'provider_call_budgets', 'transactions']
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
