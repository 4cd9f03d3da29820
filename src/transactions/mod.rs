//! Transactions as an API: filters, sorting and cursors shared by list, statistics and export;
//! categorisation rules and their on-demand application.

pub mod query;
pub mod rule_runs;
pub mod rules;
