//! Client-side tools built on [`crate::client`]: fixture replay, the load generator and
//! abusive peers; and [`fuzz`], the decoder harnesses of the fuzz targets and property tests.

pub mod abuse;
pub mod fuzz;
pub mod load;
pub mod replay;
