//! A workspace binary started as a daemon on a temporary socket.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::KillOnDrop;

/// The directory cargo put this workspace's binaries in (next to the test executable).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir layout")
        .to_path_buf()
}

/// The path of workspace binary `name` of package `package`, building it if missing.
pub fn binary(package: &str, name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", package, "--bin", name])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building {name} failed");
    }
    assert!(path.exists(), "{} missing", path.display());
    path
}

/// A running dict daemon; killed on drop.
pub struct Service {
    _child: KillOnDrop,
    /// Its socket.
    pub socket: PathBuf,
}

impl Service {
    /// Starts `bin SOCKET INI` as user and group `ids` (e.g. vmail, as a relay runs it)
    /// and waits until the socket accepts connections; the socket is then opened to every
    /// local user, as Dovecot's processes run under other uids.
    pub fn start_dict(bin: &Path, socket: &Path, ini: &Path, ids: Option<(u32, u32)>) -> Service {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(bin);
        command.arg(socket).arg(ini).stdin(Stdio::null());
        if let Some((uid, gid)) = ids {
            command.uid(uid).gid(gid);
        }
        let child = KillOnDrop(command.spawn().expect("spawn daemon"));
        crate::support::wait_for_socket(socket);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).unwrap();
        Service {
            _child: child,
            socket: socket.to_path_buf(),
        }
    }
}
