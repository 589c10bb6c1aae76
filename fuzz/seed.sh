#!/usr/bin/env bash
# Builds the seed corpora of the fuzz targets into fuzz/corpus/<target>/ from fixtures/:
#   a001_frame  - every platform-link request.bin (A001 header + body), as is
#   xml_body    - the body part (bytes after the 222-byte header) of those requests
#   notice_6920 - every bank-core request.bin (8-digit prefix + 6920 record), as is
#   citic_request - every CITIC request body fixtures/citic/*.req, as is
#   rail_reply  - valid §3 replies and requests made with rail::wire::encode_reply /
#                 encode_request (examples/mkseeds.rs), raw and prefixed
# Idempotent: files are named after their fixture, so re-running overwrites them.
set -euo pipefail
cd "$(dirname "$0")"
root=..
mkdir -p corpus/a001_frame corpus/xml_body corpus/notice_6920 corpus/rail_reply corpus/citic_request

for req in "$root"/fixtures/*/*/request.bin; do
    dir=$(dirname "$req")
    name=$(basename "$dir")
    link=platform
    if [ -f "$dir/link" ]; then link=$(tr -d '[:space:]' < "$dir/link"); fi
    # Fixtures without a link file: 6920 cases are core notices, the rest platform requests.
    if [ ! -f "$dir/link" ] && [[ "$name" == *-6920-* ]]; then link=core; fi
    case "$link" in
        core)
            cp "$req" "corpus/notice_6920/$name"
            ;;
        platform)
            cp "$req" "corpus/a001_frame/$name"
            size=$(stat -c %s "$req")
            if [ "$size" -gt 222 ]; then
                tail -c +223 "$req" > "corpus/xml_body/$name"
            fi
            ;;
    esac
done

for req in "$root"/fixtures/citic/*.req; do
    cp "$req" "corpus/citic_request/$(basename "$req" .req)"
done

cargo run --quiet --release --example mkseeds -- corpus/rail_reply

for t in a001_frame xml_body notice_6920 rail_reply citic_request; do
    echo "$t: $(find "corpus/$t" -type f | wc -l) seeds"
done
