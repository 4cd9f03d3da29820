-- The engine takes at most 21 open invoices per amount due, oldest due first
-- (`engine::candidates::invoices_by_amount`). With `due_date, id` after the equality columns the
-- index hands them over in that order and the scan stops at the limit; before, Postgres fetched
-- and sorted every open invoice of each amount. A batch's 907 amounts against 1,076,745 open
-- invoices: 301 ms → 47 ms.
drop index invoices_open_due_idx;
create index invoices_open_due_idx on invoices (tenant_id, currency, amount_due, due_date, id)
    where status in ('open', 'partially_paid');

-- Paid payouts by net amount (`candidates::payouts_by_amount`), which read every payout of the
-- tenant: 87,024 payouts, 56 ms → 5 ms a batch.
create index stripe_payouts_paid_amount_idx on stripe_payouts (tenant_id, currency, amount)
    where status = 'paid';
