//! The one HTTP client of the tests and the benchmark (ureq, as the CLI uses): a call
//! to the API answers its status and its body, parsed as JSON when it is JSON.
//!
//! Requests that a browser or an attacker would send, header by header, are not this
//! client's job: the security tests write those bytes themselves on purpose.

use std::time::Duration;

use serde_json::Value;

/// How long one call may take, the answer included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A call's status and body (JSON when it parses, else the text as a string).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Result<(u16, Value), ureq::Error> {
    let (status, text) = request_text(addr, method, path, body, token)?;
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, v))
}

/// A call's status and body as text.
pub fn request_text(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Result<(u16, String), ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    // What the API asks of every call that changes something (see cuecast-http's access).
    if method != "GET" && method != "HEAD" {
        req = req.header("content-type", "application/json");
    }
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let mut response = match body {
        Some(b) => agent.run(req.body(b.to_owned())?)?,
        None => agent.run(req.body(())?)?,
    };
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    Ok((status, text))
}
