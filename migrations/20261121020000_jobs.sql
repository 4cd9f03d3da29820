-- Background jobs: one durable queue in Postgres, shared by every instance.
--
-- `jobs` is a PLATFORM table: no row-level security, like `tenants`. The runner must claim every
-- tenant's jobs; a tenant-level job carries its tenant_id and its handler opens a tenant-bound
-- transaction for the tenant's own tables.
--
-- Life of a job: queued -> running (claimed under a lease: locked_by, locked_until) -> done, or
-- back to queued with a later run_at after a failure, or dead after max_attempts (kept, with
-- last_error, for inspection). A running job whose lease expired (its worker crashed) is claimed
-- again by any worker.

create table jobs (
    id           bigserial primary key,
    kind         text not null check (length(kind) between 1 and 100),
    tenant_id    text references tenants (id),
    payload      jsonb not null default '{}',
    -- Periodic or idempotent work: at most one pending (queued or running) job per (kind, key).
    dedup_key    text,
    status       text not null default 'queued' check (status in ('queued', 'running', 'done', 'dead')),
    attempts     integer not null default 0 check (attempts >= 0),
    max_attempts integer not null default 8 check (max_attempts >= 1),
    run_at       timestamptz not null default now(),
    locked_until timestamptz,
    locked_by    text,
    last_error   text,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    finished_at  timestamptz
);
create unique index jobs_dedup_key on jobs (kind, dedup_key)
    where dedup_key is not null and status in ('queued', 'running');
-- Claiming: queued jobs that are due, and running jobs whose lease expired.
create index jobs_claim_idx on jobs (status, run_at);
create trigger jobs_touch before update on jobs
    for each row execute function payymo_touch_updated_at();

-- Wakes listening runners when a job is enqueued. Delivered at commit, so a job enqueued inside
-- a caller's transaction wakes nobody until it is visible. A latency optimisation only: runners
-- also poll.
create function payymo_jobs_notify() returns trigger
language plpgsql as $$
begin
    perform pg_notify('payymo_jobs', new.kind);
    return null;
end;
$$;
create trigger jobs_notify after insert on jobs
    for each row execute function payymo_jobs_notify();
