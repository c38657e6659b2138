# Shared settings for the project's scripts. Source it; do not run it.
# The build cache lives outside the clone so a fresh clone on the same machine reuses it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ecld-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
ECLD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ECLD_ROOT
ECLD_BIN="$CARGO_TARGET_DIR/debug/ecld"
export ECLD_BIN
