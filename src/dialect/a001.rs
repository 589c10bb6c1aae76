//! The A001 dialect (docs/protocol.md §1): the existing path, named here so that every
//! dialect has one module. Framing: [`crate::wire::a001`]; envelope and body: the 222-byte
//! header and the `<Result>` XML of [`crate::codec::xml`]; layouts: `schemas/tx/*.toml`;
//! typed commands: [`crate::msg`]; the connection handler: [`crate::server::platform`].

pub use crate::msg::{to_command, SERVED};
pub use crate::server::platform::{fingerprint, handle};
pub use crate::wire::a001::{A001Codec, HEADER_LEN};
