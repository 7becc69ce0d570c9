//! The exporter reads by default exactly where the daemons publish by default.
#![allow(missing_docs, clippy::unwrap_used)]

use chatmail_exporter::DEFAULT_SERVICES;
use filtermail::Mode;
use filtermail::metrics::default_socket;

fn socket_of(service: &str) -> &'static str {
    DEFAULT_SERVICES
        .iter()
        .find(|(n, _)| *n == service)
        .map(|(_, p)| *p)
        .unwrap_or_else(|| panic!("{service} is not read by default"))
}

#[test]
fn default_sockets_agree_with_the_daemons() {
    assert_eq!(socket_of("doveauth"), doveauth::http::METRICS_SOCKET);
    assert_eq!(
        socket_of("filtermail"),
        default_socket(Some(Mode::Outgoing))
    );
    assert_eq!(
        socket_of("filtermail-incoming"),
        default_socket(Some(Mode::Incoming))
    );
    assert_eq!(socket_of("filtermail-transport"), default_socket(None));
    // Dict daemons publish beside their service sockets (the paths of their units).
    for (service, dict_socket) in [
        ("doveauth", "/run/doveauth/doveauth.socket"),
        ("lastlogin", "/run/chatmail-lastlogin/lastlogin.socket"),
        (
            "chatmail-metadata",
            "/run/chatmail-metadata/metadata.socket",
        ),
    ] {
        assert_eq!(
            std::path::Path::new(socket_of(service)),
            chatmaild::metrics::socket_path(std::path::Path::new(dict_socket))
        );
    }
}
