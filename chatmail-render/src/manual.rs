//! The manual of `chatmail-render`: its `--help` text and man page (see
//! [`chatmaild::manual`]).

use chatmaild::manual::Page;

/// `chatmail-render`.
pub const PAGE: Page = Page {
    name: "chatmail-render",
    section: 1,
    summary: "the configuration of a local relay, from its chatmail.ini and the templates in relay/",
    usage: crate::cli::USAGE,
    options: "\
commands:
  paths                     its files and directories, one NAME=PATH a line
  daemons                   its daemons in start order, one NAME<TAB>METRICS_SOCKET a line (- for none)
  ini [--set KEY=VALUE]...  write <state>/chatmail.ini from chatmail.ini.in with these settings
  vars                      every value the templates are rendered with, one NAME=VALUE a line
  render                    write every file rendered from the templates into the state directory
options:
  --state DIR               the local relay's state directory (configuration, mail, logs)
  --run DIR                 its pid files and Dovecot's base directory
  --socket-root DIR         the prefix of the services' sockets (/run on a deployed relay)
  --instance N              local relay N of this machine (1-254, default 1): it listens
                            on 127.0.0.N, its IP-only mail domain
  --templates DIR           the templates (relay/ of the repository); ini and render need it
  --dovecot VERSION         the Dovecot the configuration is for (default: `dovecot --version`)
  --auth lua|dict           Dovecot's passdb/userdb (default lua; dict needs Dovecot 2.3)
  --auth-cache-ttl TTL      Dovecot's auth cache TTL with Lua auth (default 0: no cache)
  -h, --help                print this text and exit",
    description: "\
The source tree's scripts/relay runs it to configure a relay on this machine for \
development and tests: it reads chatmail.ini with the services' own parser and fills \
every template of relay/ (Postfix, Dovecot 2.3 or 2.4, nginx, the Lua auth script), so no \
script reads chatmail.ini or fills a template itself. A production relay's configuration \
is written by its deployment tool, not by this program.",
    exit_status: &[
        ("0", "done"),
        (
            "1",
            "a template could not be read, names an unknown value, or a file could not be written",
        ),
        ("64", "wrong command line"),
        ("78", "chatmail.ini is missing or has a bad value"),
    ],
    environment: &[],
    files: &[
        (
            "DIR/chatmail.ini",
            "the local relay's configuration, in the --state directory",
        ),
        ("relay/", "the templates, in the source tree"),
    ],
    see_also: &["chatmail-admin(8)", "doveauth(8)", "filtermail(8)"],
};
