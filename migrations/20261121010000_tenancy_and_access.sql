-- Tenancy and access control.
--
-- Every tenant-owned table leads its primary key and indexes with tenant_id, links to other
-- tenant tables through composite (tenant_id, id) keys, and has row-level security enabled and
-- FORCED, keyed on the transaction-local setting `payymo.tenant_id`. The setting
-- `payymo.platform = 'on'` opens a platform transaction (authentication lookups, the admin API),
-- the only way to see across tenants. Neither setting set: no rows at all.
--
-- RLS does not apply to superusers or BYPASSRLS roles: the service connects as an ordinary role
-- (see src/db) and warns at start-up when it cannot.

create table tenants (
    id          text primary key,
    name        text not null check (length(name) between 1 and 200),
    environment text not null check (environment in ('live', 'test')),
    plan        text not null default 'free' check (plan in ('free', 'standard', 'premium')),
    time_zone   text not null default 'UTC',
    settings    jsonb not null default '{}',
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);
create trigger tenants_touch before update on tenants
    for each row execute function payymo_touch_updated_at();

-- Users are people; they belong to tenants through memberships.
create table users (
    id            text primary key,
    email         text not null check (length(email) between 3 and 320),
    name          text,
    password_hash text not null,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);
create unique index users_email_key on users (lower(email));
create trigger users_touch before update on users
    for each row execute function payymo_touch_updated_at();

create table memberships (
    tenant_id  text not null references tenants (id),
    user_id    text not null references users (id),
    role       text not null check (role in ('owner', 'admin', 'member', 'viewer')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (tenant_id, user_id)
);
-- A platform lookup (GET /me lists a user's tenants), so it cannot lead with tenant_id.
create index memberships_user_idx on memberships (user_id);
create trigger memberships_touch before update on memberships
    for each row execute function payymo_touch_updated_at();

create table api_keys (
    tenant_id        text not null references tenants (id),
    id               text not null,
    label            text not null,
    scopes           text[] not null,
    -- SHA-256 of the whole secret key. Keys carry ~238 bits of randomness, so a fast hash is
    -- enough; the lookup happens before the tenant is known, hence the global unique index.
    key_hash         bytea not null,
    key_prefix       text not null,
    allowed_networks text[] not null default '{}',
    expires_at       timestamptz,
    revoked_at       timestamptz,
    rotated_to       text,
    last_used_at     timestamptz,
    last_used_ip     text,
    usage_count      bigint not null default 0,
    created_by       text,
    created_at       timestamptz not null default now(),
    primary key (tenant_id, id)
);
create unique index api_keys_hash_key on api_keys (key_hash);
create index api_keys_tenant_created_idx on api_keys (tenant_id, created_at desc, id desc);

create table oauth_clients (
    tenant_id    text not null references tenants (id),
    id           text not null,
    name         text not null,
    secret_hash  bytea not null,
    scopes       text[] not null,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    created_at   timestamptz not null default now(),
    primary key (tenant_id, id)
);
-- client_id arrives alone at the token endpoint.
create unique index oauth_clients_id_key on oauth_clients (id);
create index oauth_clients_tenant_created_idx on oauth_clients (tenant_id, created_at desc, id desc);

create table refresh_tokens (
    tenant_id  text not null,
    id         text not null,
    user_id    text not null,
    family_id  text not null,
    token_hash bytea not null,
    expires_at timestamptz not null,
    used_at    timestamptz,
    revoked_at timestamptz,
    created_at timestamptz not null default now(),
    primary key (tenant_id, id),
    foreign key (tenant_id, user_id) references memberships (tenant_id, user_id) on delete cascade
);
create unique index refresh_tokens_hash_key on refresh_tokens (token_hash);
create index refresh_tokens_family_idx on refresh_tokens (tenant_id, family_id);

-- The audit log: append-only, each row chained to the previous row of its tenant by hash.
create table audit_logs (
    tenant_id     text not null references tenants (id),
    seq           bigint not null,
    id            text not null,
    occurred_at   timestamptz not null,
    actor_type    text not null,
    actor_id      text,
    credential_id text,
    action        text not null,
    resource_type text,
    resource_id   text,
    outcome       text not null check (outcome in ('success', 'failure', 'denied', 'security_incident')),
    status        integer,
    ip            text,
    request_id    text,
    detail        jsonb not null default '{}',
    prev_hash     bytea not null,
    hash          bytea not null,
    primary key (tenant_id, seq)
);
create unique index audit_logs_id_key on audit_logs (tenant_id, id);
create index audit_logs_tenant_time_idx on audit_logs (tenant_id, occurred_at desc, seq desc);

create function payymo_audit_logs_append_only() returns trigger
language plpgsql as $$
begin
    raise exception 'audit_logs is append-only' using errcode = 'insufficient_privilege';
end;
$$;
create trigger audit_logs_append_only before update or delete on audit_logs
    for each row execute function payymo_audit_logs_append_only();

-- The head of each tenant's chain; locking it serialises appends per tenant.
create table audit_chain_heads (
    tenant_id text primary key references tenants (id),
    seq       bigint not null,
    hash      bytea not null
);

-- Stored responses for Idempotency-Key, per tenant and credential, kept 24 hours.
create table idempotency_keys (
    tenant_id        text not null references tenants (id),
    credential_id    text not null,
    key              text not null,
    request_hash     bytea not null,
    locked_until     timestamptz,
    response_status  integer,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz not null default now(),
    expires_at       timestamptz not null default now() + interval '24 hours',
    primary key (tenant_id, credential_id, key)
);
create index idempotency_keys_expiry_idx on idempotency_keys (expires_at);

-- JWT signing keys, generated on first start when PAYYMO_JWT_SECRET is not set, so every
-- instance signs and verifies with the same keys.
create table jwt_signing_keys (
    kid        text primary key,
    secret     bytea not null,
    created_at timestamptz not null default now()
);

-- Row-level security on every tenant-owned table.
do $$
declare
    t text;
begin
    foreach t in array array['memberships', 'api_keys', 'oauth_clients', 'refresh_tokens',
                             'audit_logs', 'audit_chain_heads', 'idempotency_keys']
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
