-- Polling Stripe's events as the safety net for missed webhooks: the newest event id a poll has
-- seen, where the next poll continues.
alter table stripe_connections add column events_polled_to text;
