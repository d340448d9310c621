//! Who is calling: sign-in, tokens, users, groups and grants.
pub(crate) mod auth;
mod cli_login;
mod email_link;
mod groups;
mod me;
pub(crate) mod sso;
mod users;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::routes())
        .merge(me::routes())
        .merge(users::routes())
        .merge(groups::routes())
        .merge(sso::routes())
        .merge(email_link::routes())
        .merge(cli_login::routes())
}
