//! `ApiJson<T>`: axum's `Json` extractor, but a body that does not parse is answered in
//! the contract's `{"detail": …}` shape (422 for a wrong shape, 400 for broken JSON, 415
//! without a JSON content type) instead of plain text.

use crate::error::ApiError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::Json;
use serde::de::DeserializeOwned;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(ApiError::new(rejection.status(), body_error(&rejection))),
        }
    }
}

fn body_error(r: &JsonRejection) -> String {
    match r {
        JsonRejection::JsonDataError(e) => format!(
            "Invalid request body: {}",
            e.body_text().trim_start_matches("Failed to deserialize the JSON body into the target type: ")
        ),
        JsonRejection::JsonSyntaxError(_) => "Request body is not valid JSON".to_string(),
        JsonRejection::MissingJsonContentType(_) => "Expected a JSON body (Content-Type: application/json)".to_string(),
        other => other.body_text(),
    }
}
