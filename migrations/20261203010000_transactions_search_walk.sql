-- A search (`q`) first walks the newest rows of its filtered range and checks each one's
-- search_text (transactions::query::SEARCH_WALK). Carrying what that walk reads in the two list
-- indexes lets it run as an index-only scan: the rows' search text, amount (the direction
-- filter), booking date (the date filters) and, on the tenant-wide index, the account, without a
-- visit to the table per row. Only the page's own rows are then read from the table.
drop index transactions_list_date_idx;
create index transactions_list_date_idx on transactions (tenant_id, list_date desc, id desc)
    include (account_id, booking_date, amount, search_text);
drop index transactions_account_list_date_idx;
create index transactions_account_list_date_idx on transactions (tenant_id, account_id, list_date desc, id desc)
    include (booking_date, amount, search_text);
