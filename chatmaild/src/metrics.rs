//! Metrics in the Prometheus data model, and their publication on a unix socket.
//!
//! Recording is a relaxed atomic add: no lock, no allocation, nothing a scrape can delay.
//! Rendering happens only when a reader connects to the daemon's metrics socket
//! ([`publish`]): the daemon writes its figures in the Prometheus text exposition format
//! (version 0.0.4) and closes the connection. The reader sends nothing; a reader that does
//! not read gets at most [`WRITE_TIMEOUT`] before the connection is dropped, and at most
//! [`MAX_READERS`] readers are served at once, each on its own task, so no reader can
//! stall the service. `chatmail-exporter` collects these sockets into one `/metrics`.
//!
//! Names follow Prometheus conventions: `chatmail_` prefix, the unit in the name
//! (`_seconds`, `_bytes`), `_total` for counters. Label values come from fixed lists
//! (an enum's variants), never from an address, token or message id.

mod encode;
pub mod names;
mod publish;
mod values;

pub use encode::{Encoder, Kind};
pub use publish::{
    Collect, MAX_READERS, SOCKET_ENV, SOCKET_NAME, WRITE_TIMEOUT, bind, publish, socket_from_env,
    socket_path, spawn_publisher,
};
pub use values::{
    Counter, CounterGrid, CounterVec, Gauge, Histogram, LATENCY_BUCKETS, REQUEST_BUCKETS,
    SIZE_BUCKETS,
};

/// Declares the values of a metric label as a fieldless enum: each variant with its label
/// value, in the order the counters are indexed by. The enum gets `VALUES` (the label
/// values, in variant order, for [`CounterVec::new`]), `label()` and `index()`, so a value
/// list can never drift from its enum. Doc comments and other attributes are kept; the
/// enum derives `Debug, Clone, Copy, PartialEq, Eq`.
///
/// ```
/// chatmaild::metrics::labels! {
///     /// How a request ended.
///     pub enum Outcome {
///         /// Answered.
///         Ok => "ok",
///         /// Not answered.
///         Failed => "failed",
///     }
/// }
/// assert_eq!(Outcome::VALUES, ["ok", "failed"]);
/// assert_eq!(Outcome::Failed.label(), "failed");
/// assert_eq!(Outcome::Failed.index(), 1);
/// ```
#[doc(hidden)]
#[macro_export]
macro_rules! __metrics_labels {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident => $label:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $(
                $(#[$vmeta])*
                $variant,
            )+
        }

        impl $name {
            /// The label values, in variant order (`VALUES[v.index()] == v.label()`).
            pub const VALUES: &'static [&'static str] = &[$($label),+];

            /// The label value of `self`.
            pub const fn label(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)+
                }
            }

            /// The position of `self` in [`Self::VALUES`], and of its counter.
            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

#[doc(inline)]
pub use crate::__metrics_labels as labels;
