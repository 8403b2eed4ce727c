#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 60 s each). Not part of CI.
# Needs cargo-fuzz (cargo install cargo-fuzz). On a stable toolchain RUSTC_BOOTSTRAP=1 lets it
# pass the sanitizer flags it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
mkdir -p fuzz/corpus/import
# Seed the import target with a real export.
tmp=$(mktemp -d)
cargo build --release -q
./target/release/tracker --db "$tmp/t.redb" init >/dev/null
./target/release/tracker --db "$tmp/t.redb" new "seed" --label a >/dev/null
./target/release/tracker --db "$tmp/t.redb" export > fuzz/corpus/import/seed.json
for target in decode_values import; do
  echo "== $target for ${secs}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$secs" -max_len=4096
done
