//! The request body of a `/mxdeliv` POST, read as SMTP DATA.

use std::sync::Arc;

use crate::budget::{MemoryBudget, Reservation};
use crate::filter_reply::{FilterReply, Reply};
use crate::smtp::{DataEnd, DataReader, data_reader, refusal};

/// A request body in SMTP DATA form (dot-stuffed CRLF lines without the final `.` line),
/// fed in pieces as it arrives: unstuffed with the SMTP [`DataReader`], so both front ends
/// hand the policy the same bytes and the same size limit applies.
#[derive(Debug)]
pub struct MessageBody {
    reader: DataReader,
    /// The message, once an end-of-data line has been seen.
    ended: Option<DataEnd>,
}

impl MessageBody {
    /// A body of a message of at most `max` bytes, without a memory budget.
    #[cfg(test)]
    pub fn new(max: u64) -> MessageBody {
        MessageBody::with_budget(max, None)
    }

    /// A body of a message of at most `max` bytes, reserved from `budget`.
    pub fn with_budget(max: u64, budget: Option<Arc<MemoryBudget>>) -> MessageBody {
        MessageBody {
            reader: data_reader(max, budget),
            ended: None,
        }
    }

    /// Takes the next piece. Fails with `552` as soon as the message is too big (the rest
    /// need not be read) and with `500 Invalid DATA` for data after a lone `.` line, which
    /// would be the end of the message in SMTP.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Reply> {
        while !data.is_empty() {
            if self.ended.is_some() {
                return Err(Reply::INVALID_DATA);
            }
            let (used, end) = self.reader.feed(data);
            data = data.get(used..).unwrap_or_default();
            if let Some(end) = end {
                if let Some(reply) = refusal(&end) {
                    return Err(reply);
                }
                self.ended = Some(end);
            }
            if self.reader.overflowed() {
                return Err(Reply::TOO_BIG);
            }
            if self.reader.over_budget() {
                return Err(Reply::OVER_BUDGET);
            }
        }
        Ok(())
    }

    /// The unstuffed message after the last piece, with its budget reservation. The body
    /// must end with CRLF (or be empty) and have no bare CR or LF; a final `.` line sent
    /// anyway is accepted as the end marker.
    pub fn finish(mut self) -> Result<(Vec<u8>, Reservation), Reply> {
        let end = match self.ended.take() {
            Some(end) => Some(end),
            None => self.reader.feed(b".\r\n").1,
        };
        match end {
            Some(DataEnd::Message(m)) => Ok((m, self.reader.take_allowance())),
            Some(other) => Err(refusal(&other).unwrap_or(Reply::INVALID_DATA)),
            None => Err(Reply::INVALID_DATA),
        }
    }
}
