//! cargo-fuzz target `citic_request`: see `bankfep::tools::fuzz::citic_request` for what it drives and checks.
#![no_main]

use std::sync::OnceLock;

use bankfep::codec::schema::Schemas;
use libfuzzer_sys::fuzz_target;

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| Schemas::load_embedded().expect("embedded schemas load"))
}

fuzz_target!(|data: &[u8]| {
    bankfep::tools::fuzz::citic_request(schemas(), data);
});
