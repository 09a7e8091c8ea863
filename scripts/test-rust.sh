#!/usr/bin/env bash
# Runs the Rust tests with the profile, target and feature set of the addon build, so the
# dependencies `npm install` compiled are reused instead of being built a second time
# (selecting oxinfer-node too unifies features the way building the addon does).
set -euo pipefail
host=$(rustc -vV | sed -n 's/^host: //p')
exec cargo test -p oxinfer-core -p oxinfer-node --release --target "$host" "$@"
