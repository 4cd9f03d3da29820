//! Wake-ups through `LISTEN`/`NOTIFY`, shared by the job runner and the webhook dispatcher. Only a
//! latency optimisation for both: they poll as well, so a missed notification or a lost listener
//! connection delays work by at most one poll interval.

use sqlx::{PgPool, postgres::PgListener};

/// A listener on `channel`, or `None` (logged) when it cannot be had; the caller polls meanwhile.
pub async fn listen(pool: &PgPool, channel: &str) -> Option<PgListener> {
    let listener = async {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(channel).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match listener.await {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, channel, "cannot listen for notifications; polling only");
            None
        }
    }
}

/// The next notification, or never when there is no listener.
pub async fn notification(listener: &mut Option<PgListener>) -> Result<(), sqlx::Error> {
    match listener {
        Some(listener) => listener.recv().await.map(drop),
        None => std::future::pending().await,
    }
}
