//! One module per bank dialect over one shared core (README "Design").
//!
//! A dialect owns what differs between banks: framing and transport, the envelope, field
//! names (its layouts live as data under `schemas/<dialect>/`), status codes and the reply
//! layout. Everything else is shared: the typed [`crate::ledger::Command`], the pure
//! decision, the writer ([`crate::writer`], idempotency and durable commit) and the store.
//! A dialect reaches the writer with `Job::Platform`; a dialect other than A001 passes a
//! [`crate::writer::DialectReply`] that prepares the command and encodes the reply.
//!
//! - [`a001`]: Ping An's A001 link over TCP/TLS (docs/protocol.md §1).
//! - [`citic`]: CITIC's direct-connect sub-account interface over HTTP (docs/citic.md).

pub mod a001;
pub mod citic;
