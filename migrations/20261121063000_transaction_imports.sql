-- Transaction imports into manual accounts: a CSV upload, stored until its job has processed it,
-- with progress counters, and one result per row (created, unchanged, updated or rejected with the
-- reason) so every rejected row can be read back.

create table imports (
    tenant_id      text not null references tenants (id),
    id             text not null,
    account_id     text not null,
    status         text not null default 'queued' check (status in ('queued', 'running', 'succeeded', 'failed')),
    -- The uploaded CSV, kept until the import finishes (a re-run after a crash reads it again).
    file           bytea,
    -- The column mapping and parsing options, as accepted at upload.
    options        jsonb not null,
    total_rows     integer not null check (total_rows >= 0),
    processed_rows integer not null default 0 check (processed_rows >= 0),
    created        integer not null default 0,
    unchanged      integer not null default 0,
    updated        integer not null default 0,
    rejected       integer not null default 0,
    -- Why a `failed` import stopped.
    error          text,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    finished_at    timestamptz,
    primary key (tenant_id, id),
    foreign key (tenant_id, account_id) references bank_accounts (tenant_id, id)
);
create trigger imports_touch before update on imports
    for each row execute function payymo_touch_updated_at();

-- One result per data row, by the row's number in the file (the header is row 1).
create table import_rows (
    tenant_id      text not null references tenants (id),
    import_id      text not null,
    row_number     integer not null,
    external_id    text,
    status         text not null check (status in ('created', 'unchanged', 'updated', 'rejected')),
    transaction_id text,
    error          text,
    primary key (tenant_id, import_id, row_number),
    foreign key (tenant_id, import_id) references imports (tenant_id, id)
);
-- `?status=rejected` pages through the few rejected rows without reading the many good ones.
create index import_rows_rejected_idx on import_rows (tenant_id, import_id, row_number) where status = 'rejected';

do $$
declare
    t text;
begin
    foreach t in array array['imports', 'import_rows']
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
