#!/usr/bin/env bash
# Long fuzzing of oxinfer-core's loaders with cargo-fuzz (libFuzzer), on the stable toolchain.
#
#   scripts/cargo-fuzz.sh [seconds per target, default 600]      (npm run fuzz:cargo)
#
# Targets (crates/oxinfer-core/fuzz/fuzz_targets): load_onnx (any bytes as an ONNX model: load,
# then run on zeros) and embedder_folder (config.json, tokenizer.json or model.safetensors
# replaced by the input: load, then embed). The properties checked are in
# crates/oxinfer-core/src/fuzzing.rs; `cargo test` runs the same checks on the seeds, the
# committed regressions and a few hundred fixed mutations (CI's short version).
#
# `-s none`: no sanitizer. AddressSanitizer needs a nightly compiler, which this project's
# toolchain sources (Debian, rustup's stable) do not give; the oracle is Rust's own checks plus
# the properties, and libFuzzer's -rss_limit_mb / -timeout for runaway memory or time.
# Results: bench/results/cargo-fuzz.json; findings: crates/oxinfer-core/fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
fuzz=crates/oxinfer-core/fuzz
work=.cache/cargo-fuzz
mkdir -p "$work"

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
node scripts/fixtures.mjs >/dev/null # the seed models and the tiny-bert folder

# Seeds. chain_20000 is left out: a legitimately deep graph that takes seconds per load.
mkdir -p "$fuzz/corpus/load_onnx" "$fuzz/corpus/embedder_folder"
for f in .cache/fixtures/*.onnx .cache/fixtures/hostile/*.onnx; do
  case "$f" in *chain_20000*) continue ;; esac
  cp "$f" "$fuzz/corpus/load_onnx/seed-$(basename "$f")"
done
i=0
for f in config.json tokenizer.json model.safetensors; do
  { printf "\\x$(printf %02x $i)"; cat ".cache/fixtures/tiny-bert/$f"; } > "$fuzz/corpus/embedder_folder/seed-$f"
  i=$((i + 1))
done
export OXINFER_FUZZ_SEED_FOLDER="$PWD/.cache/fixtures/tiny-bert"

run_target() { # target max_len
  local t=$1 max_len=$2 rc=0
  rm -rf "$fuzz/artifacts/$t"
  (cd "$fuzz" && cargo fuzz run -s none -O "$t" -- -max_total_time="$secs" -rss_limit_mb=4096 \
     -timeout=20 -max_len="$max_len" -print_final_stats=1) >"$work/$t.log" 2>&1 || rc=$?
  echo "$t: exit $rc; $(grep -E '^Done [0-9]+ runs' "$work/$t.log" || echo 'no Done line')"
  echo "$rc" >"$work/$t.rc"
}
(cd "$fuzz" && cargo fuzz build -s none -O)
run_target load_onnx 100000
run_target embedder_folder 4200000

node - "$secs" <<'JS'
const fs = require('node:fs');
const secs = Number(process.argv[2]);
const summary = (t) => {
  const log = fs.readFileSync(`.cache/cargo-fuzz/${t}.log`, 'utf8');
  const last = (re) => { const m = [...log.matchAll(re)].pop(); return m ? Number(m[1]) : null; };
  const dir = `crates/oxinfer-core/fuzz/artifacts/${t}`;
  const artifacts = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  return {
    target: t,
    exitCode: Number(fs.readFileSync(`.cache/cargo-fuzz/${t}.rc`, 'utf8')),
    runs: last(/^Done (\d+) runs/gm) ?? last(/^#(\d+)\s/gm),
    seconds: last(/^Done \d+ runs in (\d+) second/gm),
    execsPerSecond: last(/exec\/s: (\d+)/g),
    coverage: last(/cov: (\d+)/g),
    corpus: last(/corp: (\d+)\//g),
    peakRssMB: last(/rss: (\d+)Mb/g),
    findings: artifacts, // crash-*, timeout-*, oom-*, leak-* inputs
    escapedPanics: (log.match(/oxinfer fuzz: a panic escaped/g) ?? []).length,
  };
};
const out = {
  date: new Date().toISOString(),
  secondsPerTarget: secs,
  sanitizer: 'none (stable toolchain)',
  limits: { rssLimitMB: 4096, timeoutS: 20 },
  rustc: require('node:child_process').execSync('rustc --version').toString().trim(),
  targets: ['load_onnx', 'embedder_folder'].map(summary),
};
fs.writeFileSync('bench/results/cargo-fuzz.json', JSON.stringify(out, null, 2) + '\n');
for (const t of out.targets) console.log(`${t.target}: ${t.runs} runs, cov ${t.coverage}, findings ${t.findings.length}`);
JS
