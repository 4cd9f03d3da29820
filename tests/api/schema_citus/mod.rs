//! Citus-ready, checked: the schema keeps the shape a Postgres sharded by `tenant_id` (Citus)
//! needs, and these tests fail, naming the table and the constraint or the query, the moment it
//! drifts. docs/scaling.md explains the path; its table list is generated from the lists here.
//!
//! What is checked, on a fresh migrated database, through the catalog (`pg_class`, `pg_index`,
//! `pg_constraint`, `pg_attribute`, `pg_proc`):
//!
//! 1. A tenant-owned table (one with a mandatory `tenant_id`) has `tenant_id` among the key
//!    columns of its primary key and of every unique constraint, unique index (partial ones too)
//!    and exclusion constraint: Citus enforces uniqueness only within a shard.
//! 2. A foreign key from a tenant-owned table to another pairs `tenant_id` with `tenant_id`, so
//!    both rows live on the same shard; a foreign key to a table that is not tenant-owned points
//!    at a reference table; reference tables reference only reference tables; coordinator tables
//!    reference no tenant-owned table (Citus supports none of the other directions).
//! 3. Every other table (no `tenant_id`, or an optional one) is listed in [`SHARED_TABLES`] as a
//!    reference table (copied to every node) or a coordinator table (kept on the coordinator),
//!    and every listed table exists and is not tenant-owned, so the list cannot rot.
//! 4. A join of two tenant tables equates their `tenant_id`s (`a.tenant_id = b.tenant_id`), so
//!    Citus can run it on one shard group. Checked statically, by [`sql_joins`], over every
//!    SQL string literal in `src/**/*.rs` and over the bodies of the schema's functions.
//! 5. docs/scaling.md lists every table where it will live, with the commands to get there.
//!
//! Why joins are checked statically: `pg_stat_statements` needs `shared_preload_libraries`, that
//! is a restart of the embedded cluster that concurrent test processes share (and a server behind
//! `DATABASE_URL` may not load it); EXPLAIN needs every statement with parameters it can plan.
//! Reading the source covers every query the service can send, not only those some test happens
//! to run. Its limits: a join clause split across two literals (`concat!` or `format!` pieces)
//! or built at run time is not seen; a comma join (`from a x, b y where ...`) passes when
//! `x.tenant_id = y.tenant_id` appears anywhere in the same literal.
//!
//! Deliberate departures are listed with their reason ([`GLOBAL_UNIQUE_KEYS`],
//! [`CROSS_TENANT_JOINS`]), and each must still occur, so fixing one forces removing it. The
//! checks themselves are proven on a scratch schema with planted faults.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use sqlx::PgPool;

use crate::support::TestApp;

/// Where a table that is not tenant-owned lives under Citus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Copied to every node (`create_reference_table`): read on request paths, joined with tenant
    /// tables or referenced by them, rarely written (a write reaches every node).
    Reference,
    /// Left on the coordinator, not distributed: platform state no tenant query joins, written
    /// often or claimed across tenants.
    Coordinator,
}

struct SharedTable {
    name: &'static str,
    placement: Placement,
    why: &'static str,
}

const fn shared(name: &'static str, placement: Placement, why: &'static str) -> SharedTable {
    SharedTable { name, placement, why }
}

/// Every table that is not tenant-owned, and why.
const SHARED_TABLES: &[SharedTable] = &[
    shared("tenants", Placement::Reference, "the distribution anchor: every tenant-owned table references it"),
    shared("users", Placement::Reference, "a person, member of any number of tenants (`memberships` references it)"),
    shared(
        "jwt_signing_keys",
        Placement::Reference,
        "the platform's token-signing keys, read to verify every user token",
    ),
    shared("encryption_keys", Placement::Reference, "the development fallback key for secrets at rest"),
    shared(
        "provider_tokens",
        Placement::Reference,
        "provider access tokens of the deployment's credentials, shared by every instance and tenant",
    ),
    shared(
        "jobs",
        Placement::Coordinator,
        "the global job queue: `tenant_id` is optional (platform jobs have none) and a claim scans every tenant with `FOR UPDATE SKIP LOCKED`",
    ),
    shared(
        "periodic_tasks",
        Placement::Coordinator,
        "once-per-period claims of fleet-wide tasks by every instance's ticker",
    ),
    shared("_sqlx_migrations", Placement::Coordinator, "sqlx's record of the applied migrations"),
];

/// Unique keys of tenant-owned tables that leave `tenant_id` out on purpose: each names a row
/// before its tenant is known. (table, index, why). Under Citus each becomes a lookup in a
/// reference table (`secret hash -> tenant_id`) or a tenant hint inside the credential, followed
/// by a query on the tenant's shard; widening the index to include `tenant_id` would satisfy
/// Citus but drop the database's promise that one secret names one row, and the lookup would
/// still visit every shard.
const GLOBAL_UNIQUE_KEYS: &[(&str, &str, &str)] = &[
    ("api_keys", "api_keys_hash_key", "an API key is found by the hash of the presented secret"),
    ("oauth_clients", "oauth_clients_id_key", "`POST /oauth/token` names the client by its id alone"),
    ("refresh_tokens", "refresh_tokens_hash_key", "a refresh token is found by the hash of the presented token"),
    (
        "stripe_connections",
        "stripe_connections_id",
        "Stripe's webhooks arrive at `/stripe/webhooks/{connection_id}`, named by the connection alone",
    ),
];

/// Joins of tenant tables that do not equate their `tenant_id`s on purpose. (file, clause as
/// reported, why.)
const CROSS_TENANT_JOINS: &[(&str, &str, &str)] = &[
    (
        "src/http/sessions.rs",
        "left join memberships m on m.tenant_id = coalesce($2, r.tenant_id) and m.user_id = r.user_id",
        "a refresh may switch the session to another tenant: the user's membership is looked up in the \
         target tenant, not the token's. Under Citus: find the token by its hash first, then the membership \
         on the target tenant's shard",
    ),
    (
        "src/http/sessions.rs",
        "join memberships m on m.user_id = r.user_id",
        "logout revokes the token's whole family, which follows the user across the tenants they switched \
         to. Under Citus: `update refresh_tokens ... where family_id in (select family_id ... where token_hash \
         = any($1))` needs no join, and is a multi-shard update",
    ),
];

/// The tables of `schema`, each with whether it is tenant-owned (a `tenant_id` that is not null).
async fn tables(db: &PgPool, schema: &str) -> BTreeMap<String, bool> {
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "select c.relname::text,
                exists (select 1 from pg_attribute a
                        where a.attrelid = c.oid and a.attname = 'tenant_id' and a.attnotnull and not a.attisdropped)
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = $1 and c.relkind in ('r', 'p') and not c.relispartition",
    )
    .bind(schema)
    .fetch_all(db)
    .await
    .unwrap();
    rows.into_iter().collect()
}

fn tenant_tables(tables: &BTreeMap<String, bool>) -> BTreeSet<String> {
    tables.iter().filter(|(_, owned)| **owned).map(|(name, _)| name.clone()).collect()
}

/// Check 1: the unique keys of tenant-owned tables without `tenant_id` among their key columns,
/// as (table, index, description).
async fn unique_keys_without_tenant_id(db: &PgPool, schema: &str) -> Vec<(String, String, String)> {
    let tenant = tenant_tables(&tables(db, schema).await);
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "select c.relname::text, i.relname::text,
                case when x.indisprimary then 'primary key'
                     when con.contype = 'u' then 'unique constraint'
                     when x.indisexclusion then 'exclusion constraint'
                     when x.indpred is not null then 'partial unique index'
                     else 'unique index' end
                || ' ' || i.relname || ': ' || pg_get_indexdef(x.indexrelid)
         from pg_index x
         join pg_class c on c.oid = x.indrelid
         join pg_class i on i.oid = x.indexrelid
         join pg_namespace n on n.oid = c.relnamespace
         left join pg_constraint con on con.conindid = x.indexrelid and con.conrelid = x.indrelid
         where n.nspname = $1 and (x.indisunique or x.indisexclusion)
           and not exists (
               select 1 from pg_attribute a
               where a.attrelid = c.oid and a.attname = 'tenant_id'
                 -- key columns only: a column an index merely INCLUDEs does not count
                 and a.attnum = any ((x.indkey::int2[])[0:x.indnkeyatts - 1]))
         order by 1, 2",
    )
    .bind(schema)
    .fetch_all(db)
    .await
    .unwrap();
    rows.into_iter().filter(|(table, _, _)| tenant.contains(table)).collect()
}

/// A foreign key: (table, constraint, columns, referenced table, referenced columns).
type ForeignKey = (String, String, Vec<String>, String, Vec<String>);

async fn foreign_keys(db: &PgPool, schema: &str) -> Vec<ForeignKey> {
    sqlx::query_as(
        "select c.relname::text, con.conname::text,
                array(select a.attname::text from unnest(con.conkey) with ordinality k(attnum, i)
                      join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum order by k.i),
                f.relname::text,
                array(select a.attname::text from unnest(con.confkey) with ordinality k(attnum, i)
                      join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum order by k.i)
         from pg_constraint con
         join pg_class c on c.oid = con.conrelid
         join pg_class f on f.oid = con.confrelid
         join pg_namespace n on n.oid = c.relnamespace
         where con.contype = 'f' and n.nspname = $1
         order by 1, 2",
    )
    .bind(schema)
    .fetch_all(db)
    .await
    .unwrap()
}

/// Check 2: foreign keys Citus could not keep, each described.
async fn foreign_key_violations(db: &PgPool, schema: &str, shared: &[SharedTable]) -> Vec<String> {
    let tables = tables(db, schema).await;
    let placement = |table: &str| shared.iter().find(|s| s.name == table).map(|s| s.placement);
    let mut violations = Vec::new();
    for (table, constraint, columns, referenced, referenced_columns) in foreign_keys(db, schema).await {
        let owned = |name: &String| tables.get(name).copied().unwrap_or(false);
        let (from_tenant, to_tenant) = (owned(&table), owned(&referenced));
        let (from_columns, to_columns) = (columns.join(", "), referenced_columns.join(", "));
        let fk = format!("{table}: foreign key {constraint} ({from_columns}) -> {referenced} ({to_columns})");
        if from_tenant && to_tenant {
            let paired = columns.iter().zip(&referenced_columns).any(|(c, r)| c == "tenant_id" && r == "tenant_id");
            if !paired {
                violations.push(format!("{fk} links two tenant tables without pairing tenant_id with tenant_id"));
            }
        } else if from_tenant {
            if placement(&referenced) == Some(Placement::Coordinator) {
                violations.push(format!("{fk}: a tenant table may reference only tenant and reference tables"));
            }
        } else if placement(&table) == Some(Placement::Reference) {
            if to_tenant || placement(&referenced) != Some(Placement::Reference) {
                violations.push(format!("{fk}: a reference table may reference only reference tables"));
            }
        } else if to_tenant {
            violations.push(format!("{fk}: only tenant tables may reference a tenant table"));
        }
    }
    violations
}

/// Check 3: tables missing from `shared`, listed tables that do not exist, and listed tables that
/// are in fact tenant-owned.
async fn shared_table_violations(db: &PgPool, schema: &str, shared: &[SharedTable]) -> Vec<String> {
    let tables = tables(db, schema).await;
    let mut violations = Vec::new();
    for (table, _) in tables.iter().filter(|(_, owned)| !**owned) {
        if !shared.iter().any(|s| s.name == table) {
            violations.push(format!(
                "{table} has no mandatory tenant_id and is not listed in SHARED_TABLES: add tenant_id, or list it as a reference or coordinator table"
            ));
        }
    }
    for s in shared {
        match tables.get(s.name) {
            None => violations.push(format!("{} is listed in SHARED_TABLES but does not exist", s.name)),
            Some(true) => {
                violations.push(format!("{} is listed in SHARED_TABLES but has a mandatory tenant_id", s.name))
            }
            Some(false) => {}
        }
    }
    violations
}

mod sql_joins;

use sql_joins::{source_literals, tenant_joins, unequated_joins};

fn reference_tables() -> BTreeSet<String> {
    SHARED_TABLES.iter().filter(|s| s.placement == Placement::Reference).map(|s| s.name.to_owned()).collect()
}

// ---- The tests -------------------------------------------------------------------------------

#[tokio::test]
async fn every_unique_key_of_a_tenant_table_includes_tenant_id() {
    let app = TestApp::spawn().await;
    let found = unique_keys_without_tenant_id(&app.db, "public").await;
    let unexpected: Vec<String> = found
        .iter()
        .filter(|(table, index, _)| !GLOBAL_UNIQUE_KEYS.iter().any(|(t, i, _)| t == table && i == index))
        .map(|(table, _, what)| format!("{table}: {what} does not include tenant_id"))
        .collect();
    assert!(unexpected.is_empty(), "Citus enforces uniqueness only within a shard:\n{}", unexpected.join("\n"));
    for (table, index, _) in GLOBAL_UNIQUE_KEYS {
        assert!(
            found.iter().any(|(t, i, _)| t == table && i == index),
            "{table}: {index} is listed in GLOBAL_UNIQUE_KEYS but no longer leaves tenant_id out: remove it from the list"
        );
    }
}

#[tokio::test]
async fn every_foreign_key_pairs_tenant_ids_or_points_at_a_reference_table() {
    let app = TestApp::spawn().await;
    let violations = foreign_key_violations(&app.db, "public", SHARED_TABLES).await;
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // The check has something to check.
    let composite = foreign_keys(&app.db, "public").await.iter().filter(|fk| fk.2.len() > 1).count();
    assert!(composite >= 20, "only {composite} composite foreign keys: is the catalog query right?");
}

#[tokio::test]
async fn every_table_without_tenant_id_is_listed_as_a_reference_or_coordinator_table() {
    let app = TestApp::spawn().await;
    let violations = shared_table_violations(&app.db, "public", SHARED_TABLES).await;
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[tokio::test]
async fn every_join_of_tenant_tables_in_the_source_and_the_schema_equates_their_tenant_ids() {
    let app = TestApp::spawn().await;
    let tenant = tenant_tables(&tables(&app.db, "public").await);
    let reference = reference_tables();

    let literals = source_literals();
    let joins: usize = literals.iter().map(|(_, _, sql)| tenant_joins(sql, &tenant)).sum();
    assert!(joins >= 10, "only {joins} joins of tenant tables found in src/: is the scan reading the SQL?");
    let found: Vec<(String, usize, String)> = literals
        .iter()
        .flat_map(|(file, line, sql)| {
            unequated_joins(sql, &tenant, &reference).into_iter().map(|clause| (file.clone(), *line, clause))
        })
        .collect();
    let unexpected: Vec<String> = found
        .iter()
        .filter(|(file, _, clause)| !CROSS_TENANT_JOINS.iter().any(|(f, c, _)| f == file && c == clause))
        .map(|(file, line, clause)| format!("{file}:{line}: {clause}"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "joins of tenant tables must equate their tenant_ids (a.tenant_id = b.tenant_id), or Citus cannot run them on one shard:\n{}",
        unexpected.join("\n")
    );
    for (file, clause, _) in CROSS_TENANT_JOINS {
        assert!(
            found.iter().any(|(f, _, c)| f == file && c == clause),
            "{file}: `{clause}` is listed in CROSS_TENANT_JOINS but no longer found: remove it from the list"
        );
    }

    // The bodies of the schema's own functions (triggers included).
    let functions: Vec<(String, String)> = sqlx::query_as(
        "select p.proname::text, p.prosrc from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'public' and p.prolang in (select oid from pg_language where lanname in ('sql', 'plpgsql'))",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(functions.iter().any(|(name, _)| name == "payymo_webhook_fanout"), "{functions:?}");
    let in_functions: Vec<String> = functions
        .iter()
        .flat_map(|(name, body)| {
            unequated_joins(body, &tenant, &reference).into_iter().map(move |c| format!("{name}: {c}"))
        })
        .collect();
    assert!(in_functions.is_empty(), "{}", in_functions.join("\n"));
}

/// The checks find what they are for: a scratch schema with one fault of each kind.
#[tokio::test]
async fn the_schema_checks_report_drift_planted_in_a_scratch_schema() {
    let app = TestApp::spawn().await;
    sqlx::raw_sql(
        "create schema citus_drift;
         create table citus_drift.tenants (id text primary key);
         create table citus_drift.accounts (
             tenant_id text not null references citus_drift.tenants (id),
             id        text not null,
             number    text not null,
             primary key (tenant_id, id),
             constraint accounts_number_key unique (number)
         );
         create unique index accounts_id_key on citus_drift.accounts (id);
         create unique index accounts_open_key on citus_drift.accounts (number) where id is not null;
         create table citus_drift.payments (
             tenant_id  text not null,
             id         text not null,
             account_id text not null,
             primary key (id),
             constraint payments_account_fkey foreign key (account_id) references citus_drift.accounts (id)
         );
         create table citus_drift.settings (name text primary key);",
    )
    .execute(&app.db)
    .await
    .unwrap();

    let unique = unique_keys_without_tenant_id(&app.db, "citus_drift").await;
    let named: Vec<(&str, &str)> = unique.iter().map(|(t, i, _)| (t.as_str(), i.as_str())).collect();
    assert_eq!(
        named,
        [
            ("accounts", "accounts_id_key"),
            ("accounts", "accounts_number_key"),
            ("accounts", "accounts_open_key"),
            ("payments", "payments_pkey")
        ],
        "{unique:?}"
    );
    assert!(unique[1].2.starts_with("unique constraint accounts_number_key"), "{unique:?}");
    assert!(unique[2].2.starts_with("partial unique index accounts_open_key"), "{unique:?}");
    assert!(unique[3].2.starts_with("primary key payments_pkey"), "{unique:?}");

    let listed = [
        shared("tenants", Placement::Reference, "the anchor"),
        shared("ghosts", Placement::Reference, "listed, but never created"),
    ];
    let foreign = foreign_key_violations(&app.db, "citus_drift", &listed).await;
    assert_eq!(foreign.len(), 1, "{foreign:?}");
    assert!(
        foreign[0].starts_with("payments: foreign key payments_account_fkey (account_id) -> accounts (id)"),
        "{foreign:?}"
    );

    let missing = shared_table_violations(&app.db, "citus_drift", &listed).await;
    assert_eq!(missing.len(), 2, "{missing:?}");
    assert!(missing[0].starts_with("settings has no mandatory tenant_id and is not listed"), "{missing:?}");
    assert!(missing[1].starts_with("ghosts is listed in SHARED_TABLES but does not exist"), "{missing:?}");
}

/// The table list in docs/scaling.md, as these lists and the catalog make it.
async fn scaling_doc_tables(db: &PgPool) -> String {
    let tables = tables(db, "public").await;
    let tenant = tenant_tables(&tables);
    // Distributed tables in foreign-key order: a table after every tenant table it references.
    let edges: Vec<(String, String)> = foreign_keys(db, "public")
        .await
        .into_iter()
        .filter(|fk| tenant.contains(&fk.0) && tenant.contains(&fk.3) && fk.0 != fk.3)
        .map(|fk| (fk.0, fk.3))
        .collect();
    let mut ordered: Vec<String> = Vec::new();
    while ordered.len() < tenant.len() {
        let next = tenant
            .iter()
            .find(|t| !ordered.contains(t) && edges.iter().all(|(from, to)| from != *t || ordered.contains(to)))
            .expect("foreign keys between tenant tables form no cycle")
            .clone();
        ordered.push(next);
    }
    let mut doc = String::from("| table | under Citus | why |\n|---|---|---|\n");
    for s in SHARED_TABLES {
        let placement = match s.placement {
            Placement::Reference => "reference table",
            Placement::Coordinator => "coordinator only",
        };
        doc.push_str(&format!("| `{}` | {placement} | {} |\n", s.name, s.why));
    }
    for table in &tenant {
        doc.push_str(&format!("| `{table}` | distributed by `tenant_id` | tenant-owned |\n"));
    }
    doc.push_str("\n```sql\n-- Reference tables first: distributed tables reference them.\n");
    for s in SHARED_TABLES.iter().filter(|s| s.placement == Placement::Reference) {
        doc.push_str(&format!("select create_reference_table('{}');\n", s.name));
    }
    doc.push_str("-- Then the tenant tables, each after the tables it references, all co-located.\n");
    // The first one Citus accepts as it is: the tables with a global unique key need it replaced first.
    let global = |table: &String| GLOBAL_UNIQUE_KEYS.iter().any(|(t, _, _)| t == table);
    let anchor = ordered.iter().find(|t| !global(t)).expect("a tenant table without a global unique key").clone();
    doc.push_str(&format!("select create_distributed_table('{anchor}', 'tenant_id');\n"));
    for table in ordered.iter().filter(|t| **t != anchor) {
        let note = if global(table) { " -- after its global unique key is replaced" } else { "" };
        doc.push_str(&format!(
            "select create_distributed_table('{table}', 'tenant_id', colocate_with => '{anchor}');{note}\n"
        ));
    }
    let coordinator: Vec<&str> =
        SHARED_TABLES.iter().filter(|s| s.placement == Placement::Coordinator).map(|s| s.name).collect();
    doc.push_str(&format!("-- Left on the coordinator as they are: {}.\n", coordinator.join(", ")));
    doc.push_str("```\n");
    doc
}

#[tokio::test]
async fn the_scaling_doc_lists_every_table_where_it_will_live() {
    let app = TestApp::spawn().await;
    let expected = scaling_doc_tables(&app.db).await;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/scaling.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (start, end) = ("<!-- tables: generated by tests/api/schema_citus/ -->\n", "<!-- end of tables -->");
    let block = doc.split_once(start).and_then(|(_, rest)| rest.split_once(end)).map(|(block, _)| block);
    assert_eq!(
        block,
        Some(expected.as_str()),
        "docs/scaling.md's table list is out of date; between the markers it should read:\n{expected}"
    );
}
