-- Foundation: helpers every later table uses.

-- Keeps `updated_at` honest on any table that attaches it as a BEFORE UPDATE trigger, so
-- incremental sync (`updated_since`) can trust the column whatever code path wrote the row.
create function payymo_touch_updated_at() returns trigger
language plpgsql as $$
begin
    new.updated_at := now();
    return new;
end;
$$;

comment on function payymo_touch_updated_at() is
    'BEFORE UPDATE trigger: sets updated_at to now() on every change.';
