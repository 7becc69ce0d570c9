//! The LMTP server Postfix delivers to (`default_transport`, SPEC §6.12): the shared
//! connection driver ([`chatmail_smtp::serve`]) with the transport's envelope rules
//! ([`Destinations`]), and per-recipient replies after DATA.
//!
//! Message bytes are held under the process's memory budget (`filtermail_memory_budget`,
//! as in the filters): from the first byte of DATA until the last destination's delivery
//! has ended, whether or not Postfix is still connected. Past the budget a message gets
//! `451` (at `DATA` when nothing is left, else after its data), so Postfix retries later.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use chatmail_smtp::server::{Service, Settings};
use chatmail_smtp::{Reservation, Rules, Transaction};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::deliver::{Batch, Deliverer};
use crate::lmtp::{Destinations, Recipient, wire_form};
use crate::queue::Queues;
use crate::transport_reply::{Reply, TransportReply};

/// State shared by all connections.
#[derive(Debug)]
pub struct Shared {
    /// Per-destination queue slots.
    pub queues: Queues,
    /// Delivery machinery.
    pub deliverer: Arc<Deliverer>,
    /// Protocol (LMTP), `max_message_size`, the memory budget, the idle timeout.
    pub settings: Settings,
}

/// Serves one LMTP connection until QUIT, EOF, a fault or shutdown.
pub async fn serve(stream: TcpStream, shared: Arc<Shared>, stop: CancellationToken) {
    if let Err(e) = chatmail_smtp::serve_tcp(stream, &*shared, &stop).await {
        tracing::debug!(error = %e, "LMTP connection ended");
    }
}

impl Service for Shared {
    type Recipient = Recipient;

    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn rules(&self) -> impl Rules<Recipient = Recipient> + '_ {
        Destinations {
            queues: &self.queues,
        }
    }

    /// No slot for any destination: refused before 354, so Postfix defers without sending
    /// the message.
    fn refuse_data(&self, tx: &Transaction<Recipient>) -> Option<Reply> {
        let busy = tx.recipients.iter().all(|r| r.lane.slot.is_none());
        busy.then_some(Reply::BUSY)
    }

    async fn message(
        &self,
        tx: Transaction<Recipient>,
        message: Vec<u8>,
        mut held: Reservation,
    ) -> Vec<Reply> {
        let Some(wire) = wire_form(message, &mut held) else {
            tracing::warn!("memory budget exhausted, deferring a message");
            return vec![Reply::OVER_BUDGET; tx.recipients.len()];
        };
        deliver(self, tx, Bytes::from(wire), held).await
    }
}

/// Delivers each destination's batch concurrently; one reply per recipient, in RCPT order.
/// `held` is the message's share of the memory budget, kept until every delivery ended.
async fn deliver(
    shared: &Shared,
    tx: Transaction<Recipient>,
    wire: Bytes,
    held: Reservation,
) -> Vec<Reply> {
    let held = Arc::new(held);
    let mut tasks = HashMap::new();
    for recipient in &tx.recipients {
        let lane = &recipient.lane;
        if lane.slot.is_none() || tasks.contains_key(&lane.key) {
            continue;
        }
        let batch = Batch {
            destination: lane.destination.clone(),
            sender: tx.sender.clone(),
            recipients: tx
                .recipients
                .iter()
                .filter(|r| Arc::ptr_eq(&r.lane, lane))
                .map(|r| r.addr.clone())
                .collect(),
            wire: wire.clone(),
            smtputf8: tx.smtputf8,
        };
        let deliverer = Arc::clone(&shared.deliverer);
        // The lane (with its slot) and the budget move into the task: they stay reserved
        // until the delivery really ends, even if Postfix hangs up first.
        let held = (Arc::clone(lane), Arc::clone(&held));
        let task = tokio::spawn(async move {
            let _held = held;
            deliverer.deliver(&batch).await
        });
        tasks.insert(lane.key.clone(), task);
    }
    let mut results: HashMap<String, Reply> = HashMap::new();
    for (key, task) in tasks {
        let reply = task.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "delivery task failed");
            Reply::LOCAL_ERROR
        });
        results.insert(key, reply);
    }
    tx.recipients
        .iter()
        .map(|r| results.get(&r.lane.key).cloned().unwrap_or(Reply::BUSY))
        .collect()
}
