//! One conformance suite for every store (issue 8): each case is written once against the
//! `Store` trait and runs on the embedded SQLite store and on PostgreSQL (a schema of its
//! own per test, dropped afterwards; skipped with a visible message when no server answers,
//! unless `BANKFEP_REQUIRE_POSTGRES=1`).
//!
//! Covered: provisioning and the receipt secret; a batch's rows, accounts and counters
//! surviving a reopen; reads inside a batch seeing earlier requests of the same batch;
//! savepoint and batch rollback; idempotency keys booked at most once; paging of details
//! and credits; withdrawals, chunks and their resolution; bindings; the CHECK constraints
//! that refuse a negative or over-frozen balance.

// Rows are built step by step, as the writer builds them: clearer than one big literal.
#![allow(clippy::field_reassign_with_default)]

mod common;

use bankfep::ledger::decide::{CreditRow, Entry, ReceiptRow, Writes};
use bankfep::ledger::state::Counters;
use bankfep::ledger::{
    invariants, Binding, BookingType, Instruction, InstructionKind, InstructionState, LedgerState,
    Master, Posting, Side, SubAccount, SubStatus, Withdrawal,
};
use bankfep::store::postgres::PgStore;
use bankfep::store::sqlite::SqliteStore;
use bankfep::store::{Store, StoredRequest};
use common::pg::PgDb;
use common::TempDir;

const ENT: &str = "CONFORMANCE000000001";
const MASTER: &str = "6222000000000000001";

/// Generates one test per store for each case `fn(&dyn Fn() -> Box<dyn Store>)`; the
/// closure (re)opens the same store, so a case can check what survives a restart.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $case() {
                    let dir = super::TempDir::new(concat!("conf-", stringify!($case)));
                    let path = dir.path().to_path_buf();
                    super::$case(&move || {
                        Box::new(super::SqliteStore::open(&path).expect("open sqlite"))
                            as Box<dyn super::Store>
                    });
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $case() {
                    let Some(db) = super::PgDb::new(stringify!($case)) else { return };
                    let url = db.url.clone();
                    super::$case(&move || {
                        Box::new(super::PgStore::open(&url).expect("open postgres"))
                            as Box<dyn super::Store>
                    });
                    drop(db);
                }
            )*
        }
    };
}

conformance!(
    provisioning_and_secret,
    a_batch_survives_reopen,
    reads_in_a_batch_see_earlier_requests,
    savepoint_and_batch_rollback,
    idempotency_keys_are_booked_once,
    idempotency_keys_are_listed,
    paging_of_details_and_credits,
    withdrawals_and_chunks,
    bindings_are_set_replaced_and_removed,
    checks_refuse_impossible_balances,
    counters_never_repeat,
    statement_source_of_a_day,
);

/// A statement's data (issue 10): the master and its sub-accounts as they are now, the
/// postings booked on the date with their receipt numbers, in booking order, and the sums of
/// the postings booked after it per (debit, credit); an unknown master is `None`.
fn statement_source_of_a_day(open: Open<'_>) {
    let mut s = open();
    s.provision_master(ENT, MASTER).expect("provision");
    let mid = master_id(s.as_mut());
    let post = |debit, credit, amount| Posting {
        master_id: mid,
        debit,
        credit,
        amount,
        booking_type: BookingType::InboundCredit,
    };
    s.begin().expect("begin");
    // The day before: 50.00 in.
    let mut w = Writes::default();
    w.postings.push(post(Side::Mirror, Side::Sub(1), 5_000));
    w.booking_date = 20261122;
    w.subs.push(sub(1, mid, 5_000));
    one(s.as_mut(), &w, Some("2026112200000001"), None);
    // The day: 10.00 in (with a receipt), then 3.00 to the fee account.
    let mut w = Writes::default();
    w.postings.push(post(Side::Mirror, Side::Sub(1), 1_000));
    w.booking_date = 20261123;
    w.receipts.push(ReceiptRow {
        front_seq_no: "2026112300000002".into(),
        master_id: mid,
        receipt_no: "HD202611230000000001".into(),
        check_code: "ABCDEFGH12345678".into(),
        booking_date: "20261123".into(),
        payer_acct: "6217000000000000001".into(),
        payer_name: "李四".into(),
        payee_acct: sub(1, mid, 0).sub_acct_no,
        payee_name: "张三".into(),
        amount: 1_000,
        summary: "入金".into(),
    });
    one(s.as_mut(), &w, Some("2026112300000002"), None);
    let mut w = Writes::default();
    w.postings.push(post(Side::Sub(1), Side::Fee, 300));
    w.booking_date = 20261123;
    one(s.as_mut(), &w, Some("2026112300000003"), None);
    // The day after: two credits of 1.00 and 2.00, summed.
    for (n, amount) in [(4, 100), (5, 200)] {
        let mut w = Writes::default();
        w.postings.push(post(Side::Mirror, Side::Sub(1), amount));
        w.booking_date = 20261124;
        one(s.as_mut(), &w, Some(&format!("20261124{n:08}")), None);
    }
    let m = master(mid, 6_300, 0, 300, 0);
    let sb = sub(1, mid, 6_000);
    s.write_accounts(&[&m], &[&sb]).expect("accounts");
    s.commit().expect("commit");
    drop(s);
    let mut s = open();
    assert_eq!(
        s.statement_source("6222000000000000999", 20261123).unwrap(),
        None
    );
    let src = s
        .statement_source(MASTER, 20261123)
        .unwrap()
        .expect("master");
    assert_eq!(src.master.mirror, 6_300);
    assert_eq!(
        src.subs
            .iter()
            .map(|b| (b.id, b.sub_acct_no.clone(), b.balance))
            .collect::<Vec<_>>(),
        vec![(1, sb.sub_acct_no.clone(), 6_000)]
    );
    let got: Vec<_> = src
        .postings
        .iter()
        .map(|p| {
            (
                p.front_seq_no.as_str(),
                p.debit.as_str(),
                p.credit.as_str(),
                p.amount,
                p.booking_type.as_str(),
                p.booking_date,
                p.receipt_no.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "2026112300000002",
                "mirror",
                "sub:1",
                1_000,
                "04",
                20261123,
                "HD202611230000000001"
            ),
            ("2026112300000003", "sub:1", "fee", 300, "04", 20261123, ""),
        ]
    );
    assert_eq!(src.later, vec![("mirror".into(), "sub:1".into(), 300)]);
    // The statement built from it: opening 50.00, closing 57.00 on the sub-account.
    let st = bankfep::statement::render(&src, "20261123").expect("render");
    let text = String::from_utf8(st.csv).unwrap();
    assert!(st.balanced, "{text}");
    assert!(
        text.contains(&format!(
            "balance,{MASTER},20261123,,,,,,,{},sub,张三,,50.00,3.00,10.00,57.00,,",
            sb.sub_acct_no
        )),
        "{text}"
    );
}

/// Numbers handed out by a store never repeat, across reopens (and, for a shared store,
/// across processes): either counters saved with each batch come back, or reserved blocks
/// are durable and never overlap.
fn counters_never_repeat(open: Open<'_>) {
    let mut s = open();
    let Some(first) = s.reserve_counters(100).expect("reserve") else {
        s.begin().expect("begin");
        let c = Counters {
            front_seq: 7,
            sub_seq: 3,
            receipt_seq: 5,
        };
        s.save_counters(&c).expect("save");
        s.commit().expect("commit");
        drop(s);
        assert_eq!(open().load().expect("load").2, c);
        return;
    };
    let second = s.reserve_counters(100).expect("reserve").expect("block");
    drop(s);
    // Another process on the same store.
    let mut other = open();
    let third = other.reserve_counters(50).expect("reserve").expect("block");
    for (a, b, c) in [
        (first.front_seq, second.front_seq, third.front_seq),
        (first.sub_seq, second.sub_seq, third.sub_seq),
        (first.receipt_seq, second.receipt_seq, third.receipt_seq),
    ] {
        assert_eq!(b, a + 100, "blocks are consecutive and disjoint");
        assert_eq!(c, b + 50);
    }
    assert_eq!(
        other.load().expect("load").2,
        third,
        "a reservation is durable"
    );
}

type Open<'a> = &'a dyn Fn() -> Box<dyn Store>;

fn master_id(s: &mut dyn Store) -> i64 {
    let (masters, _, _) = s.load().expect("load");
    masters
        .iter()
        .find(|m| m.acct_no == MASTER)
        .expect("master")
        .id
}

fn sub(id: i64, master_id: i64, balance: i64) -> SubAccount {
    SubAccount {
        id,
        master_id,
        sub_acct_no: format!("90000000000{id:05}"),
        member_code: format!("M{id}"),
        member_name: "张三".into(),
        global_type: "1".into(),
        global_id: "110101199001011234".into(),
        mobile: String::new(),
        balance,
        frozen: 0,
        status: SubStatus::Open,
        binding: None,
        chunks_in_flight: 0,
    }
}

fn master(id: i64, mirror: i64, suspense: i64, fee: i64, in_transit: i64) -> Master {
    Master {
        id,
        enterprise_code: ENT.into(),
        acct_no: MASTER.into(),
        mirror,
        suspense,
        fee,
        in_transit,
    }
}

fn request(serial: &str, code: &str) -> StoredRequest {
    StoredRequest {
        enterprise_code: ENT.into(),
        serial: serial.into(),
        tx_code: "6034".into(),
        fingerprint: vec![7; 32],
        return_code: code.into(),
        return_msg: "交易成功".into(),
        body: "<Result/>".as_bytes().to_vec(),
    }
}

fn entry(sub_id: i64, n: u32, date: u32) -> Entry {
    Entry {
        sub_id,
        front_seq_no: format!("20261123{n:08}"),
        acct_date: date,
        time: "100000".into(),
        booking_type: BookingType::InboundCredit,
        dc: 'C',
        amount: 100,
        balance_after: i64::from(n) * 100,
        peer_acct: "6217000000000000001".into(),
        remark: format!("入金 {n}"),
    }
}

fn credit(master_id: i64, n: u32, date: u32) -> CreditRow {
    CreditRow {
        front_seq_no: format!("20261123{n:08}"),
        master_id,
        in_acct_type: "03",
        sub_acct_no: String::new(),
        amount: 500,
        unallocated: 500,
        payer_acct: "6217000000000000001".into(),
        payer_name: "李四".into(),
        acct_date: date,
        remark: "货款".into(),
    }
}

fn instruction(seq: &str, chunk_no: u32, sub_id: i64, master_id: i64) -> Instruction {
    Instruction {
        id: format!("W{seq}{chunk_no:03}"),
        kind: InstructionKind::Chunk,
        front_seq_no: seq.into(),
        chunk_no,
        trade_code: "7001",
        payer_acct: MASTER.into(),
        payee_acct: "6217000000000000042".into(),
        payee_name: "张三".into(),
        payee_bank: "102100099996".into(),
        amount: 4_000_000,
        memo: "提现".into(),
        state: InstructionState::Unresolved,
        reject_code: String::new(),
        sub_id,
        master_id,
    }
}

/// One request in its own savepoint.
fn one(s: &mut dyn Store, w: &Writes, seq: Option<&str>, req: Option<&StoredRequest>) {
    s.savepoint().expect("savepoint");
    s.append(ENT, seq, w).expect("append");
    if let Some(r) = req {
        s.record_request(r).expect("record");
    }
    s.release().expect("release");
}

fn provisioning_and_secret(open: Open<'_>) {
    let mut s = open();
    s.provision_master(ENT, MASTER).expect("provision");
    s.provision_master(ENT, MASTER)
        .expect("provisioning is idempotent");
    assert!(
        s.provision_master("SOMEONEELSE000000001", MASTER).is_err(),
        "one master account belongs to one enterprise"
    );
    let first = s.receipt_secret(&[1; 32]).expect("secret");
    assert_eq!(first, vec![1; 32]);
    assert_eq!(s.receipt_secret(&[2; 32]).expect("secret"), vec![1; 32]);
    drop(s);
    let mut s = open();
    assert_eq!(s.receipt_secret(&[3; 32]).expect("secret"), vec![1; 32]);
    let (masters, subs, counters) = s.load().expect("load");
    assert_eq!(masters.len(), 1);
    assert_eq!(masters[0].enterprise_code, ENT);
    assert_eq!(
        (masters[0].mirror, masters[0].suspense, masters[0].fee),
        (0, 0, 0)
    );
    assert!(subs.is_empty());
    assert_eq!(counters, Counters::default());
}

/// An inbound credit of 10.00 to a new sub-account, with every kind of row, committed,
/// then read back after a reopen; the reloaded ledger satisfies the invariants.
fn a_batch_survives_reopen(open: Open<'_>) {
    let mut s = open();
    s.provision_master(ENT, MASTER).expect("provision");
    let mid = master_id(s.as_mut());
    let seq = "2026112300000001";
    let mut w = Writes::default();
    w.postings.push(Posting {
        master_id: mid,
        debit: Side::Mirror,
        credit: Side::Sub(1),
        amount: 1_000,
        booking_type: BookingType::InboundCredit,
    });
    w.entries.push(Entry {
        front_seq_no: seq.into(),
        ..entry(1, 1, 20261123)
    });
    w.credits.push(CreditRow {
        in_acct_type: "02",
        sub_acct_no: sub(1, mid, 0).sub_acct_no,
        amount: 1_000,
        unallocated: 0,
        ..credit(mid, 1, 20261123)
    });
    w.receipts.push(ReceiptRow {
        front_seq_no: seq.into(),
        master_id: mid,
        receipt_no: "R000000000000000001".into(),
        check_code: "ABCDEFGH12345678".into(),
        booking_date: "20261123".into(),
        payer_acct: "6217000000000000001".into(),
        payer_name: "李四".into(),
        payee_acct: sub(1, mid, 0).sub_acct_no,
        payee_name: "张三".into(),
        amount: 1_000,
        summary: "入金".into(),
    });
    w.notice = Some(("CORE-0001".into(), seq.into()));
    s.begin().expect("begin");
    one(s.as_mut(), &w, Some(seq), None);
    let mut o = Writes::default();
    o.order_no = Some("ORD-1".into());
    one(
        s.as_mut(),
        &o,
        Some("2026112300000002"),
        Some(&request("S1", "000000")),
    );
    let m = master(mid, 1_000, 0, 0, 0);
    let sa = sub(1, mid, 1_000);
    s.write_accounts(&[&m], &[&sa]).expect("accounts");
    s.save_counters(&Counters {
        front_seq: 2,
        sub_seq: 1,
        receipt_seq: 1,
    })
    .expect("counters");
    s.commit().expect("commit");
    drop(s);

    let mut s = open();
    let (masters, subs, counters) = s.load().expect("load");
    assert_eq!(masters[0].mirror, 1_000);
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].balance, 1_000);
    assert_eq!(subs[0].member_name, "张三");
    // A store that keeps counters with each batch returns them; one that reserves blocks
    // (counters_never_repeat) returns the top of its last reservation instead.
    if s.reserve_counters(0).expect("reserve").is_none() {
        assert_eq!(
            counters,
            Counters {
                front_seq: 2,
                sub_seq: 1,
                receipt_seq: 1
            }
        );
    }
    let state = LedgerState::from_rows(masters, subs, counters);
    invariants::check_state(&state).expect("总分平衡 after reload");
    assert!(s.notice_seen("CORE-0001").expect("notice"));
    assert!(!s.notice_seen("CORE-0002").expect("notice"));
    assert!(s.order_used(ENT, "ORD-1").expect("order"));
    assert!(!s
        .order_used("OTHER", "ORD-1")
        .expect("order per enterprise"));
    let r = s.request(ENT, "S1").expect("request").expect("stored");
    assert_eq!(r.body, "<Result/>".as_bytes());
    assert_eq!(r.fingerprint, vec![7; 32]);
    assert_eq!(r.return_msg, "交易成功");
    let c = s.credit("2026112300000001").expect("credit").expect("row");
    assert_eq!((c.amount, c.in_acct_type), (1_000, "02"));
    let rc = s.receipt(seq).expect("receipt").expect("row");
    assert_eq!(rc.check_code, "ABCDEFGH12345678");
    assert_eq!(rc.payer_name, "李四");
    let (n, rows) = s.entries_page(1, 20261101, 20261130, 1, 20).expect("page");
    assert_eq!((n, rows.len()), (1, 1));
    assert_eq!(rows[0].remark, "入金 1");
}

/// Inside one batch, a request sees what earlier requests of the batch wrote.
fn reads_in_a_batch_see_earlier_requests(open: Open<'_>) {
    let mut s = open();
    s.provision_master(ENT, MASTER).expect("provision");
    let mid = master_id(s.as_mut());
    s.begin().expect("begin");
    let mut w = Writes::default();
    w.order_no = Some("ORD-A".into());
    w.notice = Some(("CORE-A".into(), "2026112300000001".into()));
    w.credits.push(credit(mid, 1, 20261123));
    w.instructions
        .push(instruction("2026112300000009", 1, 1, mid));
    one(
        s.as_mut(),
        &w,
        Some("2026112300000001"),
        Some(&request("SA", "000000")),
    );
    assert!(s.order_used(ENT, "ORD-A").expect("order"));
    assert!(s.notice_seen("CORE-A").expect("notice"));
    assert_eq!(
        s.request(ENT, "SA")
            .expect("request")
            .expect("seen")
            .return_code,
        "000000"
    );
    let mut u = Writes::default();
    u.credit_updates.push(("2026112300000001".into(), 200));
    u.instruction_updates.push((
        "W2026112300000009001".into(),
        InstructionState::Settled,
        String::new(),
    ));
    one(s.as_mut(), &u, None, None);
    assert_eq!(
        s.credit("2026112300000001")
            .expect("credit")
            .expect("row")
            .unallocated,
        200
    );
    assert_eq!(
        s.instruction("W2026112300000009001")
            .expect("instr")
            .expect("row")
            .state,
        InstructionState::Settled
    );
    // Details pages see the batch's earlier entries too.
    let mut e = Writes::default();
    e.entries.push(entry(5, 1, 20261123));
    one(s.as_mut(), &e, None, None);
    s.savepoint().expect("savepoint");
    let (n, _) = s.entries_page(5, 20261101, 20261130, 1, 20).expect("page");
    s.release().expect("release");
    assert_eq!(n, 1);
    s.commit().expect("commit");
    drop(s);
    let mut s = open();
    assert_eq!(
        s.credit("2026112300000001")
            .expect("credit")
            .expect("row")
            .unallocated,
        200
    );
    assert!(s.unresolved_instructions().expect("unresolved").is_empty());
}

fn savepoint_and_batch_rollback(open: Open<'_>) {
    let mut s = open();
    s.provision_master(ENT, MASTER).expect("provision");
    s.begin().expect("begin");
    let mut kept = Writes::default();
    kept.order_no = Some("KEPT".into());
    one(
        s.as_mut(),
        &kept,
        Some("2026112300000001"),
        Some(&request("K", "000000")),
    );
    s.savepoint().expect("savepoint");
    let mut gone = Writes::default();
    gone.order_no = Some("GONE".into());
    gone.notice = Some(("CORE-GONE".into(), "2026112300000002".into()));
    s.append(ENT, Some("2026112300000002"), &gone)
        .expect("append");
    s.record_request(&request("G", "000000")).expect("record");
    s.rollback_to().expect("rollback to savepoint");
    assert!(!s.order_used(ENT, "GONE").expect("order"));
    assert!(s.request(ENT, "G").expect("request").is_none());
    assert!(s.order_used(ENT, "KEPT").expect("order"));
    s.commit().expect("commit");
    // A whole batch rolled back leaves nothing.
    s.begin().expect("begin");
    let mut lost = Writes::default();
    lost.order_no = Some("LOST".into());
    one(
        s.as_mut(),
        &lost,
        Some("2026112300000003"),
        Some(&request("L", "000000")),
    );
    s.rollback().expect("rollback");
    drop(s);
    let mut s = open();
    assert!(s.order_used(ENT, "KEPT").expect("order"));
    assert!(s.request(ENT, "K").expect("request").is_some());
    assert!(!s.order_used(ENT, "GONE").expect("order"));
    assert!(!s.notice_seen("CORE-GONE").expect("notice"));
    assert!(!s.order_used(ENT, "LOST").expect("order"));
    assert!(s.request(ENT, "L").expect("request").is_none());
}

/// (enterprise, serial), bank serials and order numbers are booked at most once: a second
/// batch booking one again fails as a whole and leaves the first intact.
fn idempotency_keys_are_booked_once(open: Open<'_>) {
    let mut s = open();
    s.provision_master(ENT, MASTER).expect("provision");
    s.begin().expect("begin");
    let mut w = Writes::default();
    w.notice = Some(("CORE-1".into(), "2026112300000001".into()));
    w.order_no = Some("ORD-1".into());
    one(
        s.as_mut(),
        &w,
        Some("2026112300000001"),
        Some(&request("S1", "000000")),
    );
    s.commit().expect("commit");
    for (what, w, req) in [
        ("serial", Writes::default(), Some(request("S1", "E10003"))),
        ("bank serial", w.clone(), None),
    ] {
        s.begin().expect("begin");
        let ok = (|| {
            s.savepoint()?;
            s.append(ENT, Some("2026112300000005"), &w)?;
            if let Some(r) = &req {
                s.record_request(r)?;
            }
            s.release()?;
            s.commit()
        })();
        assert!(ok.is_err(), "a second booking of a {what} was committed");
        s.rollback().expect("rollback");
    }
    drop(s);
    let mut s = open();
    assert_eq!(
        s.request(ENT, "S1")
            .expect("request")
            .expect("row")
            .return_code,
        "000000"
    );
}

/// `Store::idempotency_keys` lists every committed request and order key, of one
/// enterprise when asked, and nothing rolled back (the writer's key filter is filled from it).
fn idempotency_keys_are_listed(open: Open<'_>) {
    use bankfep::keyfilter::KeyKind;
    let mut s = open();
    s.provision_master(ENT, MASTER).expect("provision");
    s.provision_master("OTHERPLATFORM0000001", "6222000000000000009")
        .expect("provision");
    s.begin().expect("begin");
    for (e, serial, order) in [
        (ENT, "S1", "O1"),
        (ENT, "S2", "O2"),
        ("OTHERPLATFORM0000001", "S1", "O9"),
    ] {
        let w = Writes {
            order_no: Some(order.into()),
            ..Writes::default()
        };
        let r = StoredRequest {
            enterprise_code: e.into(),
            ..request(serial, "000000")
        };
        s.savepoint().expect("savepoint");
        s.append(e, Some("2026112300000001"), &w).expect("append");
        s.record_request(&r).expect("record");
        s.release().expect("release");
    }
    s.commit().expect("commit");
    // Rolled back: never listed.
    s.begin().expect("begin");
    s.record_request(&request("GONE", "000000"))
        .expect("record");
    s.rollback().expect("rollback");
    drop(s);
    let mut s = open();
    let list = |s: &mut dyn Store, only: Option<&str>| {
        let mut keys = Vec::new();
        let listed = s
            .idempotency_keys(only, &mut |kind, e, k| {
                keys.push((kind == KeyKind::Request, e.to_string(), k.to_string()))
            })
            .expect("keys");
        assert!(listed, "both stores list their keys");
        keys.sort();
        keys
    };
    let k = |req: bool, e: &str, key: &str| (req, e.to_string(), key.to_string());
    assert_eq!(
        list(s.as_mut(), None),
        vec![
            k(false, ENT, "O1"),
            k(false, ENT, "O2"),
            k(false, "OTHERPLATFORM0000001", "O9"),
            k(true, ENT, "S1"),
            k(true, ENT, "S2"),
            k(true, "OTHERPLATFORM0000001", "S1"),
        ]
    );
    assert_eq!(
        list(s.as_mut(), Some("OTHERPLATFORM0000001")),
        vec![
            k(false, "OTHERPLATFORM0000001", "O9"),
            k(true, "OTHERPLATFORM0000001", "S1"),
        ]
    );
}

fn paging_of_details_and_credits(open: Open<'_>) {
    let mut s = open();
    s.provision_master(ENT, MASTER).expect("provision");
    let mid = master_id(s.as_mut());
    s.begin().expect("begin");
    for n in 1..=25u32 {
        let mut w = Writes::default();
        w.entries.push(entry(7, n, 20261120 + n % 5));
        w.credits.push(credit(mid, n, 20261120 + n % 5));
        one(s.as_mut(), &w, None, None);
    }
    s.commit().expect("commit");
    let (n, p1) = s
        .entries_page(7, 20261101, 20261130, 1, 20)
        .expect("page 1");
    let (_, p2) = s
        .entries_page(7, 20261101, 20261130, 2, 20)
        .expect("page 2");
    let (_, p3) = s
        .entries_page(7, 20261101, 20261130, 3, 20)
        .expect("page 3");
    assert_eq!((n, p1.len(), p2.len(), p3.len()), (25, 20, 5, 0));
    // Ordered by accounting date, then booking order.
    let all: Vec<_> = p1.iter().chain(p2.iter()).collect();
    assert!(all.windows(2).all(|w| w[0].acct_date <= w[1].acct_date));
    let day: Vec<_> = all.iter().filter(|e| e.acct_date == 20261121).collect();
    assert!(day
        .windows(2)
        .all(|w| w[0].front_seq_no < w[1].front_seq_no));
    let (n, one_day) = s
        .entries_page(7, 20261121, 20261121, 1, 20)
        .expect("one day");
    assert_eq!((n, one_day.len()), (5, 5));
    let (n, c1) = s
        .credits_page(&[mid], 20261101, 20261130, 1, 20)
        .expect("credits");
    let (_, c2) = s
        .credits_page(&[mid], 20261101, 20261130, 2, 20)
        .expect("credits");
    assert_eq!((n, c1.len(), c2.len()), (25, 20, 5));
    let (n, none) = s
        .credits_page(&[mid + 99], 20261101, 20261130, 1, 20)
        .expect("credits");
    assert_eq!((n, none.len()), (0, 0));
}

fn withdrawals_and_chunks(open: Open<'_>) {
    let mut s = open();
    s.provision_master(ENT, MASTER).expect("provision");
    let mid = master_id(s.as_mut());
    let seq = "2026112300000007";
    s.begin().expect("begin");
    let mut w = Writes::default();
    w.withdrawal = Some(Withdrawal {
        front_seq_no: seq.into(),
        enterprise_code: ENT.into(),
        serial: "WD1".into(),
        sub_id: 1,
        master_id: mid,
        amount: 12_000_000,
        fee: 100,
        chunk_count: 3,
    });
    for n in [3, 1, 2] {
        w.instructions.push(instruction(seq, n, 1, mid));
    }
    one(s.as_mut(), &w, Some(seq), None);
    s.commit().expect("commit");
    let (wd, chunks) = s.withdrawal(seq).expect("withdrawal").expect("row");
    assert_eq!((wd.amount, wd.fee, wd.chunk_count), (12_000_000, 100, 3));
    assert_eq!(
        chunks.iter().map(|c| c.chunk_no).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(s.unresolved_instructions().expect("unresolved").len(), 3);
    let id = |n| format!("W{seq}{n:03}");
    s.begin().expect("begin");
    let mut u = Writes::default();
    u.instruction_updates
        .push((id(1), InstructionState::Failed, "RJ01".into()));
    u.instruction_updates
        .push((id(2), InstructionState::Failed, "RJ01".into()));
    one(s.as_mut(), &u, None, None);
    let (_, others_failed) = s
        .withdrawal_refund_facts(seq, &id(3))
        .expect("facts")
        .expect("row");
    assert!(others_failed, "chunks 1 and 2 failed in this batch");
    let (_, others_failed) = s
        .withdrawal_refund_facts(seq, &id(1))
        .expect("facts")
        .expect("row");
    assert!(!others_failed, "chunk 3 is still unresolved");
    s.commit().expect("commit");
    // A resolved instruction is never changed again.
    s.begin().expect("begin");
    let mut again = Writes::default();
    again
        .instruction_updates
        .push((id(1), InstructionState::Settled, String::new()));
    one(s.as_mut(), &again, None, None);
    s.commit().expect("commit");
    drop(s);
    let mut s = open();
    let (_, chunks) = s
        .withdrawal_by_serial(ENT, "WD1")
        .expect("by serial")
        .expect("row");
    assert_eq!(
        chunks
            .iter()
            .map(|c| (c.state, c.reject_code.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (InstructionState::Failed, "RJ01"),
            (InstructionState::Failed, "RJ01"),
            (InstructionState::Unresolved, "")
        ]
    );
    let left = s.unresolved_instructions().expect("unresolved");
    let of_day = s.instructions_of_date("20261123").expect("of date");
    assert_eq!(
        of_day.iter().map(|i| i.chunk_no).collect::<Vec<_>>(),
        vec![3, 1, 2],
        "every instruction of the day, in the order created"
    );
    assert_eq!(of_day[1].state, InstructionState::Failed);
    assert!(s.instructions_of_date("20261124").expect("none").is_empty());
    assert!(s.instructions_of_date("2026112").expect("none").is_empty());
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, id(3));
    assert!(s.withdrawal_by_serial(ENT, "NOPE").expect("none").is_none());
    let (_, subs, _) = s.load().expect("load");
    assert!(subs.is_empty());
}

fn bindings_are_set_replaced_and_removed(open: Open<'_>) {
    let mut s = open();
    s.provision_master(ENT, MASTER).expect("provision");
    let mid = master_id(s.as_mut());
    let binding = |acct: &str, verified: bool| Binding {
        acct_no: acct.into(),
        acct_name: "张三".into(),
        same_bank: false,
        branch_name: "中国工商银行北京分行".into(),
        bank_code: "102100099996".into(),
        verified,
        auth_amount: 17,
        attempts_left: 4,
        verify_seq: "2026112300000003".into(),
    };
    s.begin().expect("begin");
    let m = master(mid, 0, 0, 0, 0);
    let (a, b) = (sub(1, mid, 0), sub(2, mid, 0));
    let mut w = Writes::default();
    w.bindings
        .push((1, Some(binding("6217000000000000001", false))));
    w.bindings
        .push((1, Some(binding("6217000000000000002", true))));
    w.bindings
        .push((2, Some(binding("6217000000000000003", true))));
    one(s.as_mut(), &w, None, None);
    s.write_accounts(&[&m], &[&a, &b]).expect("accounts");
    s.commit().expect("commit");
    s.begin().expect("begin");
    let mut w = Writes::default();
    w.bindings.push((2, None));
    one(s.as_mut(), &w, None, None);
    s.commit().expect("commit");
    drop(s);
    let mut s = open();
    let (_, subs, _) = s.load().expect("load");
    let one = subs.iter().find(|x| x.id == 1).expect("sub 1");
    let got = one.binding.as_ref().expect("bound");
    assert_eq!(got, &binding("6217000000000000002", true));
    assert!(subs
        .iter()
        .find(|x| x.id == 2)
        .expect("sub 2")
        .binding
        .is_none());
}

/// The store itself refuses a negative balance or frozen above balance (last line of
/// defence under the writer's checks): the batch fails and nothing of it remains.
fn checks_refuse_impossible_balances(open: Open<'_>) {
    let mut s = open();
    s.provision_master(ENT, MASTER).expect("provision");
    let mid = master_id(s.as_mut());
    let m = master(mid, 0, 0, 0, 0);
    let negative = sub(1, mid, -1);
    let mut over_frozen = sub(2, mid, 10);
    over_frozen.frozen = 11;
    for bad in [negative, over_frozen] {
        s.begin().expect("begin");
        let mut w = Writes::default();
        w.order_no = Some(format!("ORD-{}", bad.id));
        one(s.as_mut(), &w, None, None);
        let r = s.write_accounts(&[&m], &[&bad]).and_then(|_| s.commit());
        assert!(r.is_err(), "sub-account {} was stored", bad.id);
        s.rollback().expect("rollback");
        assert!(!s
            .order_used(ENT, &format!("ORD-{}", bad.id))
            .expect("order"));
    }
    let (_, subs, _) = s.load().expect("load");
    assert!(subs.is_empty());
}
