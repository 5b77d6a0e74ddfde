#!/usr/bin/env bash
# Make a throwaway CA and one certificate per node with the openssl CLI, for TLS on loopback
# (or on the hosts you name). The private keys stay in DIR: never commit them.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/gen-certs.sh DIR [N] [--host NAME]...

Writes into DIR (created if needed):
  ca.pem, ca-key.pem        a new CA (ECDSA P-256, 10 years); ca.pem is what nodes and clients
                            trust (--tls-ca, --peer-ca, kvstore check --ca, curl --cacert)
  nI.pem, nI-key.pem        for I = 1..N (default 3): a certificate signed by that CA, for both
                            server and client use (HTTPS client port and peer mutual TLS), valid
                            for 127.0.0.1, ::1, localhost and every --host NAME (a DNS name or an
                            IP address: the host part of the URLs other nodes and clients use)

The layout is what `kvstore check --local N --tls-dir DIR` and `scripts/run-cluster.sh --tls DIR`
expect. An existing CA in DIR is reused, so more node certificates can be added later.
USAGE
}

DIR=""
N=3
HOSTS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --host) HOSTS+=("$2"); shift 2 ;;
    -*) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    *) if [[ -z "$DIR" ]]; then DIR="$1"; else N="$1"; fi; shift ;;
  esac
done
[[ -n "$DIR" ]] || { usage >&2; exit 2; }
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive number" >&2; exit 2; }
command -v openssl >/dev/null || { echo "openssl is needed (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$DIR"
umask 077
if [[ ! -e "$DIR/ca.pem" ]]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$DIR/ca-key.pem" -out "$DIR/ca.pem" -days 3650 -subj "/CN=kvstore test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  echo "made $DIR/ca.pem"
fi

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for h in "${HOSTS[@]}"; do
  if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then san+=",IP:$h"; else san+=",DNS:$h"; fi
done

for i in $(seq 1 "$N"); do
  ext="$(mktemp)"
  cat >"$ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san
EOF
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$DIR/n$i-key.pem" -subj "/CN=n$i" 2>/dev/null |
    openssl x509 -req -CA "$DIR/ca.pem" -CAkey "$DIR/ca-key.pem" -CAcreateserial \
      -days 825 -extfile "$ext" -out "$DIR/n$i.pem" 2>/dev/null
  rm -f "$ext"
  echo "made $DIR/n$i.pem ($san)"
done
# Certificates are public; the keys stay readable by their owner only.
chmod 644 "$DIR/ca.pem" "$DIR"/n*.pem
