//! Delivery over the peer's HTTPS `/mxdeliv` endpoint (SPEC §6.11), and what counts as a
//! confirmed delivery there.

use std::net::IpAddr;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::{Batch, Deliverer};
use crate::tls::CertPolicy;

/// The most of a 2xx `/mxdeliv` body that is read: enough for any SMTP success line.
const VERDICT_HEAD: usize = 64;

/// Whether a 2xx answer of a peer's `/mxdeliv` says the message was delivered, the way the
/// peers that implement it say so:
/// - chatmail filtermail: status 200 with the SMTP reply of its DATA step as the body,
///   `250 OK`; so any body that starts with an SMTP 2xx reply (three digits, the first a
///   `2`, then a space, `-`, line end or nothing) counts;
/// - Madmail: status 200, no body and no `Content-Type` (Go's `net/http` after
///   `WriteHeader(200)` sends only `Content-Length: 0`).
///
/// Anything else is not a delivery: a web server that answers every POST with 200 sends a
/// page (HTML, JSON, `OK`) or an empty body with a type, and taking that for a delivery
/// would lose the message. The caller then tries SMTP (see the crate's README for why that
/// fallback, not a temporary failure, is the choice that neither loses nor multiplies).
/// `head` is at most the first 64 bytes of the body (all a success line needs).
pub fn https_delivered(status: u16, content_type: Option<&[u8]>, head: &[u8]) -> bool {
    if !(200..300).contains(&status) {
        return false;
    }
    let smtp_success = match head {
        [b'2', d1, d2, rest @ ..] if d1.is_ascii_digit() && d2.is_ascii_digit() => {
            matches!(rest.first(), None | Some(b' ' | b'-' | b'\r' | b'\n'))
        }
        _ => false,
    };
    let madmail = status == 200 && head.is_empty() && content_type.is_none();
    smtp_success || madmail
}

impl Deliverer {
    /// Posts the batch to `host`'s `/mxdeliv`; `Err` says why it was not a delivery.
    pub(super) async fn post(
        &self,
        batch: &Batch,
        host: &str,
        policy: CertPolicy,
    ) -> Result<(), String> {
        let client = match policy {
            CertPolicy::Verify => &self.https_verified,
            CertPolicy::AcceptInvalid => &self.https_any,
        };
        let authority = match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => host.to_owned(),
        };
        let url = format!("https://{authority}:{}/mxdeliv", self.settings.https_port);
        let headers = envelope_headers(batch)?;
        // The body is the DATA form without the final "." line (SPEC §6.11).
        let body = batch.wire.slice(..batch.wire.len().saturating_sub(3));
        let resp = client
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP status {}", resp.status()));
        }
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.as_bytes().to_vec());
        let head = read_head(resp).await?;
        if https_delivered(status, content_type.as_deref(), &head) {
            Ok(())
        } else {
            Err(format!(
                "HTTP status {status} without a delivery confirmation: {:?}",
                String::from_utf8_lossy(head.get(..head.len().min(40)).unwrap_or_default())
            ))
        }
    }
}

/// The envelope as `/mxdeliv` takes it: `X-Mail-From` (absent for the null sender) and one
/// `X-Mail-To` per recipient.
fn envelope_headers(batch: &Batch) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    let value = |a: &str| HeaderValue::from_bytes(a.as_bytes()).map_err(|e| format!("header: {e}"));
    if !batch.sender.is_empty() {
        headers.insert(
            HeaderName::from_static("x-mail-from"),
            value(&batch.sender)?,
        );
    }
    for rcpt in &batch.recipients {
        headers.append(HeaderName::from_static("x-mail-to"), value(rcpt)?);
    }
    Ok(headers)
}

/// The first [`VERDICT_HEAD`] bytes of the body, however the peer sends them, and no more.
async fn read_head(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut head = Vec::new();
    while head.len() < VERDICT_HEAD {
        match resp.chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => return Err(format!("reading response: {e}")),
        }
    }
    head.truncate(VERDICT_HEAD);
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_bodies() {
        let yes = |status, ct: Option<&str>, body: &str| {
            https_delivered(status, ct.map(str::as_bytes), body.as_bytes())
        };
        // chatmail filtermail, also with a type or a longer text.
        assert!(yes(200, None, "250 OK"));
        assert!(yes(200, Some("text/plain"), "250 OK"));
        assert!(yes(200, None, "250 2.0.0 Ok: queued as 1234"));
        assert!(yes(200, None, "250-first line\r\n250 last"));
        assert!(yes(200, None, "250\r\n"));
        assert!(yes(200, None, "250"));
        assert!(yes(202, None, "250 OK"));
        // Madmail: 200, empty, no type.
        assert!(yes(200, None, ""));
        // Web servers answering any POST.
        assert!(!yes(200, Some("text/html"), ""));
        assert!(!yes(200, Some("application/octet-stream"), ""));
        assert!(!yes(204, None, ""));
        assert!(!yes(201, None, ""));
        assert!(!yes(200, Some("text/html"), "<!DOCTYPE html><html>"));
        assert!(!yes(200, None, "OK"));
        assert!(!yes(200, Some("application/json"), r#"{"ok":true}"#));
        assert!(!yes(200, None, "\r\n250 OK"));
        assert!(!yes(200, None, " 250 OK"));
        assert!(!yes(200, None, "2500 OK"));
        assert!(!yes(200, None, "25 OK"));
        assert!(!yes(200, None, "2"));
        assert!(!yes(200, None, "2xx OK"));
        // Refusals in the body, whatever the status.
        assert!(!yes(200, None, "523 Encryption Needed"));
        assert!(!yes(200, None, "451 try later"));
        // Non-2xx statuses never confirm.
        assert!(!yes(400, None, "250 OK"));
        assert!(!yes(500, None, ""));
        assert!(!yes(302, None, ""));
    }
}
