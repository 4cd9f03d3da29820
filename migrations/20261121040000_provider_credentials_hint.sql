-- The last four characters of a tenant's GoCardless secret_id, kept in clear so the API can say
-- which credentials are set without opening them.
alter table provider_credentials add column secret_id_last4 text not null default '';
alter table provider_credentials alter column secret_id_last4 drop default;
