//! The transactions API's domain: categorisation rules and their on-demand application.

pub mod rule_runs;
pub mod rules;
