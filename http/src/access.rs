//! Who may call the API, beyond the token: the checks that keep a web page the producer
//! happens to open from driving the show.
//!
//! Loopback is not a trust boundary against web pages. A page on any site can send
//! "simple" cross-origin requests (`text/plain`, form bodies, no body) without a
//! preflight, and DNS rebinding can point a name the page controls at 127.0.0.1 and then
//! read the answers too. So every request is checked, in this order:
//!
//! 1. **Host**: a name must be `localhost` or one the config lists (`api.hosts`); IP
//!    literals are fine (a rebinding attack always arrives under its own name). 403.
//! 2. **Origin**: a browser names the page a request comes from; it must be this API's
//!    own origin (the control surface) or one the config lists (`api.origins`). 403.
//! 3. **Content type**: a call that changes something and carries a body, or names a
//!    content type at all, must be `application/json`, or, for the routes that take a
//!    file (an image upload), one of that route's types (`image/png`, `image/jpeg`:
//!    neither is a type a page may send across sites without a preflight). 415.
//!
//! Tools that are not browsers (curl, Companion, scripts) send no `Origin` and are
//! unaffected; the control surface is same-origin and sends JSON.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// The names and origins a show's API answers beyond loopback and itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    /// Extra host names (`studio.local`), compared without case.
    pub hosts: Vec<String>,
    /// Extra origins (`https://companion.local:8000`), compared exactly.
    pub origins: Vec<String>,
}

impl Access {
    /// Checks one request's headers; `Err` says which check refused it.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        self.check_route(method, "", headers)
    }

    /// [`Access::check`] for a request to `path`, which decides the body types allowed.
    pub fn check_route(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(), ApiError> {
        let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
        let host = text(header::HOST);
        if let Some(host) = host {
            if !self.host_allowed(host) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden_host",
                    format!("this API answers to localhost, IP addresses and the names in api.hosts, not {:?}", clip(host)),
                ));
            }
        }
        if let Some(origin) = text(header::ORIGIN) {
            let own = host.is_some_and(|h| same_authority(origin, h));
            if !own && !self.origins.iter().any(|o| o == origin) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden_origin",
                    format!("requests from web pages at {:?} are refused (api.origins lists the ones allowed)", clip(origin)),
                ));
            }
        }
        let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let has_body = headers.contains_key(header::TRANSFER_ENCODING)
            || text(header::CONTENT_LENGTH).is_some_and(|n| n.trim() != "0");
        let kind = text(header::CONTENT_TYPE);
        let files = file_types(path);
        let allowed = |k: &str| {
            if files.is_empty() {
                is_json(k)
            } else {
                files.iter().any(|f| media_type(k).eq_ignore_ascii_case(f))
            }
        };
        if changes && (has_body || kind.is_some()) && !kind.is_some_and(allowed) {
            let wanted = if files.is_empty() {
                "application/json".to_owned()
            } else {
                files.join(" or ")
            };
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "send the body as Content-Type: {wanted} (got {})",
                    kind.map_or("none".into(), |k| format!("{:?}", clip(k)))
                ),
            ));
        }
        Ok(())
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = strip_port(host);
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// The routes whose bodies are files, and the types each takes (the rest take JSON).
pub const FILE_ROUTES: [(&str, &[&str]); 1] = [("/api/v1/media", &["image/png", "image/jpeg"])];

fn file_types(path: &str) -> &'static [&'static str] {
    FILE_ROUTES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(&[], |(_, t)| t)
}

fn media_type(kind: &str) -> &str {
    kind.split(';').next().unwrap_or("").trim()
}

/// The middleware: every route behind it is checked.
pub async fn guard(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    match access.check_route(request.method(), request.uri().path(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn is_json(kind: &str) -> bool {
    kind.split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// `host[:port]` without the port (IPv6 literals keep their brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as `host`.
fn same_authority(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let with_port = |a: &str| -> String {
        if strip_port(a) == a {
            format!("{}:{default_port}", a.to_ascii_lowercase())
        } else {
            a.to_ascii_lowercase()
        }
    };
    with_port(authority) == with_port(host)
}

/// At most 100 characters of a header, for an error message.
fn clip(s: &str) -> String {
    s.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn code(access: &Access, method: Method, pairs: &[(header::HeaderName, &str)]) -> u16 {
        match access.check(&method, &headers(pairs)) {
            Ok(()) => 200,
            Err(e) => e.status.as_u16(),
        }
    }

    #[test]
    fn loopback_names_and_ip_literals_are_answered_other_names_are_not() {
        let a = Access::default();
        for host in [
            "127.0.0.1:7070",
            "localhost:7070",
            "LOCALHOST",
            "[::1]:7070",
            "192.168.1.20:7070",
        ] {
            assert_eq!(
                code(&a, Method::GET, &[(header::HOST, host)]),
                200,
                "{host}"
            );
        }
        for host in [
            "evil.example:7070",
            "evil.example",
            "localhost.evil.example",
        ] {
            assert_eq!(
                code(&a, Method::GET, &[(header::HOST, host)]),
                403,
                "{host}"
            );
        }
        let named = Access {
            hosts: vec!["studio.local".into()],
            ..Default::default()
        };
        assert_eq!(
            code(&named, Method::GET, &[(header::HOST, "Studio.Local:7070")]),
            200
        );
    }

    #[test]
    fn pages_from_other_origins_are_refused_the_api_own_page_is_not() {
        let a = Access::default();
        let host = (header::HOST, "127.0.0.1:7070");
        let json = (header::CONTENT_TYPE, "application/json");
        let own = (header::ORIGIN, "http://127.0.0.1:7070");
        assert_eq!(
            code(&a, Method::POST, &[host.clone(), own, json.clone()]),
            200
        );
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:8080",
            "null",
            "http://localhost:7070",
        ] {
            assert_eq!(
                code(&a, Method::GET, &[host.clone(), (header::ORIGIN, origin)]),
                403,
                "{origin}"
            );
        }
        let listed = Access {
            origins: vec!["http://companion.local:8000".into()],
            ..Default::default()
        };
        let from = (header::ORIGIN, "http://companion.local:8000");
        assert_eq!(code(&listed, Method::POST, &[host, from, json]), 200);
    }

    #[test]
    fn changes_with_a_body_must_be_json() {
        let a = Access::default();
        let host = (header::HOST, "127.0.0.1:7070");
        let len = (header::CONTENT_LENGTH, "12");
        for kind in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            let c = code(
                &a,
                Method::POST,
                &[host.clone(), len.clone(), (header::CONTENT_TYPE, kind)],
            );
            assert_eq!(c, 415, "{kind}");
        }
        assert_eq!(
            code(&a, Method::POST, &[host.clone(), len.clone()]),
            415,
            "no type"
        );
        for kind in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
        ] {
            let c = code(
                &a,
                Method::POST,
                &[host.clone(), len.clone(), (header::CONTENT_TYPE, kind)],
            );
            assert_eq!(c, 200, "{kind}");
        }
        // A change without a body (rundown GO from curl) needs no type; reads never do.
        assert_eq!(code(&a, Method::POST, std::slice::from_ref(&host)), 200);
        assert_eq!(
            code(
                &a,
                Method::POST,
                &[host.clone(), (header::CONTENT_TYPE, "text/plain")]
            ),
            415
        );
        assert_eq!(
            code(
                &a,
                Method::GET,
                &[host, (header::CONTENT_TYPE, "text/plain")]
            ),
            200
        );
    }
}
