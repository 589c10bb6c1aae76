//! Money is conserved under concurrent clients (docs/ledger.md invariants): 16 connections doing
//! random forced transfers at once, and 16 connections replaying one requester serial at
//! once (docs/protocol.md §1.2: money moves exactly once).

mod common;

use common::*;

const MEMBERS: usize = 16;
const TASKS: usize = 16;
const PER_TASK: usize = 150;

/// xorshift64*: a small deterministic PRNG (no `rand` here).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn fmt_fen(f: u64) -> String {
    format!("{}.{:02}", f / 100, f % 100)
}

/// "1234.56" → 123456 fen; panics on anything else (the wire always shows 2 places).
fn parse_fen(s: &str) -> i64 {
    let (i, f) = s.split_once('.').expect("amount with a point");
    assert_eq!(f.len(), 2, "two fractional digits: {s}");
    i.parse::<i64>().expect("integer part") * 100 + f.parse::<i64>().expect("fraction")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_is_conserved_under_16_concurrent_clients() {
    let gw = start("conc").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let mut members = Vec::new();
    let mut funded: i64 = 0;
    for i in 0..MEMBERS {
        let code = format!("C{i:03}");
        let sub = open_sub(&mut c, &code, &format!("会员{i}")).await;
        let amount = 50_000 + 1_000 * i as u64; // 500.00 + 10.00·i
        fund(&mut core, &format!("CONC-FUND-{i}"), &sub, amount).await;
        funded += amount as i64;
        members.push((sub, code));
    }
    let members = std::sync::Arc::new(members);

    let mut handles = Vec::new();
    for t in 0..TASKS {
        let members = members.clone();
        let addr = gw.platform.clone();
        handles.push(tokio::spawn(async move {
            let mut c = bankfep::client::PlatformClient::connect(&addr, None, 30_000)
                .await
                .expect("connect");
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1).wrapping_mul(0xA076_1D64));
            let (mut ok, mut refused) = (0u64, 0u64);
            for i in 0..PER_TASK {
                let p = rng.below(MEMBERS as u64) as usize;
                let mut q = rng.below(MEMBERS as u64 - 1) as usize;
                if q >= p {
                    q += 1;
                }
                let amt = 1 + rng.below(5_000); // 0.01 ..= 50.00
                let fee = if rng.below(3) == 0 {
                    1 + rng.below(200)
                } else {
                    0
                };
                let (from, to) = (&members[p], &members[q]);
                let r = transfer(
                    &mut c,
                    (&from.0, &from.1),
                    (&to.0, &to.1),
                    &fmt_fen(amt),
                    &fmt_fen(fee),
                    &format!("CONC-{t}-{i}"),
                )
                .await;
                match r.return_code().as_str() {
                    "000000" => ok += 1,
                    "E10003" => refused += 1,
                    other => panic!(
                        "task {t} transfer {i}: unexpected {other} {}",
                        r.return_message()
                    ),
                }
            }
            (ok, refused)
        }));
    }
    let mut acknowledged = 0u64;
    let mut refused = 0u64;
    for h in handles {
        let (ok, no) = h.await.expect("task");
        acknowledged += ok;
        refused += no;
    }
    assert_eq!(acknowledged + refused, (TASKS * PER_TASK) as u64);
    eprintln!("acknowledged {acknowledged}, refused {refused}");
    assert!(acknowledged > 0, "some transfers succeed");

    // Σ balances over the wire + fee account == Σ funded; nothing negative.
    let mut total: i64 = 0;
    for (sub, _) in members.iter() {
        let (bal, frozen, avail) = balance(&mut c, sub).await;
        let (bal, frozen, avail) = (parse_fen(&bal), parse_fen(&frozen), parse_fen(&avail));
        assert!(bal >= 0, "{sub} negative: {bal}");
        assert_eq!(frozen, 0);
        assert_eq!(avail, bal);
        total += bal;
    }
    let state = gw.assert_invariants().await;
    let m = state.master_by_no(MASTER).expect("master");
    assert_eq!(total + m.fee, funded, "Σ sub-accounts + fee == Σ funded");
    assert_eq!(m.mirror, funded);
    assert_eq!(m.suspense, 0);
    let dir = gw.dir.to_path_buf();
    gw.running.shutdown().await;

    let db = rusqlite::Connection::open(dir.join("bankfep.sqlite3")).expect("open db");
    let postings: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM postings WHERE booking_type = '01'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(
        postings as u64, acknowledged,
        "one posting per 000000 answer"
    );
    let fees: i64 = db
        .query_row(
            "SELECT COALESCE(SUM(amount), 0) FROM postings WHERE booking_type = '08'",
            [],
            |r| r.get(0),
        )
        .expect("fees");
    assert_eq!(fees, m.fee, "fee postings sum to the fee account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_clients_with_the_same_serial_move_money_once() {
    let gw = start("same-serial").await;
    let mut c = gw.client().await;
    let mut core = gw.core_client().await;
    let a = open_sub(&mut c, "S001", "付款方").await;
    let b = open_sub(&mut c, "S002", "收款方").await;
    fund(&mut core, "SAME-FUND-1", &a, 100_000).await; // 1,000.00

    let mut handles = Vec::new();
    for _ in 0..16 {
        let addr = gw.platform.clone();
        let (a, b) = (a.clone(), b.clone());
        handles.push(tokio::spawn(async move {
            let mut c = bankfep::client::PlatformClient::connect(&addr, None, 30_000)
                .await
                .expect("connect");
            c.call(
                ENT,
                "6034",
                "SAME-SERIAL-0001",
                &[
                    ("OutSubAcctNo", &a),
                    ("OutMemberCode", "S001"),
                    ("InSubAcctNo", &b),
                    ("InMemberCode", "S002"),
                    ("TranAmt", "123.45"),
                    ("TranFee", "0.55"),
                    ("OrderNo", "SAME-ORDER-1"),
                ],
            )
            .await
            .expect("call")
        }));
    }
    let mut bodies = Vec::new();
    for h in handles {
        let r = h.await.expect("task");
        assert_eq!(r.return_code(), "000000", "{}", r.return_message());
        assert_eq!(r.serial(), "SAME-SERIAL-0001");
        bodies.push(r.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "same body bytes");
    assert_eq!(balance(&mut c, &a).await.0, "876.00");
    assert_eq!(balance(&mut c, &b).await.0, "123.45");
    let state = gw.assert_invariants().await;
    assert_eq!(state.master_by_no(MASTER).expect("master").fee, 55);
    gw.running.shutdown().await;
}
