//! Store benchmark (criterion): what the embedded store costs the writer per durable forced
//! transfer, without the network, the decision or the disk flush (issue 9, item 2).
//!
//! One iteration is one batch of [`BATCH`] forced transfers between random sub-accounts of
//! [`SUBS`], driven through the `Store` trait exactly as the writer drives it: `begin`; per
//! transfer the idempotency lookups (request, order number), `savepoint`, `append` (one
//! posting, two detail rows, one e-receipt, the order number), `record_request` (a reply
//! body of about 300 bytes) and `release`; then `write_accounts`, `save_counters` and
//! `commit`. The store runs in pipelined mode (`defer_sync`), as under `serve`, so `commit`
//! writes the log but does not wait for `fdatasync` (the flusher thread's part).
//! Run: `cargo bench --bench store`; the figure is per batch (divide by 32 for a transfer).
//! Two variants price what issue 9 suggests leaving out: the batch without its e-receipt
//! rows (were a receipt derived from its posting), and with empty stored reply bodies (were
//! a reply rebuilt from the ledger instead of stored).

use std::hint::black_box;

use bankfep::ledger::decide::{Entry, ReceiptRow, Writes};
use bankfep::ledger::state::Counters;
use bankfep::ledger::{BookingType, Master, Posting, Side, SubAccount, SubStatus};
use bankfep::store::sqlite::SqliteStore;
use bankfep::store::{Store, StoredRequest};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Transfers per batch (the writer's batch with 32 connections).
const BATCH: usize = 32;
/// Sub-accounts the transfers pick from (as `bankfep load` with 32 connections: two each).
const SUBS: i64 = 64;
const ENT: &str = "DEMOPLATFORM00000001";

fn sub(id: i64) -> SubAccount {
    SubAccount {
        id,
        master_id: 1,
        sub_acct_no: format!("{:016}", 1_000_000_000_000_000 + id),
        member_code: format!("M{id:07}"),
        member_name: "深圳市某某科技有限公司".into(),
        global_type: "1".into(),
        global_id: format!("44030019900101{id:04}"),
        mobile: "13800000000".into(),
        balance: 1_000_000_000,
        frozen: 0,
        status: SubStatus::Open,
        binding: None,
        chunks_in_flight: 0,
    }
}

/// A small deterministic generator (xorshift), so that every run books the same keys.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The writes of one forced transfer numbered `n` from `from` to `to`, as the decision
/// makes them (docs/ledger.md, 6034).
fn transfer(
    n: u64,
    from: &SubAccount,
    to: &SubAccount,
    v: Variant,
) -> (String, Writes, StoredRequest) {
    let seq = format!("20261123{:08}", n % 100_000_000);
    let amount = 123_450;
    let entry = |s: &SubAccount, dc: char, peer: &SubAccount| Entry {
        sub_id: s.id,
        front_seq_no: seq.clone(),
        acct_date: 20261123,
        time: "093000".into(),
        booking_type: BookingType::ForcedTransfer,
        dc,
        amount,
        balance_after: s.balance,
        peer_acct: peer.sub_acct_no.clone(),
        remark: "货款结算".into(),
    };
    let writes = Writes {
        postings: vec![Posting {
            master_id: 1,
            debit: Side::Sub(from.id),
            credit: Side::Sub(to.id),
            amount,
            booking_type: BookingType::ForcedTransfer,
        }],
        booking_date: 20261123,
        entries: vec![entry(from, 'D', to), entry(to, 'C', from)],
        receipts: if v == Variant::NoReceipt {
            Vec::new()
        } else {
            vec![ReceiptRow {
                front_seq_no: seq.clone(),
                master_id: 1,
                receipt_no: format!("HD20261123{:010}", n),
                check_code: "A1B2C3D4E5F6".into(),
                booking_date: "20261123".into(),
                payer_acct: from.sub_acct_no.clone(),
                payer_name: from.member_name.clone(),
                payee_acct: to.sub_acct_no.clone(),
                payee_name: to.member_name.clone(),
                amount,
                summary: "货款结算".into(),
            }]
        },
        order_no: Some(format!("ORD{:016x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15))),
        ..Writes::default()
    };
    let request = StoredRequest {
        enterprise_code: ENT.into(),
        serial: format!("S{:019x}", n.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)),
        tx_code: "6034".into(),
        fingerprint: vec![7; 32],
        return_code: "000000".into(),
        return_msg: "交易成功".into(),
        body: if v == Variant::NoBody {
            Vec::new()
        } else {
            vec![b'x'; 300]
        },
    };
    (seq, writes, request)
}

/// What one batch books (see the module documentation).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// As the gateway books a forced transfer.
    Full,
    /// Without the e-receipt row.
    NoReceipt,
    /// With an empty stored reply body.
    NoBody,
}

fn store(c: &mut Criterion) {
    let mut group = c.benchmark_group("sqlite_store");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, v) in [
        ("batch_of_32_forced_transfers", Variant::Full),
        ("batch_of_32_without_receipt_rows", Variant::NoReceipt),
        ("batch_of_32_without_reply_bodies", Variant::NoBody),
    ] {
        one_store(&mut group, name, v);
    }
    group.finish();
}

fn one_store(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    v: Variant,
) {
    let dir =
        std::env::temp_dir().join(format!("bankfep-bench-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut s = SqliteStore::open(&dir).expect("open store");
    let _sync = s.defer_sync().expect("pipelined mode");
    s.provision_master(ENT, "6222000000000000001")
        .expect("provision");
    let master = Master {
        id: 1,
        enterprise_code: ENT.into(),
        acct_no: "6222000000000000001".into(),
        mirror: SUBS * 1_000_000_000,
        suspense: 0,
        fee: 0,
        in_transit: 0,
    };
    let mut subs: Vec<SubAccount> = (1..=SUBS).map(sub).collect();
    s.begin().expect("begin");
    s.write_accounts(&[&master], &subs.iter().collect::<Vec<_>>())
        .expect("subs");
    s.commit().expect("commit");

    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let mut n = 0u64;
    group.bench_function(name, |b| {
        b.iter(|| {
            s.begin().expect("begin");
            let mut touched = Vec::with_capacity(2 * BATCH);
            for _ in 0..BATCH {
                n += 1;
                let from = (rng.next() % SUBS as u64) as usize;
                let to = (from + 1 + (rng.next() % (SUBS as u64 - 1)) as usize) % SUBS as usize;
                subs[from].balance -= 1;
                subs[to].balance += 1;
                let (seq, w, r) = transfer(n, &subs[from], &subs[to], v);
                black_box(s.request(ENT, &r.serial).expect("request"));
                black_box(
                    s.order_used(ENT, w.order_no.as_deref().unwrap_or(""))
                        .expect("order"),
                );
                s.savepoint().expect("savepoint");
                s.append(ENT, Some(&seq), &w).expect("append");
                s.record_request(&r).expect("record");
                s.release().expect("release");
                touched.push(from);
                touched.push(to);
            }
            let changed: Vec<&SubAccount> = touched.iter().map(|i| &subs[*i]).collect();
            s.write_accounts(&[&master], &changed).expect("accounts");
            s.save_counters(&Counters {
                front_seq: n,
                sub_seq: SUBS as u64,
                receipt_seq: n,
            })
            .expect("counters");
            s.commit().expect("commit");
        })
    });
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, store);
criterion_main!(benches);
