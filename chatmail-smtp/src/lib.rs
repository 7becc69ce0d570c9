//! The SMTP and LMTP wire protocol, shared by filtermail's filter and its delivery transport.
//!
//! The parsers are pure byte-fed code without I/O, so the one connection driver that runs
//! them stays thin and every rule is written once:
//!
//! - [`line`](mod@line): command-line framing (CRLF required, length capped at [`MAX_LINE`]);
//! - [`command`]: SMTP/LMTP verbs, paths and ESMTP parameters;
//! - [`data`]: the DATA receiver (dot-stuffing undone, end marker, size limit counted on the
//!   unstuffed message as Postfix counts it, bare CR or LF refused) and [`data::stuff`];
//! - [`reply`]: the reply type with its named values, and the capped multi-line reply reader;
//! - [`budget`]: the process-wide budget of message bytes held, an [`Allowance`] of the
//!   DATA receiver;
//! - [`session`]: the server side of the dialogue (the command sequence, a service's
//!   envelope [`Rules`] plugged in), pure like the parsers.
//!
//! [`server`] is the one connection driver under both servers (filtermail's SMTP filter and
//! the LMTP transport): framing with its caps, the idle timeout, DATA through the
//! [`DataReceiver`], and the same reply for the same fault.
//!
//! [`client`] is the async client (greeting, EHLO capabilities, STARTTLS, pipelining, RSET,
//! QUIT) with its idle [`pool`]. The `testing` feature adds the scripted fake server and the
//! transcript client tests and benches use.
#![forbid(unsafe_code)]

pub mod budget;
pub mod client;
pub mod command;
pub mod data;
pub mod error;
pub mod line;
pub mod pool;
pub mod reply;
pub mod server;
pub mod session;
#[cfg(feature = "testing")]
pub mod testing;

pub use budget::{MemoryBudget, Reservation};
pub use client::{Capabilities, Client, Sent, Step};
pub use command::{Command, Verb};
pub use data::{
    Allowance, DataEnd, DataReceiver, stuff, stuff_in_place, stuffed_len, stuffed_slices,
};
pub use error::Error;
pub use line::{Line, next_line};
pub use pool::Pool;
pub use reply::{Reply, ReplyLines};
pub use server::{Replied, Service, Settings, serve, serve_tcp};
pub use session::{Dialogue, Protocol, Rules, Transaction};

/// Longest command line accepted, CRLF included. RFC 5321 asks for 512; Postfix's proxy
/// passes client parameters through, so leave generous room.
pub const MAX_LINE: usize = 4096;
/// Most recipients in one transaction (Postfix's `smtpd_recipient_limit` default is 1000).
pub const MAX_RECIPIENTS: usize = 1000;
