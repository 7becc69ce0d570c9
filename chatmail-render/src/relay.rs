//! A local relay's configuration: its `chatmail.ini` as the services read it
//! ([`chatmaild::Config`]), its [`Layout`], its Dovecot series and auth mode; the values
//! every template is rendered with, and the list of files rendered from `relay/`.

use std::path::{Path, PathBuf};

use chatmaild::Config;
use chatmaild::fs::{Durability, write_atomic_mode};

use crate::Error;
use crate::dovecot::{Auth, Dovecot};
use crate::layout::Layout;
use crate::template::{Values, render};

/// Which server a rendered file configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Postfix (`main.cf`, `master.cf` and the files they name).
    Postfix,
    /// Dovecot (`dovecot.conf`, the auth backend, the Lua scripts).
    Dovecot,
    /// nginx in front of the newemail CGI.
    Nginx,
}

/// One file of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// What it configures.
    pub part: Part,
    /// Its template (or verbatim source), relative to `relay/`.
    pub template: String,
    /// Where it goes.
    pub target: PathBuf,
    /// Whether placeholders are replaced (`false`: copied as it is).
    pub render: bool,
}

impl Output {
    /// A template whose placeholders are replaced.
    fn render(part: Part, template: &str, target: PathBuf) -> Output {
        Output {
            part,
            template: template.to_owned(),
            target,
            render: true,
        }
    }

    /// A file copied as it is.
    fn copy(part: Part, template: &str, target: PathBuf) -> Output {
        Output {
            render: false,
            ..Output::render(part, template, target)
        }
    }
}

/// A rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// What it configures.
    pub part: Part,
    /// Where it goes.
    pub target: PathBuf,
    /// Its content.
    pub text: String,
}

/// Everything a local relay's configuration is rendered from.
#[derive(Debug, Clone)]
pub struct Relay {
    /// `chatmail.ini` of [`Layout::ini`].
    pub config: Config,
    /// Where everything is.
    pub layout: Layout,
    /// The installed Dovecot's series.
    pub dovecot: Dovecot,
    /// Dovecot's passdb/userdb.
    pub auth: Auth,
    /// Dovecot's `auth_cache_ttl` with Lua auth (`0`: no cache).
    pub auth_cache_ttl: String,
}

impl Relay {
    /// Reads the layout's `chatmail.ini` with the services' parser; refuses an auth mode
    /// the Dovecot cannot run.
    pub fn load(
        layout: Layout,
        dovecot: Dovecot,
        auth: Auth,
        auth_cache_ttl: &str,
    ) -> Result<Relay, Error> {
        auth.check(dovecot)?;
        Ok(Relay {
            config: Config::load(layout.ini())?,
            layout,
            dovecot,
            auth,
            auth_cache_ttl: auth_cache_ttl.to_owned(),
        })
    }

    /// The values of `chatmail.ini` (defaults applied, derived forms computed) under the
    /// templates' names, with the few the scripts ask for besides.
    fn config_values(&self) -> Vec<(&'static str, String)> {
        let c = &self.config;
        let plugins = if c.imap_compress && self.dovecot.has_imap_compress() {
            "imap_zlib"
        } else {
            ""
        };
        // IP relays have no DKIM key (SPEC §10.3): no milter on the reinjection port.
        let milter = match c.ipv4_relay {
            Some(_) => "",
            None => "  -o smtpd_milters=unix:opendkim/opendkim.sock",
        };
        let ipv4 = c.ipv4_relay.map(|ip| ip.to_string()).unwrap_or_default();
        vec![
            ("MAIL_DOMAIN", c.mail_domain.clone()),
            ("MAIL_DOMAIN_BARE", c.mail_domain_bare.clone()),
            ("IPV4_RELAY", ipv4),
            ("MYHOSTNAME", c.postfix_myhostname.clone()),
            ("MAILBOXES_DIR", c.mailboxes_dir.display().to_string()),
            ("MAX_MESSAGE_SIZE", c.max_message_size.to_string()),
            ("MAX_MAILBOX_SIZE_MB", c.max_mailbox_size_mb.to_string()),
            // chatmail-quota-expire's target: 70 % of the quota (SPEC §10.2).
            (
                "QUOTA_TARGET_MB",
                (c.max_mailbox_size_mb * 70 / 100).to_string(),
            ),
            ("FILTERMAIL_HOST", c.filtermail_host.clone()),
            ("POSTFIX_HOST", c.postfix_host.clone()),
            ("DOVEAUTH_HTTP_HOST", c.doveauth_http_host.to_string()),
            ("METRICS_HOST", c.metrics_host.to_string()),
            ("FILTERMAIL_SMTP_PORT", c.filtermail_smtp_port.to_string()),
            (
                "FILTERMAIL_SMTP_PORT_INCOMING",
                c.filtermail_smtp_port_incoming.to_string(),
            ),
            (
                "FILTERMAIL_HTTP_PORT_INCOMING",
                c.filtermail_http_port_incoming.to_string(),
            ),
            (
                "FILTERMAIL_LMTP_PORT_TRANSPORT",
                c.filtermail_lmtp_port_transport.to_string(),
            ),
            ("POSTFIX_REINJECT_PORT", c.postfix_reinject_port.to_string()),
            (
                "POSTFIX_REINJECT_PORT_INCOMING",
                c.postfix_reinject_port_incoming.to_string(),
            ),
            ("DOVEAUTH_HTTP_PORT", c.doveauth_http_port.to_string()),
            ("METRICS_PORT", c.metrics_port.to_string()),
            ("MAX_SMTP_CONNECTIONS", c.max_smtp_connections.to_string()),
            (
                "SMTP_CONNECTIONS_PER_CLIENT",
                (c.max_smtp_connections / 5).to_string(),
            ),
            ("MAX_IMAP_CONNECTIONS", c.max_imap_connections.to_string()),
            (
                "DOVECOT_CLIENT_LIMIT",
                (c.max_imap_connections * 2).to_string(),
            ),
            ("IMAP_EXTRA_PLUGINS", plugins.into()),
            ("REINJECT_MILTER", milter.into()),
            ("USERNAME_MIN_LENGTH", c.username_min_length.to_string()),
            ("USERNAME_MAX_LENGTH", c.username_max_length.to_string()),
            ("PASSWORD_MIN_LENGTH", c.password_min_length.to_string()),
        ]
    }

    /// Every value by name: the configuration's, the layout's places and settings, and
    /// the Dovecot series'. A value with a line break is refused: it would add lines.
    pub fn values(&self) -> Result<Values, Error> {
        let d = self.dovecot;
        let ttl = self.auth_cache_ttl.clone();
        // A TTL of 0 turns the cache off (chatmail-admin block/delete/passwd act at once).
        let cache_size = if ttl == "0" { "0" } else { "10M" };
        let mut all = self.config_values();
        all.extend(
            self.layout
                .paths()
                .into_iter()
                .map(|(n, p)| (n, p.display().to_string())),
        );
        all.extend(self.layout.settings());
        all.extend([
            ("PASSWORD_VARIABLE", d.password_variable().to_owned()),
            ("CLIENT_IP_VARIABLE", d.client_ip_variable().to_owned()),
            ("HTTP_CLIENT_SETTINGS", d.http_client_settings().to_owned()),
            ("AUTH_CACHE_TTL", ttl),
            ("AUTH_CACHE_SIZE", cache_size.to_owned()),
        ]);
        let mut values = Values::new();
        for (name, value) in all {
            if value.contains(['\n', '\r']) {
                return Err(Error::LineBreak {
                    name: name.to_owned(),
                    value,
                });
            }
            values.insert(name, value);
        }
        Ok(values)
    }

    /// Every file of the configuration, in the order they are written.
    pub fn outputs(&self) -> Vec<Output> {
        let mut out = self.postfix_outputs();
        out.extend(self.dovecot_outputs());
        out.push(Output::render(
            Part::Nginx,
            "nginx/nginx.conf.in",
            self.layout.nginx_conf(),
        ));
        out
    }

    fn postfix_outputs(&self) -> Vec<Output> {
        let dir = self.layout.postfix_conf_dir();
        let mut out = vec![
            Output::render(Part::Postfix, "postfix/main.cf.in", dir.join("main.cf")),
            Output::render(Part::Postfix, "postfix/master.cf.in", dir.join("master.cf")),
        ];
        for name in [
            "login_map",
            "lmtp_header_cleanup",
            "submission_header_cleanup",
        ] {
            out.push(Output::copy(
                Part::Postfix,
                &format!("postfix/{name}"),
                dir.join(name),
            ));
        }
        out
    }

    fn dovecot_outputs(&self) -> Vec<Output> {
        let dir = self.layout.dovecot_conf_dir();
        let series = self.dovecot.template_dir();
        let auth = self.auth.name();
        let d = Part::Dovecot;
        let mut out = vec![
            Output::render(
                d,
                &format!("{series}/dovecot.conf.in"),
                dir.join("dovecot.conf"),
            ),
            Output::render(
                d,
                &format!("{series}/auth-{auth}.conf.in"),
                dir.join("auth-backend.conf"),
            ),
        ];
        if self.auth == Auth::Dict {
            out.push(Output::render(
                d,
                "dovecot/auth.conf.in",
                dir.join("auth.conf"),
            ));
        }
        // The Lua files are the same for both series.
        out.push(Output::render(
            d,
            "dovecot/auth.lua.in",
            dir.join("auth.lua"),
        ));
        out.push(Output::copy(
            d,
            "dovecot/push_notification.lua",
            dir.join("push_notification.lua"),
        ));
        out
    }

    /// Renders every output from the templates in `templates` (the repository's `relay/`).
    pub fn render(&self, templates: &Path) -> Result<Vec<Rendered>, Error> {
        let values = self.values()?;
        self.outputs()
            .into_iter()
            .map(|o| {
                let path = templates.join(&o.template);
                let text =
                    std::fs::read_to_string(&path).map_err(|e| chatmaild::Error::io(&path, e))?;
                let text = if o.render {
                    render(&path, &text, &values)?
                } else {
                    text
                };
                Ok(Rendered {
                    part: o.part,
                    target: o.target,
                    text,
                })
            })
            .collect()
    }

    /// Renders everything and writes it (mode 0644, each file replaced atomically, its
    /// directory created if missing). Nothing is written if any template fails.
    pub fn write(&self, templates: &Path) -> Result<(), Error> {
        for r in self.render(templates)? {
            write_file(&r.target, &r.text)?;
        }
        Ok(())
    }
}

/// Writes `text` to `path` atomically, mode 0644 (read by the servers' unprivileged users).
pub fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| chatmaild::Error::io(dir, e))?;
    }
    write_atomic_mode(path, text.as_bytes(), Durability::Rename, Some(0o644))?;
    Ok(())
}
