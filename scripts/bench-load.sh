#!/usr/bin/env bash
# Durable throughput of the gateway, as the README's figures were measured: starts a release
# `bankfep serve` on a fresh data folder (embedded store, or PostgreSQL when
# BANKFEP_DATABASE_URL names a fresh database), runs `bankfep load` RUNS times against it
# with the gateway's pid (CPU µs per transfer) and prints each run's report, then the median
# throughput. Usage: scripts/bench-load.sh [RUNS] [CONNECTIONS] [REQUESTS]; TLS=1 for mutual
# TLS with `dev-certs` certificates; BIN=path to run another build; DATABASE_URL=postgres://…
# (an empty database) for the PostgreSQL store.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; conns=${2:-32}; reqs=${3:-2000}
[ -n "${BIN:-}" ] || cargo build --release -q
bin=${BIN:-target/release/bankfep}
work=$(mktemp -d)
trap 'kill "$gw" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
serve=(serve --data-dir "$work/data" --no-log-requests)
load=(load --connections "$conns" --requests "$reqs")
[ -n "${DATABASE_URL:-}" ] && serve+=(--database-url "$DATABASE_URL")
if [ "${TLS:-0}" = 1 ]; then
  "$bin" dev-certs "$work/certs" >/dev/null
  serve+=(--config "$work/certs/bankfep-tls.toml")
  load+=(--addr 127.0.0.1:7443 --tls-ca "$work/certs/ca.pem" --tls-cert "$work/certs/client.pem" --tls-key "$work/certs/client.key")
fi
"$bin" "${serve[@]}" >"$work/serve.log" 2>&1 &
gw=$!
for _ in $(seq 1 100); do grep -q ready "$work/serve.log" && break; sleep 0.1; done
tput=()
for r in $(seq 1 "$runs"); do
  echo "== run $r"
  out=$("$bin" "${load[@]}" --gateway-pid "$gw")
  echo "$out"
  tput+=("$(echo "$out" | sed -n 's/.*throughput: \([0-9.]*\) req.*/\1/p')")
done
printf '%s\n' "${tput[@]}" | sort -n | awk '{a[NR]=$1} END {print "median throughput: " a[int((NR+1)/2)] " transfers/s over " NR " runs"}'
