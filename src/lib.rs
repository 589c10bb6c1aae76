//! bankfep: a bank host-to-host front-end processor (银企直连前置机) for platforms that keep
//! their members' money in one master account with a virtual sub-account per member.
//!
//! Module map (one concern per module; see README "Design"):
//! - [`wire`]: framing: the 222-byte A001 header and 8-digit length-prefixed records
//! - [`codec`]: schemas as data (`schemas/`), GBK/UTF-8, fixed-width (nom), XML (quick-xml)
//! - [`msg`]: one file per transaction code: typed requests
//! - [`ledger`]: accounts, postings, the pure decision, invariants
//! - [`store`]: the storage trait and the embedded SQLite store
//! - [`writer`]: the single batching writer (group commit)
//! - [`rail`]: the payment rail (§3): records, client, super e-bank splitting, simulator
//! - [`server`]: listeners (TCP, TLS), connection handlers, limits, shutdown
//! - [`reconcile`]: reconciliation with the rail's day files (§3.2), by hand or daily in
//!   `serve`
//! - [`statement`]: statements (对账单) of a master account's day, CSV
//! - [`receipt`]: e-receipt numbers and verification codes
//! - [`tls`], [`devcerts`]: rustls configuration and throwaway certificates
//! - [`client`], [`tools`]: an independent protocol client, fixture replay, load generator
//! - [`http`], [`metrics`], [`capitals`]: the HTTP listener (receipt page, metrics, health)
//! - [`admin`]: `bankfep admin …`, read-only views of either store for operators
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod capitals;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod codec;
pub mod codes;
pub mod config;
pub mod devcerts;
pub mod dialect;
pub mod http;
pub mod keyfilter;
pub mod ledger;
pub mod mask;
pub mod metrics;
pub mod money;
pub mod msg;
pub mod rail;
pub mod receipt;
pub mod reconcile;
pub mod server;
pub mod statement;
pub mod store;
pub mod tls;
pub mod tools;
pub mod wire;
pub mod writer;
