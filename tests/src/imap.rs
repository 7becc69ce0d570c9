//! A minimal IMAP client: enough to log in and run simple tagged commands.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One IMAP connection.
pub struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl Imap {
    /// Connects and reads the greeting.
    pub fn connect(port: u16) -> Imap {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to IMAP");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut imap = Imap {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
            tag: 0,
        };
        let greeting = imap.line();
        assert!(greeting.starts_with("* OK"), "{greeting}");
        imap
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).unwrap();
        l
    }

    /// Sends a command; returns (untagged lines, tagged status line).
    pub fn command(&mut self, cmd: &str) -> (Vec<String>, String) {
        self.tag += 1;
        let tag = format!("a{}", self.tag);
        self.writer
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .unwrap();
        let mut untagged = Vec::new();
        loop {
            let l = self.line();
            assert!(!l.is_empty(), "connection closed during {cmd}");
            if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                return (untagged, rest.trim_end().to_owned());
            }
            untagged.push(l);
        }
    }

    /// `LOGIN` with quoted arguments; true on `OK`.
    pub fn login(&mut self, user: &str, password: &str) -> bool {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let (_, status) = self.command(&format!("LOGIN {} {}", q(user), q(password)));
        status.starts_with("OK")
    }
}
