//! `chatmail-newemail`: the CGI that proposes a random address and password (SPEC §9).
//!
//! Without an invitation it creates nothing; the first login does. An invitation link
//! (`dcaccount:https://<domain>/new?invite=<token>`, made by `chatmail-admin invite create`)
//! reaches it as `QUERY_STRING`. The token then leads the password (`<token>:<random>`) and
//! the CGI has doveauth create the account at once, over the same HTTP `/create` that
//! Dovecot's Lua passdb uses: doveauth alone uses up the invitation and counts the creation
//! rate, so a token creates exactly its number of accounts and the cap stays relay-wide,
//! and a spent, revoked or expired token is refused here, where Delta Chat shows the
//! reason, instead of at a login that follows. The CGI runs as the web server's user and
//! reads none of the relay's state. Without an invitation it first asks doveauth's
//! `GET /registration` for the mode, so that a closed or invite-only relay refuses at the
//! URL with a reason Delta Chat shows, instead of handing out credentials whose first login
//! fails. Where doveauth serves only the dict protocol (Dovecot 2.3's dict mode) there is
//! neither `/create` nor `/registration` to ask; the credentials are then handed out
//! unchecked and the first login decides, which in open registration is as good as any.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use chatmaild::Config;
use chatmaild::config::{DEFAULT_INI, TlsCertMode};
use chatmaild::json_string::python_json_str;
use chatmaild::registry::RegistrationMode;
use rand::Rng;

const LOCAL_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Python's `string.ascii_letters + string.digits + string.punctuation`.
const PASSWORD_CHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

fn random_string(rng: &mut impl Rng, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| {
            let i = rng.random_range(0..alphabet.len());
            alphabet.get(i).map_or('a', |b| char::from(*b))
        })
        .collect()
}

/// A fresh credential pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `<local>@<mail_domain>`.
    pub email: String,
    /// The password.
    pub password: String,
}

/// Draws new credentials with the reference's lengths and alphabets.
pub fn generate(config: &Config) -> Credentials {
    let mut rng = rand::rng();
    let local = random_string(&mut rng, LOCAL_CHARS, config.username_max_length);
    Credentials {
        email: format!("{local}@{}", config.mail_domain),
        password: random_string(&mut rng, PASSWORD_CHARS, config.password_min_length + 3),
    }
}

/// Like [`generate`], with the password carrying `invitation` (`<token>:<random>`).
pub fn generate_invited(config: &Config, invitation: Option<&str>) -> Credentials {
    let mut creds = generate(config);
    if let Some(token) = invitation {
        creds.password = format!(
            "{token}{}{}",
            chatmaild::registry::INVITATION_SEPARATOR,
            creds.password
        );
    }
    creds
}

/// The invitation token of a query string (`invite=<token>` among `&`-separated pairs),
/// if it is well-formed.
pub fn invitation_from_query(query: &str) -> Option<&str> {
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("invite="))
        .find(|t| chatmaild::registry::is_token(t))
}

/// Whether the query string has an `invite` parameter at all (well-formed or not).
pub fn has_invitation(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair == "invite" || pair.starts_with("invite="))
}

/// Time doveauth gets to answer a creation (it may wait for an account's lock).
const CREATE_TIMEOUT: Duration = Duration::from_secs(15);
/// Time doveauth gets to answer `/registration` (a look at two files).
const MODE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer read: a head and a one-word body.
const MAX_ANSWER: u64 = 1024;

/// What doveauth's `/create` said.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// The account exists now, with this password.
    Yes,
    /// Refused for good (invitation, registration mode, tombstone).
    Refused,
    /// Refused for now (the creation rate cap, the system limits).
    Busy,
    /// No `/create` on the port: doveauth runs in dict mode (or not at all).
    Unavailable,
}

/// One request to doveauth at `addr` (`doveauth_http_host`:`doveauth_http_port`), on its own connection, naming `client`
/// (the web client) if known: the whole answer (head and body, at most [`MAX_ANSWER`]
/// bytes), or `None` if nothing listens there.
fn ask(
    addr: SocketAddr,
    (method, path): (&str, &str),
    body: &str,
    client: Option<IpAddr>,
    timeout: Duration,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut stream = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let client = client.map_or(String::new(), |ip| {
        format!("{}: {ip}\r\n", crate::http::CLIENT_HEADER)
    });
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n{client}Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer)?;
    Ok(Some(answer))
}

fn unexpected(answer: &[u8]) -> std::io::Error {
    std::io::Error::other(format!(
        "unexpected answer from doveauth: {:?}",
        String::from_utf8_lossy(answer.get(..answer.len().min(64)).unwrap_or_default())
    ))
}

/// Asks doveauth (`POST /create` at `addr`) to create `creds` now for the web
/// client `client`.
pub fn create_account(
    addr: SocketAddr,
    creds: &Credentials,
    client: Option<IpAddr>,
) -> std::io::Result<Created> {
    let body = format!("{}\t{}", creds.email, creds.password);
    let Some(head) = ask(
        addr,
        ("POST", crate::http::CREATE_PATH),
        &body,
        client,
        CREATE_TIMEOUT,
    )?
    else {
        return Ok(Created::Unavailable);
    };
    Ok(match status_code(&head) {
        Some(200) => Created::Yes,
        Some(403) if has_retry_after(&head) => Created::Busy,
        Some(403) => Created::Refused,
        Some(404 | 501) => Created::Unavailable,
        _ => return Err(unexpected(&head)),
    })
}

/// The mode named by a `/registration` body (the words of `registration status`).
pub fn parse_mode(body: &str) -> Option<RegistrationMode> {
    let word = body.trim();
    [
        RegistrationMode::Open,
        RegistrationMode::InviteOnly,
        RegistrationMode::Closed,
    ]
    .into_iter()
    .find(|m| m.name() == word)
}

/// Asks doveauth (`GET /registration` at `addr`) for the registration mode;
/// `None` where there is no `/registration` (dict mode, or doveauth not running).
pub fn registration_mode(addr: SocketAddr) -> std::io::Result<Option<RegistrationMode>> {
    let Some(answer) = ask(
        addr,
        ("GET", crate::http::REGISTRATION_PATH),
        "",
        None,
        MODE_TIMEOUT,
    )?
    else {
        return Ok(None);
    };
    match status_code(&answer) {
        Some(200) => {
            let text = String::from_utf8_lossy(&answer);
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b);
            body.and_then(parse_mode)
                .map(Some)
                .ok_or_else(|| unexpected(&answer))
        }
        Some(404 | 501) => Ok(None),
        _ => Err(unexpected(&answer)),
    }
}

/// The status code of an HTTP/1.x response head.
fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/1."))?;
    words.next()?.parse().ok()
}

/// Whether a response head has a `Retry-After` field.
fn has_retry_after(head: &[u8]) -> bool {
    let head = String::from_utf8_lossy(head);
    let head = head.split("\r\n\r\n").next().unwrap_or_default();
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .any(|(name, _)| name.trim().eq_ignore_ascii_case("retry-after"))
}

/// The reason Delta Chat shows when a creation is refused for now.
pub const BUSY_REASON: &str =
    "The relay is creating too many new accounts right now; try again in a minute.";

/// The reason Delta Chat shows when registration is closed.
pub const CLOSED_REASON: &str = "This relay does not accept new accounts.";

/// The reason Delta Chat shows when an invite-only relay is asked without an invitation.
pub const INVITE_ONLY_REASON: &str = "This relay accepts new accounts by invitation only.";

/// The reason Delta Chat shows when an invitation is refused.
pub const REFUSED_REASON: &str = "This invitation is not valid: it was used up, revoked or has expired, or the relay accepts no new accounts right now.";

/// A refusal as CGI response: `403` with the JSON `{"reason": …}` Delta Chat displays.
pub fn cgi_refusal(status: &str, reason: &str) -> String {
    format!(
        "Status: {status}\nContent-Type: application/json\n\n{{\"reason\": {}}}\n",
        python_json_str(reason)
    )
}

/// `chatmail-newemail`: one CGI request, from the environment the web server sets.
pub fn main_entry() -> ExitCode {
    // `--help` only outside a request: a CGI's arguments could come from a query string.
    if std::env::var_os("GATEWAY_INTERFACE").is_none()
        && let Some(flag) = std::env::args_os().nth(1)
        && (flag == "--help" || flag == "-h")
    {
        return crate::manual::NEWEMAIL.print_help();
    }
    // The CGI takes no arguments; the path may be overridden for tests and local relays.
    let ini = std::env::var_os("CHATMAIL_INI").unwrap_or_else(|| DEFAULT_INI.into());
    let config = match Config::load(&ini) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(e.exit_code());
        }
    };
    // An invitation link's token arrives in the query string (`/new?invite=<token>`).
    let query = std::env::var("QUERY_STRING").unwrap_or_default();
    // The web client's address (CGI `REMOTE_ADDR`), for doveauth's per-client rate cap.
    let client = std::env::var("REMOTE_ADDR")
        .ok()
        .and_then(|a| a.parse().ok());
    if chatmaild::cli::write_stdout(&respond(&config, &query, client)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The whole CGI run for `query` from the web client `client`: credentials, created through
/// doveauth when the query carries an invitation; without one, only if doveauth says
/// registration is open.
pub fn respond(config: &Config, query: &str, client: Option<IpAddr>) -> String {
    let doveauth = SocketAddr::from((config.doveauth_http_host, config.doveauth_http_port));
    if !has_invitation(query) {
        return match registration_mode(doveauth) {
            Ok(Some(RegistrationMode::Closed)) => cgi_refusal("403 Forbidden", CLOSED_REASON),
            Ok(Some(RegistrationMode::InviteOnly)) => {
                cgi_refusal("403 Forbidden", INVITE_ONLY_REASON)
            }
            Ok(Some(RegistrationMode::Open) | None) => cgi_response(config, &generate(config)),
            Err(e) => {
                // The first login still decides, as without `/registration`.
                eprintln!("chatmail-newemail: asking doveauth for the registration mode: {e}");
                cgi_response(config, &generate(config))
            }
        };
    }
    let Some(token) = invitation_from_query(query) else {
        return cgi_refusal("403 Forbidden", REFUSED_REASON);
    };
    let creds = generate_invited(config, Some(token));
    match create_account(doveauth, &creds, client) {
        Ok(Created::Yes | Created::Unavailable) => cgi_response(config, &creds),
        Ok(Created::Refused) => {
            // A closed relay refuses every token; say so rather than blame the invitation.
            let closed = matches!(
                registration_mode(doveauth),
                Ok(Some(RegistrationMode::Closed))
            );
            let reason = if closed {
                CLOSED_REASON
            } else {
                REFUSED_REASON
            };
            cgi_refusal("403 Forbidden", reason)
        }
        Ok(Created::Busy) => cgi_refusal("503 Service Unavailable", BUSY_REASON),
        Err(e) => {
            eprintln!("chatmail-newemail: account creation through doveauth failed: {e}");
            cgi_refusal(
                "503 Service Unavailable",
                "The relay cannot create accounts right now; try again later.",
            )
        }
    }
}

/// Percent-encodes every byte except `A-Za-z0-9_.-~` and `extra`.
fn percent_encode(s: &str, extra: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) || extra.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `dclogin:` URL a Delta Chat client configures itself from.
pub fn dclogin_url(config: &Config, creds: &Credentials) -> String {
    let mut url = format!(
        "dclogin:{}?p={}&v=1",
        percent_encode(&creds.email, b"@[]"),
        percent_encode(&creds.password, b"")
    );
    if let Some(ip) = config.ipv4_relay {
        url.push_str(&format!("&ih={ip}&sh={ip}"));
    }
    url.push_str("&ic=3");
    url
}

/// The whole CGI response: header, empty line, one JSON line.
pub fn cgi_response(config: &Config, creds: &Credentials) -> String {
    let mut json = format!(
        "{{\"email\": {}, \"password\": {}",
        python_json_str(&creds.email),
        python_json_str(&creds.password)
    );
    if config.tls_cert_mode == TlsCertMode::SelfSigned {
        json.push_str(&format!(
            ", \"dclogin_url\": {}",
            python_json_str(&dclogin_url(config, creds))
        ));
    }
    json.push('}');
    format!("Content-Type: application/json\n\n{json}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_shape() {
        let c = Config::parse("[params]\nmail_domain = c.org\n").unwrap();
        let creds = generate(&c);
        let (local, domain) = creds.email.split_once('@').unwrap();
        assert_eq!(domain, "c.org");
        assert_eq!(local.len(), 9);
        assert!(local.bytes().all(|b| LOCAL_CHARS.contains(&b)));
        assert_eq!(creds.password.len(), 12);
        assert!(creds.password.bytes().all(|b| PASSWORD_CHARS.contains(&b)));
        assert_eq!(PASSWORD_CHARS.len(), 94);
        let out = cgi_response(&c, &creds);
        assert!(out.starts_with("Content-Type: application/json\n\n{\"email\": "));
        assert!(
            !out.contains("dclogin_url"),
            "acme relays get no dclogin url"
        );
    }

    #[test]
    fn invitation_leads_the_password() {
        let c = Config::parse("[params]\nmail_domain = c.org\n").unwrap();
        for (query, token) in [
            ("invite=abc123", Some("abc123")),
            ("x=1&invite=abc123&y=2", Some("abc123")),
            ("invite=ABC", None),
            ("invite=../x", None),
            ("invite=", None),
            ("", None),
            ("invitex=abc", None),
        ] {
            assert_eq!(invitation_from_query(query), token, "{query:?}");
        }
        let creds = generate_invited(&c, Some("abc123"));
        let rest = creds.password.strip_prefix("abc123:").unwrap();
        assert_eq!(
            rest.len(),
            12,
            "the part after the token is a full password"
        );
        assert_eq!(generate_invited(&c, None).password.len(), 12);
        assert!(has_invitation("invite=ABC"));
        assert!(has_invitation("x=1&invite"));
        assert!(!has_invitation("invitex=abc&y=2"));
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 403 Forbidden\r\nx: y"), Some(403));
        assert_eq!(status_code(b"SSH-2.0-x\r\n"), None);
        assert_eq!(status_code(b""), None);
        assert!(has_retry_after(
            b"HTTP/1.1 403 Forbidden\r\nretry-after: 60\r\n\r\n"
        ));
        assert!(!has_retry_after(
            b"HTTP/1.1 403 Forbidden\r\nconnection: close\r\n\r\n"
        ));
        let r = cgi_refusal("403 Forbidden", "no \"way\"");
        assert_eq!(
            r,
            "Status: 403 Forbidden\nContent-Type: application/json\n\n{\"reason\": \"no \\\"way\\\"\"}\n"
        );
    }

    /// A stand-in for doveauth on a free loopback port: answers each of `answers`, one per
    /// connection, after reading the request head; returns the port and the requests.
    fn fake_doveauth(answers: &[&'static str]) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let answers = answers.to_vec();
        let served = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for answer in answers {
                let (mut s, _) = listener.accept().unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap() == 1 {
                    head.push(byte[0]);
                }
                requests.push(String::from_utf8(head).unwrap());
                s.write_all(answer.as_bytes()).unwrap();
            }
            requests
        });
        (port, served)
    }

    #[test]
    fn without_an_invitation_the_mode_decides() {
        let (port, served) = fake_doveauth(&[
            "HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\ninvite-only\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nclose\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nopen\n",
            // An older doveauth without /registration, and one saying nonsense: the first
            // login decides, as before.
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nmaybe\n",
        ]);
        let c = Config::parse(&format!(
            "[params]\nmail_domain = c.org\ndoveauth_http_port = {port}\n"
        ))
        .unwrap();
        assert_eq!(
            respond(&c, "", None),
            cgi_refusal("403 Forbidden", INVITE_ONLY_REASON)
        );
        assert_eq!(
            respond(&c, "x=1", None),
            cgi_refusal("403 Forbidden", CLOSED_REASON)
        );
        for _ in 0..3 {
            assert!(
                respond(&c, "", None).starts_with("Content-Type: application/json\n\n{\"email\": ")
            );
        }
        for request in served.join().unwrap() {
            assert!(
                request.starts_with("GET /registration HTTP/1.1\r\n"),
                "{request:?}"
            );
        }
    }

    #[test]
    fn mode_words() {
        assert_eq!(parse_mode("open\n"), Some(RegistrationMode::Open));
        assert_eq!(
            parse_mode("invite-only"),
            Some(RegistrationMode::InviteOnly)
        );
        assert_eq!(parse_mode("close\n"), Some(RegistrationMode::Closed));
        assert_eq!(parse_mode("closed"), None);
        assert_eq!(parse_mode(""), None);
    }

    #[test]
    fn malformed_invitation_is_refused_without_asking() {
        let c = Config::parse("[params]\nmail_domain = c.org\ndoveauth_http_port = 1\n").unwrap();
        assert!(respond(&c, "invite=../x", None).starts_with("Status: 403 Forbidden\n"));
        assert!(respond(&c, "", None).starts_with("Content-Type: application/json\n"));
    }

    #[test]
    fn dclogin_for_ip_relay() {
        let c = Config::parse("[params]\nmail_domain = 1.2.3.4\n").unwrap();
        let creds = Credentials {
            email: "abc@[1.2.3.4]".into(),
            password: "p@ss w+rd".into(),
        };
        assert_eq!(
            dclogin_url(&c, &creds),
            "dclogin:abc@[1.2.3.4]?p=p%40ss%20w%2Brd&v=1&ih=1.2.3.4&sh=1.2.3.4&ic=3"
        );
        assert!(cgi_response(&c, &creds).contains("\"dclogin_url\": \"dclogin:abc@[1.2.3.4]?p="));
    }
}
