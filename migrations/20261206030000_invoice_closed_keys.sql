-- A reference one character off an open invoice's proves that invoice only when the text names
-- no other invoice, and that includes invoices already paid: a customer paying an old invoice a
-- second time ("INV-2026-0104", paid last month) must not be read as a typo of its open
-- neighbour INV-2026-0105. The engine asks which of a batch's keys belong to invoices that are
-- no longer open; these complete the open-invoice indexes.
create index invoices_closed_number_idx on invoices (tenant_id, number_key)
    where status not in ('open', 'partially_paid');
create index invoices_closed_reference_idx on invoices (tenant_id, reference_key)
    where status not in ('open', 'partially_paid') and reference_key is not null;
