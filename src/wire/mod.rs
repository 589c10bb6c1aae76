//! Framing: how many bytes make one message on each link.
//!
//! - [`a001`]: the platform link's 222-byte A001 header + body (docs/protocol.md §1.1)
//! - [`prefixed`]: the 8-digit length prefix of the bank-core link (§2) and the rail (§3)
//!
//! Decoders keep "need more bytes" (`Ok(None)`) apart from "bad bytes" (`Err`), and check
//! every announced length against its cap before reserving buffer space.
pub mod a001;
pub mod prefixed;

pub use a001::{
    check_request_header, encode_request_header, encode_response_header, A001Codec, FrameError,
    HeaderEncodeError, HeaderFault, RawFrame, RequestHeader, ResponseHead, HEADER_LEN,
};
pub use prefixed::{frame_prefixed, PrefixError, PrefixedCodec};
