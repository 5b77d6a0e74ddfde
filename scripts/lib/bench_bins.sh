# Shared by the bench scripts (sourced): installing their tools and picking the binaries.
#   need_tools TOOL...  apt-get installs the missing ones (wrk, etcd -> etcd-server; needs root)
#   pick_bins           BIN: $KVSTORE_BIN, else `cargo build --release` and target/release/kvstore;
#                       BASE: (--baseline ABS_PATH) from $BASELINE_BIN, if set (the scripts'
#                       own --baseline BIN argument is passed through as given)

need_tools() {
  local need=() t
  for t in "$@"; do
    if ! command -v "$t" >/dev/null; then
      case "$t" in etcd) need+=(etcd-server) ;; *) need+=("$t") ;; esac
    fi
  done
  if [[ ${#need[@]} -gt 0 ]]; then
    echo "installing ${need[*]}..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null
  fi
}

abs_path() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }

pick_bins() {
  if [[ -n "${KVSTORE_BIN:-}" ]]; then
    [[ -x "$KVSTORE_BIN" ]] || { echo "KVSTORE_BIN=$KVSTORE_BIN is not an executable" >&2; exit 2; }
    BIN="$(abs_path "$KVSTORE_BIN")"
  else
    (cd "$ROOT" && cargo build --release --quiet)
    BIN="$ROOT/target/release/kvstore"
  fi
  BASE=()
  if [[ -n "${BASELINE_BIN:-}" ]]; then
    [[ -x "$BASELINE_BIN" ]] || { echo "BASELINE_BIN=$BASELINE_BIN is not an executable" >&2; exit 2; }
    BASE=(--baseline "$(abs_path "$BASELINE_BIN")")
  fi
}
