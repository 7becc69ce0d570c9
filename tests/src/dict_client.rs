//! Dovecot's side of the dict protocol as the tests need it: the passdb key Dovecot builds
//! (`passdb/%Ew"%Eu`), and one lookup over a connection of its own, as Dovecot's auth
//! process sends it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// The `L` line of a passdb lookup of `user` with `password`, as Dovecot sends it (`%Ew`
/// backslash-escapes quotes and backslashes, so a generated password may contain them).
pub fn passdb_line(password: &str, user: &str) -> String {
    let mut escaped = String::new();
    for c in password.chars() {
        if matches!(c, '"' | '\'' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    format!("Lshared/passdb/{escaped}\"{user}\t{user}")
}

/// One passdb lookup of `addr` with `password` on a new connection to the dict `socket`
/// (handshake, lookup, close): doveauth's reply line, newline included.
pub fn passdb_lookup(socket: &Path, addr: &str, password: &str) -> String {
    let stream = UnixStream::connect(socket).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let request = format!("H3\t2\t0\t\tauth\n{}\n", passdb_line(password, addr));
    writer.write_all(request.as_bytes()).unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}
