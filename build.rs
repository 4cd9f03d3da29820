//! Rebuild when a migration is added or changed: `sqlx::migrate!` embeds `migrations/` at compile
//! time and would otherwise silently miss new files.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
