-- Outbound webhooks: a tenant's endpoints, one durable delivery row per (event, endpoint) created in
-- the transaction that records the event, and every attempt to deliver it.
--
-- Life of a delivery: pending (due at next_attempt_at) -> claimed by a dispatcher, which moves
-- next_attempt_at one lease ahead and counts the attempt -> succeeded, or pending again at the
-- next retry time, or failed after the last attempt (kept; it can be sent again as a new
-- delivery). A dispatcher that dies mid-attempt leaves the row pending: when its lease runs out
-- the row is due again and any dispatcher sends it (at-least-once).

-- Time-ordered ids in SQL (UUIDv7, as the application generates), for rows the fan-out trigger
-- creates.
create function payymo_uuid7_hex() returns text
language sql volatile as $$
    select encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    placing substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
                    from 1 for 6),
            52, 1), 53, 1),
        'hex')
$$;

create table webhook_endpoints (
    tenant_id                  text not null references tenants (id),
    id                         text not null,
    url                        text not null check (length(url) between 1 and 2048),
    description                text check (length(description) <= 500),
    -- Event type names, or '*' for every type.
    event_types                text[] not null check (cardinality(event_types) between 1 and 100),
    metadata                   jsonb not null default '{}',
    enabled                    boolean not null default true,
    disabled_reason            text,
    disabled_at                timestamptz,
    -- The signing secret (`whsec_…`), sealed with the key ring; and the one it replaced, which
    -- keeps signing alongside it until previous_secret_expires_at.
    secret                     text not null,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    -- Start of the current unbroken run of failed attempts; null after a success.
    failing_since              timestamptz,
    -- Failed attempts since the last success; from 10 on, the endpoint backs off.
    consecutive_failures       integer not null default 0 check (consecutive_failures >= 0),
    -- None of its deliveries start before this: the receiver asked us to wait (Retry-After on
    -- 429/503), or it keeps failing and is probed with growing pauses.
    paused_until               timestamptz,
    created_at                 timestamptz not null default now(),
    updated_at                 timestamptz not null default now(),
    primary key (tenant_id, id)
);
create trigger webhook_endpoints_touch before update on webhook_endpoints
    for each row execute function payymo_touch_updated_at();

create table webhook_deliveries (
    tenant_id       text not null,
    id              text not null,
    event_id        text not null,
    endpoint_id     text not null,
    -- Why it exists: the event's fan-out, a test ping, or a re-send asked for through the API.
    reason          text not null default 'event' check (reason in ('event', 'test', 'redeliver', 'recover')),
    status          text not null default 'pending' check (status in ('pending', 'succeeded', 'failed')),
    attempts        integer not null default 0 check (attempts >= 0),
    next_attempt_at timestamptz not null default now(),
    -- The dispatcher that made the latest attempt; its outcome is recorded only while it still holds it.
    locked_by       text,
    last_attempt_at timestamptz,
    last_status_code integer,
    last_error      text,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    completed_at    timestamptz,
    primary key (tenant_id, id),
    foreign key (tenant_id, event_id) references events (tenant_id, id) on delete cascade,
    foreign key (tenant_id, endpoint_id) references webhook_endpoints (tenant_id, id) on delete cascade
);
-- Claiming, per endpoint (a skip scan finds the endpoints with pending deliveries). No index on
-- next_attempt_at alone: under stale statistics the planner chose it for claims and outcome
-- updates and read every pending row (bench finding).
-- Ends in the claim's full order (next_attempt_at, id): a burst shares one next_attempt_at, and
-- without id the claim would sort the endpoint's whole backlog to take its first few rows.
create index webhook_deliveries_endpoint_due_idx on webhook_deliveries (tenant_id, endpoint_id, next_attempt_at, id)
    where status = 'pending';
-- Listing: an endpoint's deliveries and an event's, newest first.
create index webhook_deliveries_endpoint_idx on webhook_deliveries (tenant_id, endpoint_id, id desc);
create index webhook_deliveries_event_idx on webhook_deliveries (tenant_id, event_id, id desc);
create trigger webhook_deliveries_touch before update on webhook_deliveries
    for each row execute function payymo_touch_updated_at();

create table webhook_attempts (
    tenant_id     text not null,
    delivery_id   text not null,
    attempt       integer not null check (attempt >= 1),
    started_at    timestamptz not null,
    latency_ms    integer not null check (latency_ms >= 0),
    -- Null when no response arrived (refused address, connection error, timeout).
    status_code   integer,
    succeeded     boolean not null,
    error         text,
    -- The first bytes of the response body (at most 1 KiB, lossy UTF-8).
    response_body text,
    primary key (tenant_id, delivery_id, attempt),
    foreign key (tenant_id, delivery_id) references webhook_deliveries (tenant_id, id) on delete cascade
);

alter table webhook_endpoints enable row level security;
alter table webhook_endpoints force row level security;
alter table webhook_deliveries enable row level security;
alter table webhook_deliveries force row level security;
alter table webhook_attempts enable row level security;
alter table webhook_attempts force row level security;
create policy tenant_isolation on webhook_endpoints
    using (tenant_id = current_setting('payymo.tenant_id', true)
           or current_setting('payymo.platform', true) = 'on')
    with check (tenant_id = current_setting('payymo.tenant_id', true)
                or current_setting('payymo.platform', true) = 'on');
create policy tenant_isolation on webhook_deliveries
    using (tenant_id = current_setting('payymo.tenant_id', true)
           or current_setting('payymo.platform', true) = 'on')
    with check (tenant_id = current_setting('payymo.tenant_id', true)
                or current_setting('payymo.platform', true) = 'on');
create policy tenant_isolation on webhook_attempts
    using (tenant_id = current_setting('payymo.tenant_id', true)
           or current_setting('payymo.platform', true) = 'on')
    with check (tenant_id = current_setting('payymo.tenant_id', true)
                or current_setting('payymo.platform', true) = 'on');

-- Fan-out: every recorded event gets one delivery per enabled endpoint whose filter matches, in
-- the transaction that records it, so an event that committed cannot miss its deliveries. `ping`
-- events go only to the endpoint that asked for one, so they are left to the API.
create function payymo_webhook_fanout() returns trigger
language plpgsql as $$
begin
    insert into webhook_deliveries (tenant_id, id, event_id, endpoint_id)
    select e.tenant_id, 'whd_' || payymo_uuid7_hex(), e.id, w.id
    from new_events e
    join webhook_endpoints w on w.tenant_id = e.tenant_id
    where w.enabled and e.event_type <> 'ping'
      and ('*' = any (w.event_types) or e.event_type = any (w.event_types));
    return null;
end;
$$;
create trigger events_webhook_fanout after insert on events
    referencing new table as new_events
    for each statement execute function payymo_webhook_fanout();

-- Wakes dispatchers when deliveries are created, at commit. A latency optimisation only:
-- dispatchers also poll.
create function payymo_webhooks_notify() returns trigger
language plpgsql as $$
begin
    if exists (select from new_deliveries) then
        perform pg_notify('payymo_webhooks', '');
    end if;
    return null;
end;
$$;
create trigger webhook_deliveries_notify after insert on webhook_deliveries
    referencing new table as new_deliveries
    for each statement execute function payymo_webhooks_notify();

-- Retention prunes events by age across tenants.
create index events_time_idx on events (occurred_at);
