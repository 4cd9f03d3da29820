-- Stripe Connect OAuth: a connection's key is one the tenant gave (`api_key`) or the access token
-- Stripe gave Payymo's platform (`oauth`); disconnecting an `oauth` one also deauthorizes it.
alter table stripe_connections add column method text not null default 'api_key'
    check (method in ('api_key', 'oauth'));

-- The authorization states whose callback has run, by their nonce: a state is signed and carries
-- everything else, so this is all any instance needs to refuse a second use (a reloaded callback
-- page must not send Stripe the same code twice: Stripe would revoke what the first use gave).
create table stripe_oauth_states (
    tenant_id     text not null references tenants (id),
    nonce         text not null,
    -- When the state stops being accepted; a row is useless a while after.
    expires_at    timestamptz not null,
    -- The connection the callback made, once it made one.
    connection_id text,
    created_at    timestamptz not null default now(),
    primary key (tenant_id, nonce)
);
create index stripe_oauth_states_expiry on stripe_oauth_states (tenant_id, expires_at);

alter table stripe_oauth_states enable row level security;
alter table stripe_oauth_states force row level security;
create policy tenant_isolation on stripe_oauth_states
    using (tenant_id = current_setting('payymo.tenant_id', true)
           or current_setting('payymo.platform', true) = 'on')
    with check (tenant_id = current_setting('payymo.tenant_id', true)
                or current_setting('payymo.platform', true) = 'on');
