//! Codecs: schemas as data, charsets, fixed-width records and XML bodies.
//!
//! - [`schema`]: the TOML layouts under `schemas/`, embedded and validated at start-up
//! - [`charset`]: strict GBK / UTF-8 conversion (docs/protocol.md §1.1 field 3)
//! - [`fixed`]: fixed-width GBK records (§2 bank-core notices, §3 rail records), nom-based
//! - [`xml`]: the `<Result>` XML body of the platform link (§1.1), parser and writer
//! - [`request`]: schema-driven validation of request fields (§1.2, §1.3)
pub mod charset;
pub mod fixed;
pub mod request;
pub mod schema;
pub mod xml;

pub use charset::{Charset, CharsetError};
pub use fixed::{
    decode_record, encode_record, FixedError, FixedKind, FixedLayout, FixedRecord, FixedValue,
};
pub use request::{parse_amount_fen, validate_request, FieldFault, Fields, Value};
pub use schema::{FieldKind, FieldSpec, ReturnCodes, SchemaError, Schemas, TxSchema};
pub use xml::{encode_body, parse_body, XmlBody, XmlError, XmlLimits};
