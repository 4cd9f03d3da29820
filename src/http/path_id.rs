//! `PathId<T>`: the `{id}` of a path, parsed as the kind of id the route names. An id that does
//! not parse (another resource's prefix, a typo, bytes that are not UTF-8) names nothing, so it
//! answers 404 in the error shape before the handler runs, exactly like an id that does not exist.

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
};

use super::error::ApiError;
use crate::domain::ids::PrefixedId;

#[derive(Debug, Clone)]
pub struct PathId<T>(pub T);

impl<T: PrefixedId + Send, S: Send + Sync> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::not_found())?;
        T::parse(&raw).map(PathId).ok_or_else(ApiError::not_found)
    }
}
