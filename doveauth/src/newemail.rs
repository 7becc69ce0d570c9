//! `chatmail-newemail`: the CGI that proposes a random address and password (SPEC §9).
//!
//! It does not create the account; the first login does. An invitation link
//! (`dcaccount:https://<domain>/new?invite=<token>`, made by `chatmail-admin invite create`)
//! reaches it as `QUERY_STRING`; the token then leads the password (`<token>:<random>`),
//! which is how the first login proves the invitation to doveauth (see
//! `chatmaild::registry`). The CGI checks nothing itself (it runs as the web server's user,
//! which cannot read the relay's state): doveauth decides at the first login, and in open
//! registration such a password is as good as any.

use chatmaild::Config;
use chatmaild::config::TlsCertMode;
use chatmaild::pyjson::python_json_str;
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
