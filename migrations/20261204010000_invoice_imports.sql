-- CSV imports of invoices, on the machinery of transaction imports: an import has a kind, and
-- only a transaction import names an account. A row's result names the object it wrote (a
-- transaction or an invoice), and an invoice row's refusal keeps its field errors.
alter table imports add column kind text not null default 'transactions'
    check (kind in ('transactions', 'invoices'));
alter table imports alter column account_id drop not null;
alter table imports add constraint imports_account_for_transactions
    check ((kind = 'transactions') = (account_id is not null));

alter table import_rows rename column transaction_id to object_id;
alter table import_rows add column errors jsonb;
