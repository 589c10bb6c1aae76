#!/usr/bin/env bash
# Figures of docs/limits-figures.md: starts a fresh gateway (BIN, default the release
# binary) on free-ish ports per run, runs `bankfep abuse ...` against it, stops it.
# Usage: scripts/abuse-figures.sh idle [extra abuse-idle flags]
#        scripts/abuse-figures.sh flood [extra abuse-flood flags]
set -euo pipefail
BIN=${BIN:-target/release/bankfep}
MODE=$1; shift
PP=${PP:-17472}; CP=${CP:-17473}
DIR=$(mktemp -d /tmp/bankfep-abuse-XXXXXX)
"$BIN" serve --data-dir "$DIR" --platform-addr 127.0.0.1:$PP --core-addr 127.0.0.1:$CP \
  >"$DIR/stdout" 2>"$DIR/stderr" &
GW=$!
trap 'kill -TERM $GW 2>/dev/null; wait $GW 2>/dev/null; echo "gateway stderr: $(wc -l <"$DIR/stderr") lines, $(wc -c <"$DIR/stderr") bytes"; rm -rf "$DIR"' EXIT
for _ in $(seq 1 300); do grep -q ready "$DIR/stdout" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$DIR/stdout" || { echo "gateway not ready"; cat "$DIR/stderr"; exit 1; }
case $MODE in
  idle)  "$BIN" abuse idle --addr 127.0.0.1:$PP --gateway-pid $GW "$@" ;;
  flood) "$BIN" abuse flood --addr 127.0.0.1:$PP --core-addr 127.0.0.1:$CP "$@" ;;
esac
