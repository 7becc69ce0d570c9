//! SMTP/LMTP command lines: any bytes parse to a verb; a path is a slice of the line between
//! `<` and `>`, parameters are read only after it; the service readings never panic.
#![no_main]

use chatmail_smtp::command::strip_source_route;
use chatmail_smtp::{Command, Verb};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    let c = Command::parse(line);
    assert!(c.args.len() <= line.len());
    if let Some(path) = c.path() {
        assert!(matches!(c.verb, Verb::Mail | Verb::Rcpt));
        assert!(!path.contains(&b'>'));
        let start = path.as_ptr() as usize - line.as_ptr() as usize;
        assert_eq!(line.get(start.wrapping_sub(1)), Some(&b'<'));
        assert_eq!(line.get(start + path.len()), Some(&b'>'));
        if let Ok(s) = std::str::from_utf8(path)
            && let Some(addr) = strip_source_route(s)
        {
            assert!(s.ends_with(addr));
        }
    } else {
        assert!(!c.has_param("SMTPUTF8"));
    }
    // Both services' envelope rules behind the shared dialogue.
    let queues = mxdeliver::internals::Queues::default();
    let transport = mxdeliver::internals::Destinations { queues: &queues };
    let _ = chatmail_smtp::Dialogue::new(None).on_line(line, &transport);
    let filter = filtermail::internals::smtp::Envelopes::new(filtermail::Mode::Incoming);
    let _ = chatmail_smtp::Dialogue::new(None).on_line(line, &filter);
});
