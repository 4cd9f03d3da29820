//! Transactions as an API: filters, sorting and cursors shared by list, statistics and export.

pub mod query;
