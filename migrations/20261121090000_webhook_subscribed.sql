-- Which endpoints get an event: one rule for the fan-out trigger (new events) and for the API's
-- re-sends (`POST /api/v1/events/{id}/redeliver`), which used to spell it out each. An endpoint
-- gets an event when it subscribed to its type or to '*'; `ping` events go only to the endpoint
-- that asked for one, so no filter matches them.
create function payymo_webhook_subscribed(event_types text[], event_type text) returns boolean
language sql immutable parallel safe as $$
    select event_type <> 'ping' and ('*' = any (event_types) or event_type = any (event_types))
$$;

create or replace function payymo_webhook_fanout() returns trigger
language plpgsql as $$
begin
    insert into webhook_deliveries (tenant_id, id, event_id, endpoint_id)
    select e.tenant_id, 'whd_' || payymo_uuid7_hex(), e.id, w.id
    from new_events e
    join webhook_endpoints w on w.tenant_id = e.tenant_id
    where w.enabled and payymo_webhook_subscribed(w.event_types, e.event_type);
    return null;
end;
$$;
