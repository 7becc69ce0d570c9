//! One request to the notification service (SPEC §5.5): `POST` of the device token as the
//! body, 60 s in all. What the answer means is the [`crate::notifier`]'s.

use std::time::Duration;

use crate::error::Error;

/// Total time allowed for one notification request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// At most this much of a response body is read (to keep the connection reusable).
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// The HTTP client for notifications: rustls verifying against the system trust store
/// (which honours `SSL_CERT_FILE` and `SSL_CERT_DIR` like OpenSSL), HTTP/2 via ALPN,
/// pooled keep-alive connections.
pub fn http_client() -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .user_agent(concat!("chatmail-metadata/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(Error::HttpClient)
}

/// Posts `token` to `url`: the answer's status once (a bounded part of) its body is read,
/// or what failed, with its causes.
pub async fn post(client: &reqwest::Client, url: &str, token: &str) -> Result<u16, String> {
    let mut response = client
        .post(url)
        .body(token.to_owned())
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    let status = response.status().as_u16();
    // Read (a bounded amount of) the body so the connection can be reused.
    let mut read = 0;
    while read < MAX_RESPONSE_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            _ => break,
        }
    }
    Ok(status)
}

/// An error and all its sources, `: `-separated (reqwest's top-level text alone hides
/// the cause, e.g. "connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
