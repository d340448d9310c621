//! What an analyst's workspace sends back: session transcripts and notes.
mod upload;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(upload::routes())
}
