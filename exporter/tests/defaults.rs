//! The exporter reads by default exactly where the daemons publish by default, and that is
//! where their systemd units give them a directory: all three from `chatmaild::daemons`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use chatmail_exporter::default_services;
use chatmaild::daemons::{DAEMONS, RUN_ROOT};
use filtermail::Mode;
use filtermail::default_metrics_socket as default_socket;

fn socket_of(service: &str) -> PathBuf {
    default_services()
        .into_iter()
        .find(|(n, _)| n == service)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("{service} is not read by default"))
}

#[test]
fn default_sockets_agree_with_the_daemons() {
    assert_eq!(socket_of("doveauth"), doveauth::default_metrics_socket());
    assert_eq!(
        socket_of("filtermail"),
        default_socket(Some(Mode::Outgoing))
    );
    assert_eq!(
        socket_of("filtermail-incoming"),
        default_socket(Some(Mode::Incoming))
    );
    assert_eq!(socket_of("filtermail-transport"), default_socket(None));
    // Every daemon but the exporter itself is read.
    assert_eq!(default_services().len(), DAEMONS.len() - 1);
}

/// `Key=value` lines of a unit file.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../systemd")
        .join(unit);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{unit}: {e}"));
    text.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
        .collect()
}

#[test]
fn units_agree_with_the_table() {
    for d in DAEMONS {
        let unit = format!("{}.service", d.name);
        let exec = unit_values(&unit, "ExecStart").concat();
        assert!(
            exec.split(' ')
                .next()
                .unwrap()
                .ends_with(&format!("/{}", d.binary)),
            "{unit}: {exec}"
        );
        let runtime: Vec<String> = d.runtime_dir.map(str::to_owned).into_iter().collect();
        assert_eq!(unit_values(&unit, "RuntimeDirectory"), runtime, "{unit}");
        if let Some(socket) = d.socket_in(Path::new(RUN_ROOT)) {
            let socket = socket.display().to_string();
            assert!(exec.contains(&socket), "{unit}: {exec}");
            let socket_unit = format!("{}.socket", d.name);
            assert_eq!(unit_values(&socket_unit, "ListenStream"), [socket]);
        }
    }
    // doveauth's HTTP mode shares the dict mode's runtime directory (and metrics socket).
    assert_eq!(
        unit_values("doveauth-http.service", "RuntimeDirectory"),
        ["doveauth"]
    );
}
