//! cargo-fuzz target `rail_reply`: see `bankfep::tools::fuzz::rail_reply` for what it drives and checks.
#![no_main]

use std::sync::OnceLock;

use bankfep::codec::schema::Schemas;
use libfuzzer_sys::fuzz_target;

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| Schemas::load_embedded().expect("embedded schemas load"))
}

fuzz_target!(|data: &[u8]| {
    bankfep::tools::fuzz::rail_reply(schemas(), data);
});
