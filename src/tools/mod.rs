//! Client-side tools built on [`crate::client`]: fixture replay, the load generator and
//! abusive peers.

pub mod abuse;
pub mod load;
pub mod replay;
