-- The engine finds who may have paid by the words of the payer's name and by the account paid
-- from. Loading every customer of a tenant for that (and normalising their names) cost a pass
-- about 0.1 s per 16,000 customers before it looked at a single credit; now each batch asks for
-- the customers sharing a word or an account with its payers, in `customer_lookup_keys`: one row
-- per customer and key, kept by a trigger. (A GIN index on an array column cannot serve this
-- under row-level security: array containment is not leakproof, so the tenant policy runs first
-- and every lookup reads all of the tenant's customers.)
--
-- The words are the name's and aliases' lowercase ASCII words of two or more characters, accents
-- folded as `text::names` folds them (à → a, ß → ss, æ → ae, upper case too: a C-locale lower()
-- leaves them), '.', apostrophes and combining marks dropped inside words ("A.C.M.E." → acme),
-- '&' read as "and": every word of `text::NormalizedName` is among them (tested in
-- tests/api/reconciliation_payers.rs).
create function payymo_name_words(name text, aliases text[]) returns text[]
    language sql immutable parallel safe as $$
    select coalesce(array_agg(distinct w), '{}')
    from regexp_split_to_table(
        translate(replace(replace(replace(replace(replace(replace(replace(regexp_replace(lower(replace(concat_ws(' ', name, array_to_string(aliases, ' ')), '&', ' and ')), '[.''’\u0300-\u036f]', '', 'g'), 'æ', 'ae'), 'Æ', 'ae'), 'Œ', 'oe'), 'œ', 'oe'), 'ß', 'ss'), 'þ', 'th'), 'Þ', 'th'),
                  'àÀÁáÂâÃãäÄÅåāĀăĂąĄçÇćĆĈĉĊċČčďĎđĐÐðÈèÉéêÊËëēĒĕĔĖėęĘĚěĝĜĞğĠġĢģĥĤĦħÌìÍíÎîÏïĩĨĪīĭĬĮįıĵĴĶķĺĹļĻĽľŀĿłŁÑñŃńņŅňŇÒòÓóÔôõÕöÖØøōŌŎŏŐőŔŕŖŗřŘŚśŜŝŞşŠšȘșţŢŤťŦŧȚțÙùÚúÛûÜüŨũŪūŭŬůŮŰűŲųŵŴýÝÿŸŶŷźŹżŻžŽ',
                  'aaaaaaaaaaaaaaaaaaccccccccccddddddeeeeeeeeeeeeeeeeeegggggggghhhhiiiiiiiiiiiiiiiiijjkkllllllllllnnnnnnnnoooooooooooooooooorrrrrrssssssssssttttttttuuuuuuuuuuuuuuuuuuuuwwyyyyyyzzzzzz'),
        '[^a-z0-9]+') as w
    where length(w) >= 2
$$;

create table customer_lookup_keys (
    tenant_id   text not null,
    -- 'w:' and a name word, or 'a:' and an account's ref key (customers.account_keys).
    key         text not null,
    customer_id text not null,
    primary key (tenant_id, key, customer_id),
    foreign key (tenant_id, customer_id) references customers (tenant_id, id) on delete cascade
);
create index customer_lookup_keys_customer_idx on customer_lookup_keys (tenant_id, customer_id);

create function payymo_customer_lookup_keys() returns trigger
    language plpgsql as $$
begin
    if tg_op = 'UPDATE' then
        if new.name is not distinct from old.name and new.aliases is not distinct from old.aliases
           and new.account_keys is not distinct from old.account_keys then
            return null;
        end if;
        delete from customer_lookup_keys where tenant_id = new.tenant_id and customer_id = new.id;
    end if;
    insert into customer_lookup_keys (tenant_id, key, customer_id)
    select new.tenant_id, k, new.id
    from (select 'w:' || w from unnest(payymo_name_words(new.name, new.aliases)) as w
          union
          select 'a:' || a from unnest(new.account_keys) as a) as keys(k)
    on conflict do nothing;
    return null;
end;
$$;

create trigger customers_lookup_keys after insert or update on customers
    for each row execute function payymo_customer_lookup_keys();

insert into customer_lookup_keys (tenant_id, key, customer_id)
select c.tenant_id, k, c.id
from customers c
cross join lateral (select 'w:' || w from unnest(payymo_name_words(c.name, c.aliases)) as w
                    union
                    select 'a:' || a from unnest(c.account_keys) as a) as keys(k)
on conflict do nothing;

alter table customer_lookup_keys enable row level security;
alter table customer_lookup_keys force row level security;
create policy tenant_isolation on customer_lookup_keys
    using (tenant_id = current_setting('payymo.tenant_id', true)
           or current_setting('payymo.platform', true) = 'on')
    with check (tenant_id = current_setting('payymo.tenant_id', true)
                or current_setting('payymo.platform', true) = 'on');
