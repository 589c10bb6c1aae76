//! Client-side tools built on [`crate::client`]: fixture replay and the load generator;
//! and [`fuzz`], the decoder harnesses of the fuzz targets and property tests.

pub mod fuzz;
pub mod load;
pub mod replay;
