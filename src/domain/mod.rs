//! Pure domain types and logic: no I/O, unit-tested next to the code.

pub mod canonical_json;
pub mod checksum;
pub mod ids;
pub mod metadata;
pub mod money;
pub mod scope;
pub mod secret;
pub mod states;
pub mod text;
pub mod validation;
