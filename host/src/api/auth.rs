//! Callers who say who they are: the bearer token check on every route but the probes.
//!
//! With `--tokens-file` (see [`Tokens`]), a request needs `Authorization: Bearer <token>` with
//! a token of the file: without one, or with one the file does not know, it is answered 401
//! `unauthorized` (with `WWW-Authenticate: Bearer`) before its body is read. A known client
//! may read the listings and `/metrics` only if its entry says so (403 `forbidden` otherwise),
//! and call only the plugins its patterns match: that is checked by the call handlers once
//! they know the plugin's name (from `/run`'s body, or the path), through the [`Caller`] this
//! layer puts into the request's extensions, so no body is read twice. `/healthz` and
//! `/readyz` are always open: kubelet sends no token.
//!
//! Tokens never reach a log line or an answer: the request's span gets the client's name, and
//! errors say only that a token is missing, unknown or not allowed.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use plugin_host::PluginName;

use super::{
    ApiError,
    tokens::{Client, Tokens},
};

/// The `client` metric label of requests that no token identifies: tokens are off, or the
/// request was refused for want of a valid one. Client names start with a letter or digit, so
/// none can be mistaken for it.
pub const NO_CLIENT: &str = "-";

/// Who sent the request, as far as the tokens say: in every request's extensions once it has
/// passed the token check (`authenticate`).
#[derive(Debug, Clone)]
pub struct Caller(Option<Arc<Client>>);

impl Caller {
    /// The caller when tokens are off: it may do anything.
    const OPEN: Caller = Caller(None);

    /// The caller the token check (`authenticate`) put into a request's extensions; none means
    /// tokens are off (the check is not even layered then).
    pub fn of(extension: Option<axum::Extension<Caller>>) -> Caller {
        extension.map_or(Caller::OPEN, |axum::Extension(caller)| caller)
    }

    /// The caller's name for metrics and logs ([`NO_CLIENT`] when tokens are off).
    pub fn label(&self) -> &str {
        self.0.as_ref().map_or(NO_CLIENT, |client| client.name())
    }

    /// Ok when the caller may call the plugin named `plugin` (always, with tokens off).
    pub fn may_call(&self, plugin: &PluginName) -> Result<(), ApiError> {
        match &self.0 {
            Some(client) if !client.may_call(plugin.as_str()) => {
                Err(ApiError::Forbidden("this client's token does not allow calling this plugin"))
            }
            _ => Ok(()),
        }
    }
}

/// What a route needs besides a valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The probes: no token at all.
    Probe,
    /// A plugin call: a valid token, and the plugin's name must match its patterns (checked by
    /// the handler).
    Call,
    /// The listings: a token with `listings`.
    Listings,
    /// `/metrics`: a token with `metrics`.
    Metrics,
    /// Anything else (which is not found): a valid token, so that unknown paths tell an
    /// unauthenticated client nothing.
    Other,
}

impl Scope {
    fn of(path: &str) -> Scope {
        match path {
            "/healthz" | "/readyz" => Scope::Probe,
            "/run" => Scope::Call,
            "/metrics" => Scope::Metrics,
            "/plugins" | "/openapi.json" => Scope::Listings,
            _ => match path.strip_prefix("/plugins/") {
                Some(rest) => {
                    let mut parts = rest.split('/');
                    match (parts.next(), parts.next(), parts.next(), parts.next()) {
                        (Some(_), Some("functions"), Some(_), None) => Scope::Call,
                        _ => Scope::Listings,
                    }
                }
                None => Scope::Other,
            },
        }
    }
}

/// What the token check needs: layered only when tokens are on.
#[derive(Debug, Clone)]
pub(super) struct AuthState {
    pub tokens: Arc<Tokens>,
}

/// The token check (see the module documentation), layered only with tokens on: without it,
/// handlers see no `Caller` and take [`Caller::OPEN`].
pub(super) async fn authenticate(State(state): State<AuthState>, mut request: Request, next: Next) -> Response {
    let scope = Scope::of(request.uri().path());
    if scope == Scope::Probe {
        return next.run(request).await;
    }
    let tokens = &state.tokens;
    let client = match bearer_token(request.headers()) {
        None => None,
        Some(token) => tokens.current().find(token),
    };
    // A refused call is counted like every other (`outcome::record`), without a plugin or client
    // name: neither is known, and made-up ones must not become label values.
    let Some(client) = client else {
        let challenge = match request.headers().contains_key(header::AUTHORIZATION) {
            false => r#"Bearer realm="plugin-host""#,
            true => r#"Bearer realm="plugin-host", error="invalid_token""#,
        };
        return ([(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge))], ApiError::Unauthorized)
            .into_response();
    };
    tracing::Span::current().record("client", &**client.name());
    let refusal = match scope {
        Scope::Listings if !client.may_list() => Some("this client's token does not allow reading the listings"),
        Scope::Metrics if !client.may_read_metrics() => Some("this client's token does not allow reading /metrics"),
        _ => None,
    };
    if let Some(refusal) = refusal {
        return ApiError::Forbidden(refusal).into_response();
    }
    let caller = Caller(Some(client));
    request.extensions_mut().insert(caller.clone());
    // On the answer too, for the layer outside this one that counts calls by client.
    let mut response = next.run(request).await;
    response.extensions_mut().insert(caller);
    response
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case, RFC 7235).
fn bearer_token(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_the_scope_it_should() {
        for (path, scope) in [
            ("/healthz", Scope::Probe),
            ("/readyz", Scope::Probe),
            ("/run", Scope::Call),
            ("/plugins/text/functions/upper", Scope::Call),
            ("/plugins", Scope::Listings),
            ("/plugins/text", Scope::Listings),
            ("/plugins/text/versions", Scope::Listings),
            ("/plugins/text/functions", Scope::Listings),
            ("/openapi.json", Scope::Listings),
            ("/metrics", Scope::Metrics),
            ("/healthz/", Scope::Other),
            ("/", Scope::Other),
        ] {
            assert_eq!(Scope::of(path), scope, "{path}");
        }
    }

    #[test]
    fn only_a_bearer_header_gives_a_token() {
        let token = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            bearer_token(&headers).map(|t| String::from_utf8(t.to_vec()).unwrap())
        };
        assert_eq!(token("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(token("bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(token("Basic abc"), None);
        assert_eq!(token("Bearer "), None);
        assert_eq!(token("Bearer"), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
