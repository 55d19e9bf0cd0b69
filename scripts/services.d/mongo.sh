# shellcheck shell=bash
# MongoDB wire protocol on 127.0.0.1:27017: FerretDB v1 with its SQLite backend
# (sourced by scripts/services; contract in common.sh).
#
# FerretDB v1.24.2 is the last v1 release; v2 needs the DocumentDB PostgreSQL
# extension, which we cannot install here. Upstream's `go install .../cmd/ferretdb`
# panics at start (build/version/version.txt is not in the module zip), so
# scripts/ferretdb is a small wrapper module that embeds the ferretdb package, and
# scripts/ferretdb/*.patch are upstream fixes applied at build time to a copy of the module
# (update-close-iterators.patch: an `update` command with more than 100 statements that
# match existing documents -- e.g. pymongo bulk_write of UpdateOne upserts on known ids --
# otherwise exhausts the 100-connection SQLite pool and hangs the whole server;
# sqlite-id-pushdown.patch: a filter on _id plus other conditions -- the books' "replace only
# with a later record" -- used the _id index only when _id was the filter's sole key, and
# otherwise scanned the collection: 120 ms per replace at 2,000 books, 0.6 ms patched).
# It is built once with Go (CGO_ENABLED=0, pure-Go SQLite) into $SERVICES_CACHE.
# Data: one SQLite file per database under $SERVICES_DATA/mongo/.
# What v1 does not do: transactions; $group accumulators other than $sum/$count.

MONGO_ADDR="127.0.0.1:27017"
MONGO_FERRETDB_VERSION="v1.24.2"
MONGO_SRC="$REPO_ROOT/scripts/ferretdb"
MONGO_BIN="$SERVICES_CACHE/ferretdb-$MONGO_FERRETDB_VERSION/ferretdb"
MONGO_DATA="$SERVICES_DATA/mongo"

# _mongo_go: the Go toolchain to build with (PATH first, then the usual install dir).
_mongo_go() {
  if command -v go >/dev/null 2>&1; then command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then printf '/usr/local/go/bin/go\n'
  else return 1; fi
}

# _mongo_src_sum: fingerprint of the wrapper sources and patches, so an edit triggers a rebuild.
_mongo_src_sum() {
  cat "$MONGO_SRC/go.mod" "$MONGO_SRC/go.sum" "$MONGO_SRC/main.go" "$MONGO_SRC"/*.patch | sha256sum | cut -d' ' -f1
}

# _mongo_patched_tree MODDIR OUT: OUT/FerretDB = upstream module + scripts/ferretdb/*.patch,
# OUT/wrapper = the wrapper module with a replace directive pointing at it.
# (go build -overlay refuses files under GOMODCACHE, hence the copy; the cache stays untouched.)
_mongo_patched_tree() {
  local go=$1 moddir=$2 out=$3 p
  rm -rf "$out"; mkdir -p "$out/wrapper"
  cp -R "$moddir" "$out/FerretDB"; chmod -R u+w "$out/FerretDB"
  for p in "$MONGO_SRC"/*.patch; do
    patch --quiet --forward -d "$out/FerretDB" -p1 <"$p" || { log "mongo: $p does not apply to $moddir"; return 1; }
  done
  cp "$MONGO_SRC/go.mod" "$MONGO_SRC/go.sum" "$MONGO_SRC/main.go" "$out/wrapper/"
  (cd "$out/wrapper" && "$go" mod edit -replace "github.com/FerretDB/FerretDB=$out/FerretDB")
}

mongo_install() {
  local go sum stamp="$MONGO_BIN.src-sha256" tmp moddir work
  sum=$(_mongo_src_sum)
  if [[ -x $MONGO_BIN && -f $stamp && $(cat "$stamp") == "$sum" ]]; then
    return 0
  fi
  command -v patch >/dev/null || apt_install patch
  go=$(_mongo_go) || { log "mongo: Go is needed to build FerretDB (install Go >= 1.24, e.g. /usr/local/go)"; return 1; }
  log "mongo: building FerretDB $MONGO_FERRETDB_VERSION into $MONGO_BIN (first time takes a few minutes)"
  work="$(dirname "$MONGO_BIN")/build"
  mkdir -p "$work"
  tmp="$MONGO_BIN.tmp.$$"
  # -mod=mod with the committed go.sum: modules are verified against it and nothing is
  # written into the source tree; the binary goes to the cache, never next to the sources.
  if ! (
    set -e
    cd "$MONGO_SRC"
    export CGO_ENABLED=0 GOFLAGS=-mod=mod
    "$go" mod download github.com/FerretDB/FerretDB
    moddir=$("$go" list -m -f '{{.Dir}}' github.com/FerretDB/FerretDB)
    [[ -n $moddir ]]
    _mongo_patched_tree "$go" "$moddir" "$work"
    cd "$work/wrapper"
    "$go" build -trimpath -o "$tmp" .
  ); then
    rm -f "$tmp"; return 1
  fi
  mv -f "$tmp" "$MONGO_BIN"
  printf '%s\n' "$sum" >"$stamp"
}

mongo_start() {
  local data
  mkdir -p "$MONGO_DATA"
  data=$(cd "$MONGO_DATA" && pwd -P)   # FerretDB wants an absolute directory URI ending in '/'
  # setsid: the server outlives the terminal/process group of whoever ran `up`.
  local listen=(--listen-addr="$MONGO_ADDR")
  if [[ -n ${SECURE:-} ]]; then
    # TLS only (the plaintext listener off), and a client certificate of the stack's CA required:
    # FerretDB v1 has no users of its own to check (docs/security.md).
    listen=(--listen-tls="$MONGO_ADDR" --listen-tls-cert-file="$SERVICES_DIR/pki/mongo.pem"
            --listen-tls-key-file="$SERVICES_DIR/pki/mongo.key" --listen-tls-ca-file="$(secure_ca)")
  fi
  setsid nohup "$MONGO_BIN" \
    "${listen[@]}" \
    --sqlite-url="file:$data/" \
    --log-level="${MONGO_LOG_LEVEL:-info}" \
    </dev/null >>"$(logfile mongo)" 2>&1 &
  printf '%s\n' "$!" >"$(pidfile mongo)"
}

# _mongo_cmd COMMAND: send {COMMAND: 1, $db: "admin"} as a raw OP_MSG (python3 stdlib only:
# `up` runs before any virtualenv exists) and print the reply's top-level scalar fields as
# key=value lines. Fails unless the reply has ok == 1.
_mongo_cmd() {
  python3 - "$1" "${MONGO_ADDR%:*}" "${MONGO_ADDR##*:}" "${SECURE:+$SERVICES_DIR/pki}" <<'PY'
import socket, ssl, struct, sys

cmd, host, port, pki = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def cstr(s):
    return s.encode() + b"\0"

def bson(pairs):
    body = b""
    for k, v in pairs:
        if isinstance(v, int):
            body += b"\x10" + cstr(k) + struct.pack("<i", v)
        else:
            b = v.encode()
            body += b"\x02" + cstr(k) + struct.pack("<i", len(b) + 1) + b + b"\0"
    return struct.pack("<i", len(body) + 5) + body + b"\0"

FIXED = {1: 8, 7: 12, 9: 8, 10: 0, 17: 8, 18: 8, 19: 16, 6: 0, 127: 0, 255: 0}

def parse(doc):
    out, i = {}, 4
    while doc[i] != 0:
        t = doc[i]; j = doc.index(b"\0", i + 1); key = doc[i + 1:j].decode(); i = j + 1
        if t == 1:
            out[key] = struct.unpack_from("<d", doc, i)[0]; i += 8
        elif t in (2, 13, 14):
            n = struct.unpack_from("<i", doc, i)[0]; out[key] = doc[i + 4:i + 3 + n].decode(); i += 4 + n
        elif t in (3, 4):
            i += struct.unpack_from("<i", doc, i)[0]
        elif t == 5:
            i += 5 + struct.unpack_from("<i", doc, i)[0]
        elif t == 8:
            out[key] = bool(doc[i]); i += 1
        elif t == 16:
            out[key] = struct.unpack_from("<i", doc, i)[0]; i += 4
        elif t == 18:
            out[key] = struct.unpack_from("<q", doc, i)[0]; i += 8
        elif t in FIXED:
            i += FIXED[t]
        else:
            break  # unknown type: stop, keep what we have
    return out

def recv(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf

raw = socket.create_connection((host, port), timeout=3)
if pki:  # the secure stack: TLS, as the operator (its client certificate)
    context = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    context.load_cert_chain(f"{pki}/operator.pem", f"{pki}/operator.key")
    raw = context.wrap_socket(raw, server_hostname=host)
with raw as s:
    s.settimeout(3)
    payload = struct.pack("<I", 0) + b"\x00" + bson([(cmd, 1), ("$db", "admin")])
    s.sendall(struct.pack("<iiii", 16 + len(payload), 1, 0, 2013) + payload)
    length, _, _, opcode = struct.unpack("<iiii", recv(s, 16))
    body = recv(s, length - 16)
if opcode != 2013 or body[4] != 0:
    sys.exit("unexpected reply")
reply = parse(body[5:])
for k, v in reply.items():
    print(f"{k}={v}")
sys.exit(0 if reply.get("ok") == 1 else 1)
PY
}

mongo_ready() {
  port_open "${MONGO_ADDR##*:}" && _mongo_cmd ping >/dev/null
}

mongo_version() {
  local info fv mv
  info=$(_mongo_cmd buildInfo) || return 1
  fv=$(sed -n 's/^ferretdbVersion=//p' <<<"$info")
  mv=$(sed -n 's/^version=//p' <<<"$info")
  if [[ -n $fv ]]; then
    printf 'FerretDB %s (MongoDB wire protocol %s)\n' "${fv#v}" "$mv"
  else
    printf 'MongoDB %s\n' "$mv"
  fi
}

# reload-tls: FerretDB reads its certificate only at start: a restart (its clients reconnect).
mongo_reload_tls() { down_one mongo && up_one mongo; }
