//! Which transactions a list, statistics or export covers, in which order, from where: the one
//! place their SQL is written, so every endpoint (and the benchmark's baseline) filters alike.

use chrono::{DateTime, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::{
    bank::model::{TRANSACTION_COLUMNS, Transaction},
    domain::{
        ids::{BankAccountId, BankConnectionId, TenantId, TransactionId},
        money::Currency,
        states::{MatchStatus, TransactionStatus},
    },
};

pub use crate::domain::states::Direction;

/// The date a transaction sorts and filters by in lists: its booking date, or its value date
/// while pending. A stored column (`coalesce(booking_date, value_date)`), not the expression:
/// under row-level security only leakproof comparisons become index conditions, and a COALESCE
/// expression is not one (migrations/20261121070000_transactions_list_date.sql).
pub const LIST_DATE: &str = "list_date";

/// Every filter the transaction endpoints accept, already validated. Absent fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub booking_date_from: Option<NaiveDate>,
    pub booking_date_to: Option<NaiveDate>,
    pub value_date_from: Option<NaiveDate>,
    pub value_date_to: Option<NaiveDate>,
    pub amount_min: Option<i64>,
    pub amount_max: Option<i64>,
    pub currency: Option<Currency>,
    pub direction: Option<Direction>,
    pub status: Option<TransactionStatus>,
    pub match_status: Option<MatchStatus>,
    pub category: Option<Category>,
    pub bank_connection_id: Option<BankConnectionId>,
    pub account_id: Option<BankAccountId>,
    /// Lowercased search text (matched as a substring of description, counterparty and reference).
    pub q: Option<String>,
    pub updated_since: Option<DateTime<Utc>>,
}

/// A category filter: one category, or none set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Category {
    Is(String),
    Uncategorized,
}

crate::domain::states::states! {
    /// What a list is ordered by: `-booking_date` (newest first, the default), `booking_date`,
    /// `-amount` (largest first) or `amount`; the id breaks ties, in the same direction. Its name
    /// is also what a cursor binds itself to.
    #[derive(Default)]
    Sort {
        #[default]
        DateDesc = "-booking_date",
        DateAsc = "booking_date",
        AmountDesc = "-amount",
        AmountAsc = "amount",
    }
}

impl Sort {
    fn column(self) -> &'static str {
        match self {
            Sort::DateDesc | Sort::DateAsc => LIST_DATE,
            Sort::AmountDesc | Sort::AmountAsc => "amount",
        }
    }

    fn descending(self) -> bool {
        matches!(self, Sort::DateDesc | Sort::AmountDesc)
    }

    /// Where `transaction` sits in this order.
    pub fn position_of(self, transaction: &Transaction) -> Position {
        let id = TransactionId::from_db(transaction.id.clone());
        match self {
            Sort::DateDesc | Sort::DateAsc => {
                Position::Date(transaction.booking_date.or(transaction.value_date).unwrap_or_default(), id)
            }
            Sort::AmountDesc | Sort::AmountAsc => Position::Amount(transaction.amount, id),
        }
    }
}

/// A place in a sorted list: the last row of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    Date(NaiveDate, TransactionId),
    Amount(i64, TransactionId),
}

impl Filters {
    /// Appends ` and search_text like …` for `q`, if there is one.
    fn push_search(&self, sql: &mut QueryBuilder<'_, Postgres>) {
        if let Some(q) = &self.q {
            // search_text is lowercased and trigram-indexed; LIKE with both ends open uses it.
            sql.push(" and search_text like ").push_bind(crate::db::contains_pattern(q));
        }
    }

    /// Appends `where tenant_id = … and …` for these filters.
    pub fn push_where(&self, sql: &mut QueryBuilder<'_, Postgres>, tenant: &TenantId) {
        sql.push(" where tenant_id = ").push_bind(tenant.as_str().to_owned());
        // A booking-date bound implies a booking date, which is then the list date: bounding
        // the list date too makes the range an index condition of the list indexes.
        if let Some(from) = self.booking_date_from {
            sql.push(" and booking_date >= ").push_bind(from).push(" and list_date >= ").push_bind(from);
        }
        if let Some(to) = self.booking_date_to {
            sql.push(" and booking_date <= ").push_bind(to).push(" and list_date <= ").push_bind(to);
        }
        if let Some(from) = self.value_date_from {
            sql.push(" and value_date >= ").push_bind(from);
        }
        if let Some(to) = self.value_date_to {
            sql.push(" and value_date <= ").push_bind(to);
        }
        if let Some(min) = self.amount_min {
            sql.push(" and amount >= ").push_bind(min);
        }
        if let Some(max) = self.amount_max {
            sql.push(" and amount <= ").push_bind(max);
        }
        if let Some(currency) = self.currency {
            sql.push(" and currency = ").push_bind(currency.as_str().to_owned());
        }
        match self.direction {
            Some(Direction::Credit) => {
                sql.push(" and amount >= 0");
            }
            Some(Direction::Debit) => {
                sql.push(" and amount < 0");
            }
            None => {}
        }
        if let Some(status) = &self.status {
            sql.push(" and status = ").push_bind(*status);
        }
        if let Some(match_status) = &self.match_status {
            sql.push(" and match_status = ").push_bind(*match_status);
        }
        match &self.category {
            Some(Category::Is(category)) => {
                sql.push(" and category = ").push_bind(category.clone());
            }
            Some(Category::Uncategorized) => {
                sql.push(" and category is null");
            }
            None => {}
        }
        if let Some(connection) = &self.bank_connection_id {
            sql.push(" and connection_id = ").push_bind(connection.as_str().to_owned());
        }
        if let Some(account) = &self.account_id {
            sql.push(" and account_id = ").push_bind(account.as_str().to_owned());
        }
        self.push_search(sql);
        if let Some(since) = self.updated_since {
            sql.push(" and updated_at >= ").push_bind(since);
        }
    }

    /// A canonical text of these filters, so a cursor can be bound to the query that issued it.
    pub fn fingerprint(&self) -> String {
        format!("{self:?}")
    }
}

/// Rows a search (`q`) first walks in list order, newest first by default, before it turns to the
/// trigram index.
///
/// A search for a frequent term finds a page of matches within the newest few thousand rows of
/// the filtered range: walking the list index there and checking each row reads those rows only,
/// where the trigram index would find every match of the term in the table and sort them all
/// before the newest page could be returned. The list indexes carry what the walk reads
/// (`migrations/20261203010000_transactions_search_walk.sql`), so it is an index-only scan, and
/// only the page's rows are read from the table. A rare term fills no page within the walk; the
/// trigram index then finds its few matches, which are cheap to sort. Either way a page's work
/// is bounded: by this walk, or by the number of matches.
pub const SEARCH_WALK: i64 = 20_000;

/// How a page's rows are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The filters' rows in list order, every match among the first [`SEARCH_WALK`] of them.
    Walk,
    /// Every row that passes the filters (for `q`, found through the trigram index), sorted.
    Index,
}

/// The SQL of one page: `limit` rows after `after` in `sort` order, found by `plan`. Built here so
/// the endpoint and the benchmark's baseline run exactly the same statements.
pub fn page_sql<'a>(
    tenant: &TenantId,
    filters: &Filters,
    sort: Sort,
    after: Option<&Position>,
    limit: i64,
    plan: Plan,
) -> QueryBuilder<'a, Postgres> {
    let column = sort.column();
    let (cmp, order) = if sort.descending() { ("<", "desc") } else { (">", "asc") };
    let order_by = format!(" order by {column} {order}, id {order}");
    let walk = plan == Plan::Walk && filters.q.is_some();
    let mut sql = QueryBuilder::new(format!("select {TRANSACTION_COLUMNS} from transactions"));
    let unsearched;
    if walk {
        // The page's ids: the matches among the first SEARCH_WALK rows of the range, which the
        // innermost query reads from a list index alone.
        sql.push(" where tenant_id = ").push_bind(tenant.as_str().to_owned());
        sql.push(format!(" and id = any(array(select id from (select id, {column}, search_text from transactions"));
        unsearched = Filters { q: None, ..filters.clone() };
        unsearched.push_where(&mut sql, tenant);
    } else {
        filters.push_where(&mut sql, tenant);
    }
    if let Some(after) = after {
        sql.push(format!(" and ({column}, id) {cmp} ("));
        match after {
            Position::Date(date, _) => sql.push_bind(*date),
            Position::Amount(amount, _) => sql.push_bind(*amount),
        };
        let id = match after {
            Position::Date(_, id) | Position::Amount(_, id) => id.as_str().to_owned(),
        };
        sql.push(", ").push_bind(id).push(")");
    }
    if walk {
        sql.push(&order_by).push(" limit ").push_bind(SEARCH_WALK);
        sql.push(") walked where true");
        filters.push_search(&mut sql);
        sql.push(&order_by).push(" limit ").push_bind(limit).push("))");
        sql.push(&order_by);
    } else {
        sql.push(&order_by).push(" limit ").push_bind(limit);
    }
    sql
}

/// One page of transactions: at most `limit` rows after `after`. A search walks first and turns
/// to the index only when the walk found less than a page (see [`SEARCH_WALK`]).
pub async fn page(
    conn: &mut PgConnection,
    tenant: &TenantId,
    filters: &Filters,
    sort: Sort,
    after: Option<&Position>,
    limit: i64,
) -> Result<Vec<Transaction>, sqlx::Error> {
    if filters.q.is_some() {
        let walked: Vec<Transaction> =
            page_sql(tenant, filters, sort, after, limit, Plan::Walk).build_query_as().fetch_all(&mut *conn).await?;
        if walked.len() as i64 >= limit {
            return Ok(walked);
        }
    }
    page_sql(tenant, filters, sort, after, limit, Plan::Index).build_query_as().fetch_all(conn).await
}

type HmacSha256 = Hmac<Sha256>;

/// Cursors carry their position and a MAC binding it to the tenant, filters and sort that issued
/// it: an edited cursor, or one used with another query or by another tenant, is refused instead
/// of silently paging something else.
pub struct CursorCodec<'a> {
    pub key: &'a [u8],
}

impl CursorCodec<'_> {
    pub fn encode(&self, tenant: &TenantId, filters: &Filters, sort: Sort, position: &Position) -> String {
        let body = position_text(position);
        let mac = self.mac(tenant, filters, sort, &body);
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        URL_SAFE_NO_PAD.encode(format!("t1|{body}|{mac}"))
    }

    pub fn decode(&self, cursor: &str, tenant: &TenantId, filters: &Filters, sort: Sort) -> Option<Position> {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
        let rest = text.strip_prefix("t1|")?;
        let (body, mac) = rest.rsplit_once('|')?;
        let expected = self.mac(tenant, filters, sort, body);
        // Constant-time comparison: the MAC is a secret-derived value.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(mac.as_bytes(), expected.as_bytes())) {
            return None;
        }
        parse_position(body, sort)
    }

    fn mac(&self, tenant: &TenantId, filters: &Filters, sort: Sort, body: &str) -> String {
        let mut mac =
            HmacSha256::new_from_slice(self.key).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in [tenant.as_str(), &filters.fingerprint(), sort.as_str(), body] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let bytes = mac.finalize().into_bytes();
        bytes[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn position_text(position: &Position) -> String {
    match position {
        Position::Date(date, id) => format!("d:{date}:{id}"),
        Position::Amount(amount, id) => format!("a:{amount}:{id}"),
    }
}

fn parse_position(text: &str, sort: Sort) -> Option<Position> {
    let (kind, rest) = text.split_once(':')?;
    let (value, id) = rest.rsplit_once(':')?;
    let id = TransactionId::parse(id)?;
    match (kind, sort) {
        ("d", Sort::DateDesc | Sort::DateAsc) => Some(Position::Date(value.parse().ok()?, id)),
        ("a", Sort::AmountDesc | Sort::AmountAsc) => Some(Position::Amount(value.parse().ok()?, id)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> CursorCodec<'static> {
        CursorCodec { key: b"0123456789abcdef0123456789abcdef" }
    }

    #[test]
    fn cursors_are_bound_to_their_tenant_filters_and_sort() {
        let tenant = TenantId::generate();
        let filters = Filters { direction: Some(Direction::Debit), ..Filters::default() };
        let position = Position::Amount(-1250, TransactionId::generate());
        let cursor = codec().encode(&tenant, &filters, Sort::AmountAsc, &position);
        assert_eq!(codec().decode(&cursor, &tenant, &filters, Sort::AmountAsc), Some(position));

        assert_eq!(codec().decode(&cursor, &TenantId::generate(), &filters, Sort::AmountAsc), None, "other tenant");
        assert_eq!(codec().decode(&cursor, &tenant, &Filters::default(), Sort::AmountAsc), None, "other filters");
        assert_eq!(codec().decode(&cursor, &tenant, &filters, Sort::AmountDesc), None, "other sort");
        let other_key = CursorCodec { key: b"another key" };
        assert_eq!(other_key.decode(&cursor, &tenant, &filters, Sort::AmountAsc), None, "other key");

        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(&cursor).unwrap()).unwrap();
        let edited = URL_SAFE_NO_PAD.encode(text.replace("-1250", "-1251"));
        assert_eq!(codec().decode(&edited, &tenant, &filters, Sort::AmountAsc), None, "edited position");
        assert_eq!(codec().decode("garbage", &tenant, &filters, Sort::AmountAsc), None);
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(crate::db::contains_pattern(r"50%_off\"), r"%50\%\_off\\%");
    }

    #[test]
    fn pages_continue_strictly_after_their_position_in_either_direction() {
        let tenant = TenantId::generate();
        let id = TransactionId::generate();
        let after = Position::Date(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(), id);
        let sql = page_sql(&tenant, &Filters::default(), Sort::DateDesc, Some(&after), 51, Plan::Walk).into_sql();
        assert!(sql.contains("(list_date, id) < ($2, $3)"), "{sql}");
        assert!(sql.ends_with("order by list_date desc, id desc limit $4"), "{sql}");
        let sql = page_sql(&tenant, &Filters::default(), Sort::AmountAsc, None, 51, Plan::Index).into_sql();
        assert!(sql.ends_with("order by amount asc, id asc limit $2"), "{sql}");
    }
}
