#!/usr/bin/env python3
"""bankfep walk-through: open a sub-account, fund it, bind a withdrawal account with
small-amount verification, withdraw 120,000.00 and watch the three 40,000.00 super e-bank
chunks settle. A client written from docs/protocol.md alone, Python standard library only.

Usage (gateway running on its defaults, `cargo run --release -- serve`):
    python3 scripts/demo.py [--auth-amt 0.23] [--platform 127.0.0.1:7072] [--core 127.0.0.1:7073]
Without --auth-amt the script asks for the verification amount: the rail simulator logs it
("rail simulator: instruction received ... amount=0.23"), in the gateway's output for the
built-in one, in its own for `bankfep rail-sim`.
"""
import argparse, re, socket, sys, time

ENT = "DEMOPLATFORM00000001"
MASTER = "6222000000000000001"
RUN = time.strftime("%H%M%S")


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def read(s, n):
    b = b""
    while len(b) < n:
        x = s.recv(n - len(b))
        if not x:
            raise SystemExit("connection closed by the gateway")
        b += x
    return b


def field(body, name):
    m = re.search(r"<%s>(.*?)</%s>" % (name, name), body)
    return m.group(1) if m else None


class Platform:
    """docs/protocol.md §1: 222-byte A001 header + GBK XML body."""

    def __init__(self, addr):
        self.addr = addr
        self.s = socket.create_connection(hostport(addr), timeout=30)
        self.n = 0

    def call(self, code, fields):
        """One request; when the gateway closed the connection meanwhile (idle timeout while
        a person was reading a log), connects again and sends the same bytes: a repeat under
        the same serial is answered from the record, never booked twice (§1.2)."""
        self.n += 1
        now = time.strftime("%Y%m%d%H%M%S")
        try:
            return self.send(code, fields, now)
        except (OSError, SystemExit):
            self.s.close()
            self.s = socket.create_connection(hostport(self.addr), timeout=30)
            return self.send(code, fields, now)

    def send(self, code, fields, now):
        serial = ("DEMO%s%04d" % (RUN, self.n)).ljust(20)
        xml = '<?xml version="1.0" encoding="GBK"?><Result>' + "".join(
            "<%s>%s</%s>" % (k, v, k) for k, v in fields) + "</Result>"
        body = xml.encode("gbk")
        header = (b"A001" + b"01" + b"01" + b"01" + ENT.ljust(20).encode()
                  + str(len(body)).zfill(10).encode() + code.ljust(6).encode() + b"00001"
                  + b"01" + now.encode() + serial.encode() + b" " * 6 + b" " * 100
                  + b"0" + b"000" + b"0" + b"0" + b" " * 12 + b"0" * 10 + b"0")
        assert len(header) == 222
        self.s.sendall(header + body)
        h = read(self.s, 222)
        # The gateway's business date and time (header fields 10 and 11): a notice from the
        # bank core carries the same accounting date.
        self.business_stamp = h[53:67].decode()
        rbody = read(self.s, int(h[30:40])).decode("gbk" if h[6:8] == b"01" else "utf-8")
        rc = h[87:93].decode()
        msg = h[93:193].decode("gbk").strip()
        return rc, msg, rbody, serial.strip()


def notice(addr, serial, payee, fen, payer_acct, payer_name, stamp, memo=""):
    """docs/protocol.md §2: 00000390 + the 390-byte 6920 record, dated `stamp`
    (yyyyMMddHHmmss, the accounting date and time of the core)."""
    def t(v, n):
        b = v.encode("gbk")
        assert len(b) <= n
        return b + b" " * (n - len(b))
    rec = (b"6920" + t(serial, 32) + b"IBPS" + stamp.encode()
           + t(payee, 32) + str(fen).zfill(15).encode() + b"RMB" + t(payer_acct, 32)
           + t(payer_name, 120) + t("102100099996", 14) + t(memo, 60) + b" " * 60)
    assert len(rec) == 390
    with socket.create_connection(hostport(addr), timeout=30) as s:
        s.sendall(b"00000390" + rec)
        n = int(read(s, 8))
        reply = read(s, n)
    return reply[36:40].decode()


def must(step, rc, msg):
    print("%-40s %s %s" % (step, rc, msg))
    if rc != "000000":
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--platform", default="127.0.0.1:7072")
    ap.add_argument("--core", default="127.0.0.1:7073")
    ap.add_argument("--auth-amt")
    a = ap.parse_args()
    p = Platform(a.platform)
    member, name, bound = "DEMO" + RUN, "张三", "62170000000" + RUN + "42"
    rc, msg, body, _ = p.call("6248", [("FundSummaryAcctNo", MASTER), ("TranNetMemberCode", member),
                                      ("MemberName", name), ("MemberGlobalType", "1"),
                                      ("MemberGlobalId", "110101199001011234")])
    must("6248 open sub-account", rc, msg)
    sub = field(body, "SubAcctNo")
    print("  SubAcctNo", sub)
    print("%-40s %s" % ("6920 inbound credit 200,000.00", notice(a.core, "DEMOCORE" + RUN, sub, 20000000, "6217000000000000001", name, p.business_stamp)))
    rc, msg, body, _ = p.call("6010", [("SubAcctNo", sub)])
    must("6010 balance", rc, msg)
    print("  TotalBalance", field(body, "TotalBalance"))
    rc, msg, body, _ = p.call("6240", [("SubAcctNo", sub), ("TranNetMemberCode", member),
                                      ("MemberName", name), ("MemberAcctNo", bound), ("BankType", "2"),
                                      ("AcctOpenBranchName", "中国工商银行北京分行"),
                                      ("EiconBankBranchId", "102100099996")])
    must("6240 bind, verification sent", rc, msg)
    amt = a.auth_amt or input("  verification amount received on %s (the rail's log: amount=...): " % bound).strip()
    rc, msg, body, _ = p.call("6241", [("SubAcctNo", sub), ("TakeCashAcctNo", bound), ("AuthAmt", amt)])
    must("6241 confirm, AuthStatus " + str(field(body, "AuthStatus")), rc, msg)
    rc, msg, body, serial = p.call("6033", [("SubAcctNo", sub), ("TranNetMemberCode", member),
                                           ("MemberName", name), ("TakeCashAcctNo", bound),
                                           ("OutAmtAcctName", name), ("CashAmt", "120000.00"),
                                           ("OrderNo", "DEMO-W-" + RUN)])
    must("6033 withdraw 120,000.00", rc, msg)
    print("  FrontSeqNo", field(body, "FrontSeqNo"), "ChunkCount", field(body, "ChunkCount"))
    # A chunk held by a maintenance window, or whose reply the rail lost, settles later.
    for _ in range(600):
        rc, msg, body, _ = p.call("6110", [("OrigSerialNo", serial)])
        if field(body, "TranStatus") != "6":
            break
        time.sleep(0.5)
    must("6110 TranStatus " + str(field(body, "TranStatus")), rc, msg)
    for row in re.findall(r"<Row>(.*?)</Row>", body):
        print("  chunk", field(row, "ChunkNo"), field(row, "TranAmt"), field(row, "ChunkStatus"))
    rc, msg, body, _ = p.call("6010", [("SubAcctNo", sub)])
    must("6010 balance", rc, msg)
    print("  TotalBalance", field(body, "TotalBalance"))


if __name__ == "__main__":
    main()
