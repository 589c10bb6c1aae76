//! bankfep: a bank host-to-host front-end processor (银企直连前置机).
//!
//! Module map (see README "Design"):
//! - [`codec`]: schemas as data, charset (GBK/UTF-8), fixed-width (nom) and XML (quick-xml) codecs
//! - [`wire`]: framing: the 222-byte A001 header and 8-digit length-prefixed records
pub mod client;
pub mod codec;
pub mod devcerts;
pub mod tls;
pub mod tools;
pub mod wire;
