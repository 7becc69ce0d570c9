//! filtermail's whole policy step (MIME parse, From alignment, encryption and exception
//! rules) on any message and envelope, outgoing and incoming: never panics.
#![no_main]

use std::path::Path;

use arbitrary::Arbitrary;
use filtermail::{Envelope, check_incoming, check_outgoing};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    outgoing: bool,
    mail_from: String,
    rcpts: Vec<String>,
    message: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let env = Envelope {
        mail_from: input.mail_from,
        rcpt_to: input.rcpts.into_iter().take(4).collect(),
    };
    if input.outgoing {
        let _ = check_outgoing(&env, input.message);
    } else {
        let _ = check_incoming(
            &env,
            input.message,
            Path::new("/nonexistent/fuzz/mailboxes"),
        );
    }
});
