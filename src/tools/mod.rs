//! Client-side tools built on [`crate::client`]: fixture replay and the load generator.

pub mod load;
pub mod replay;
