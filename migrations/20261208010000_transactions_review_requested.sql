-- When the engine first left a credit for a person (`suggested` or `unmatched` after it looked),
-- which is when `transaction.needs_review` was sent. Null until then; set once and never cleared,
-- so a credit announces it at most once however often the engine looks at it again (every invoice
-- upsert, every run), on however many instances. A credit matched and later unmatched by a person
-- keeps it and is not announced again.
alter table transactions add column review_requested_at timestamptz;

-- Like `reconcile_pending`, it is the engine's bookkeeping, not a change to the transaction: it
-- leaves `updated_at` alone. (The same function as before, with the column added to the list.)
create or replace function payymo_touch_transaction() returns trigger
    language plpgsql as $$
begin
    if (to_jsonb(old) - array['reconcile_pending', 'review_requested_at', 'updated_at', 'search_text', 'list_date',
                              'counterparty_account'])
       is distinct from
       (to_jsonb(new) - array['reconcile_pending', 'review_requested_at', 'updated_at', 'search_text', 'list_date',
                              'counterparty_account']) then
        new.updated_at = now();
    end if;
    return new;
end;
$$;

-- Credits the engine already left for a person before this column existed have been announced by
-- other means (`reconciliation.suggested`, the inbox): they must not all send the event at once
-- on deploy. `suggested` is only ever set by the engine, so a suggested credit has been looked at
-- even when it is queued again; an `unmatched` one has been when it is no longer pending.
-- Migrations run as the service's ordinary role, which row-level security binds too: without the
-- platform setting (for this migration's transaction only) the update would see no rows.
set local payymo.platform = 'on';
update transactions set review_requested_at = now()
where amount > 0
  and (match_status = 'suggested' or (match_status = 'unmatched' and not reconcile_pending));
