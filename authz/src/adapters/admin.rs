//! The admin endpoints on their own listener (`AUTHZ_ADMIN_LISTEN`): flush one user's or every
//! cached membership, so a member removed from the directory loses access at once.

use std::convert::Infallible;

use serde_json::json;
use warp::Filter;
use warp::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE,
};
use warp::http::{HeaderMap, Response, StatusCode};
use warp::hyper::body::Bytes;

use ipm_policy::identity::Email;
use ipm_policy::secret::SecretSet;
use ipm_runtime::config::DirectoryConfig;
use ipm_runtime::groups::cache::{FlushReach, GroupCache};
use ipm_runtime::listen::{Listener, serve};
use ipm_runtime::service::StartError;

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    pub cache: GroupCache,
    /// `AUTHZ_ADMIN_TOKEN`, kept as a digest and compared in constant time.
    pub token: SecretSet,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `None` when the request carries the admin token; otherwise the 401 to send.
fn check_token(headers: &HeaderMap, token: &SecretSet) -> Option<Response<Bytes>> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let reason = match (values.next(), values.next()) {
        (None, _) => "missing_admin_token",
        (Some(v), None) => match v.as_bytes().split_at_checked(7) {
            // The scheme is case-insensitive (RFC 9110); the token is not.
            Some((scheme, candidate))
                if scheme.eq_ignore_ascii_case(b"bearer ") && token.verify(candidate) =>
            {
                return None;
            }
            _ => "invalid_admin_token",
        },
        (Some(_), Some(_)) => "invalid_admin_token",
    };
    let mut r = reply(
        StatusCode::UNAUTHORIZED,
        json!({ "error": "unauthenticated", "reason": reason }),
    );
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(r)
}

fn flushed(scope: &str, user: Option<&Email>, reach: FlushReach) -> Response<Bytes> {
    let user = user.map(Email::as_str);
    match reach {
        FlushReach::Local | FlushReach::Shared => {
            let reach = if reach == FlushReach::Local {
                "local"
            } else {
                "shared"
            };
            tracing::info!(target: "authz::admin", scope, user, reach, "group cache flushed");
            reply(
                StatusCode::OK,
                json!({ "flushed": scope, "user": user, "reach": reach }),
            )
        }
        FlushReach::LocalOnly(error) => {
            tracing::error!(
                target: "authz::admin", scope, user, error = %error,
                "group cache flushed here only: the shared cache did not take the flush; retry"
            );
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({
                    "error": "unavailable",
                    "reason": "shared_cache_unavailable",
                    "flushed": scope,
                    "user": user,
                    "reach": "local_only",
                    "detail": error,
                }),
            )
        }
    }
}

/// The `user` query parameter. A `+` stays a `+`: emails hold no spaces but often a plus.
fn user_param(query: &str) -> Option<Email> {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("user="))?;
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    decoded.parse().ok()
}

async fn flush_user(
    headers: HeaderMap,
    query: String,
    state: AdminState,
) -> Result<Response<Bytes>, Infallible> {
    // The token is checked before anything else is read from the request.
    if let Some(denied) = check_token(&headers, &state.token) {
        return Ok(denied);
    }
    let Some(user) = user_param(&query) else {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            json!({ "error": "bad_request", "reason": "invalid_user" }),
        ));
    };
    let reach = state.cache.flush_user(&user).await;
    Ok(flushed("user", Some(&user), reach))
}

async fn flush_all(headers: HeaderMap, state: AdminState) -> Result<Response<Bytes>, Infallible> {
    if let Some(denied) = check_token(&headers, &state.token) {
        return Ok(denied);
    }
    let reach = state.cache.flush_all().await;
    Ok(flushed("all", None, reach))
}

fn with_state(
    state: AdminState,
) -> impl Filter<Extract = (AdminState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// `POST /admin/groups/flush?user=EMAIL` and `POST /admin/groups/flush-all`.
pub fn routes(
    state: AdminState,
) -> impl Filter<Extract = (Response<Bytes>,), Error = Infallible> + Clone {
    let one = warp::path!("admin" / "groups" / "flush")
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(with_state(state.clone()))
        .and_then(flush_user);
    let all = warp::path!("admin" / "groups" / "flush-all")
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(with_state(state))
        .and_then(flush_all);
    one.or(all).unify().recover(super::http::recover).unify()
}

/// Starts the admin listener when `AUTHZ_ADMIN_LISTEN` is set.
pub async fn start(
    config: &DirectoryConfig,
    cache: Option<&GroupCache>,
) -> Result<Option<Listener>, StartError> {
    const VAR: &str = "AUTHZ_ADMIN_LISTEN";
    let Some(addr) = &config.admin_listen else {
        return Ok(None);
    };
    let Some(cache) = cache else {
        return Err(StartError::Invalid {
            var: VAR,
            message: "the admin endpoints flush the directory cache; set GROUP_SOURCE=http".into(),
        });
    };
    let Some(token) = &config.admin_token else {
        return Err(StartError::Invalid {
            var: "AUTHZ_ADMIN_TOKEN",
            message: "not set: AUTHZ_ADMIN_LISTEN needs it".into(),
        });
    };
    let state = AdminState {
        cache: cache.clone(),
        token: SecretSet::new(token, None),
    };
    let listener = serve(VAR, addr, routes(state)).await?;
    tracing::info!(target: "authz::admin", listen = %listener.addr, "admin endpoints listening");
    Ok(Some(listener))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_user_parameter() {
        let u = |q: &str| user_param(q).map(|e| e.to_string());
        assert_eq!(
            u("user=a%2Bb%40Example.com"),
            Some("a+b@example.com".into())
        );
        assert_eq!(
            u("x=1&user=a+b@example.com"),
            Some("a+b@example.com".into())
        );
        assert_eq!(u("user=not-an-email"), None);
        assert_eq!(u(""), None);
    }
}
