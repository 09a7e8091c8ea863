#!/usr/bin/env bash
# Runs oxinfer-core's Rust tests with the profile and target of the addon build, so the
# dependencies `npm install` compiled are reused instead of being built a second time.
set -euo pipefail
host=$(rustc -vV | sed -n 's/^host: //p')
exec cargo test -p oxinfer-core --release --target "$host" "$@"
