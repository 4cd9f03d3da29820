//! Bank feeds: connections made through GoCardless consent, their accounts, and the background
//! sync that keeps transactions flowing in.

pub mod budget;
pub mod connections;
pub mod model;
pub mod normalize;
pub mod schedule;
pub mod sync;
