//! A real SMTP server on loopback standing in for Postfix's reinjection port (the scripted
//! fake server of `chatmail-smtp`): it records every transaction and answers the final dot
//! with a configurable reply.

use chatmail_smtp::testing::{FakeServer, Script};

/// A running sink.
pub type Sink = FakeServer;

/// Starts a sink answering `final_reply` (e.g. `250 2.0.0 Ok`) after each message.
pub async fn start(final_reply: &'static str) -> Sink {
    start_with(final_reply, false).await
}

/// Like [`start`]; with `hang_up` the sink closes each connection right after answering a
/// message, as a server whose idle timeout expired would.
pub async fn start_with(final_reply: &'static str, hang_up: bool) -> Sink {
    let mut script = Script::reinjection(final_reply);
    script.hang_up = hang_up;
    FakeServer::start(script).await
}
