//! The process-wide budget of message bytes in flight (SMTP and HTTP together): the
//! `chatmail_smtp` one, which transport mode shares.

pub use chatmail_smtp::budget::{MemoryBudget, Reservation};
