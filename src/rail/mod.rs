//! The payment rail (docs/protocol.md §3): the gateway's outbound credit transfers to the bank's
//! payment channel, as used by withdrawals (docs/ledger.md "The life of the money", step 4).
//!
//! - [`wire`]: the 320-byte request and 100-byte reply records, typed
//! - [`client`]: one instruction per connection, TCP or TLS; every error means "outcome
//!   unknown" to the caller, which then asks with `7003`
//! - [`calendar`]: maintenance windows (§3.1)
//! - [`chunk`]: splitting a super e-bank (`7001`) withdrawal into chunks below 50,000.00
//! - [`sim`]: a simulator of the rail (tests, the gateway's built-in default rail and
//!   `bankfep rail-sim`), with configurable faults
//!
//! All amounts are integer fen ([`crate::money::Fen`]); lengths are bytes; times are ms.

pub mod calendar;
pub mod chunk;
pub mod client;
pub mod dispatch;
pub mod sim;
pub mod wire;
