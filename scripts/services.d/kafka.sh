# shellcheck shell=bash
# Kafka module for scripts/services (sourced): an Apache Kafka 4.x broker, single node, KRaft
# (broker+controller in one JVM), on 127.0.0.1:9092 (controller quorum on 127.0.0.1:9093).
#
# No tarball and no Docker: the broker's jars come from Maven Central through scripts/kafka/pom.xml
# and are cached in $SERVICES_CACHE/kafka-$KAFKA_VERSION/lib (a marker holding the pom's hash says
# the copy is complete, so a warm `up` never runs Maven). Data (KRaft metadata + topic logs) lives
# in $SERVICES_DATA/kafka and survives `down`; it is formatted once, on the first start.
#
# Overridable: KAFKA_VERSION, KAFKA_HEAP_OPTS, KAFKA_JVM_OPTS, JAVA_HOME.

KAFKA_ADDR="127.0.0.1:9092"
# shellcheck disable=SC2034
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
: "${KAFKA_VERSION:=4.4.0}"
: "${KAFKA_HEAP_OPTS:=-Xms128m -Xmx512m}"

KAFKA_SRC="$REPO_ROOT/scripts/kafka"
KAFKA_LIB="$SERVICES_CACHE/kafka-$KAFKA_VERSION/lib"
KAFKA_DATA="$SERVICES_DATA/kafka"

_kafka_java() { if [[ -n ${JAVA_HOME:-} ]]; then printf '%s/bin/java' "$JAVA_HOME"; else printf 'java'; fi; }
# Every JVM here runs with -XX:-UsePerfData: its /tmp/hsperfdata_USER/PID file is shared by every PID
# namespace on the machine (scripts/in-netns), and two JVMs of the same PID in two namespaces
# collide on it (the second one warns, first, on stderr). Nothing here reads those files (jps, jstat).

# _kafka_run_java HEAP_OPTS CLASS ARGS...: run a Kafka tool main class with the cached jars and our log4j2 config.
_kafka_run_java() {
  local heap=$1; shift
  # shellcheck disable=SC2086  # heap/JVM options are deliberately word-split
  "$(_kafka_java)" $heap -XX:-UsePerfData ${KAFKA_JVM_OPTS:-} \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties" \
    -cp "$KAFKA_LIB/*" "$@"
}

_kafka_check_java() {
  local java out major
  java=$(_kafka_java)
  command -v "$java" >/dev/null 2>&1 || { log "kafka: '$java' not found; Kafka $KAFKA_VERSION needs Java 17+"; return 1; }
  out=$("$java" -XX:-UsePerfData -version 2>&1 | grep -m 1 ' version "' || true)
  major=$(sed -E 's/.*version "([0-9]+)(\.[0-9]+)?.*/\1/' <<<"$out")
  if [[ $major == 1 ]]; then major=8; fi
  if ! [[ $major =~ ^[0-9]+$ ]] || (( major < 17 )); then
    log "kafka: Kafka $KAFKA_VERSION needs Java 17+, found: $out"; return 1
  fi
}

kafka_install() {
  local want marker=$KAFKA_LIB/.complete tmp ilog
  want=$(sha256sum "$KAFKA_SRC/pom.xml" | cut -c1-64)
  if [[ -f $marker && $(cat "$marker") == "$want" ]]; then return 0; fi

  _kafka_check_java || return 1
  command -v mvn >/dev/null 2>&1 || { log "kafka: 'mvn' not found; it is needed once to fetch the Kafka jars"; return 1; }
  ilog="$SERVICES_LOGS/kafka-install.log"
  tmp="$SERVICES_CACHE/kafka-$KAFKA_VERSION/lib.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  log "kafka: fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIB (once; log: $ilog)"
  if ! mvn -q -B -f "$KAFKA_SRC/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$ilog" 2>&1; then
    log "kafka: Maven could not fetch the jars; last lines of $ilog:"
    tail -n 20 "$ilog" >&2
    rm -rf "$tmp"; return 1
  fi
  if [[ ! -f $tmp/kafka_2.13-$KAFKA_VERSION.jar || ! -f $tmp/log4j-core-$(sed -n 's:.*<log4j.version>\(.*\)</log4j.version>.*:\1:p' "$KAFKA_SRC/pom.xml").jar ]]; then
    log "kafka: Maven finished but kafka_2.13-$KAFKA_VERSION.jar or log4j-core is missing from $tmp (see $ilog)"
    rm -rf "$tmp"; return 1
  fi
  printf '%s\n' "$want" >"$tmp/.complete"
  rm -rf "$KAFKA_LIB"
  mv "$tmp" "$KAFKA_LIB"
}

kafka_start() {
  local props="$KAFKA_DATA/server.properties" logdir="$KAFKA_DATA/logs" cid lf pf i
  lf=$(logfile kafka); pf=$(pidfile kafka)
  [[ -f $KAFKA_LIB/.complete ]] || { log "kafka: jars missing in $KAFKA_LIB; run kafka_install first"; return 1; }
  _kafka_check_java || return 1
  for i in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$i"; then
      log "kafka: 127.0.0.1:$i is already taken by another process (not a Kafka broker answering on $KAFKA_ADDR); free it first"
      return 1
    fi
  done
  mkdir -p "$logdir"
  # Keep the previous run's log for post-mortems; readiness greps only the current one.
  [[ -s $lf ]] && mv -f "$lf" "$lf.1"
  : >"$lf"

  sed "s|@KAFKA_LOG_DIR@|$logdir|g" "$KAFKA_SRC/server.properties" >"$props"
  if [[ -n ${SECURE:-} ]]; then
    kafka_secure_properties 127.0.0.1 kafka >>"$props"
    # the controller's port joins the ports to check below, and the brokers' internal one
    port_open 9094 && { log "kafka: 127.0.0.1:9094 is already taken by another process; free it first"; return 1; }
  fi

  # The cluster id is generated once and kept next to the data; StorageTool also logs to stdout,
  # so keep only the id line (22 URL-safe base64 characters).
  if ! grep -Eqx '[A-Za-z0-9_-]{22}' "$KAFKA_DATA/cluster-id" 2>/dev/null; then
    cid=$(_kafka_run_java "-Xmx128m" kafka.tools.StorageTool random-uuid 2>>"$lf" \
            | grep -Ex '[A-Za-z0-9_-]{22}' | tail -n 1) || true
    [[ -n $cid ]] || { log "kafka: could not generate a cluster id (see $lf)"; return 1; }
    printf '%s\n' "$cid" >"$KAFKA_DATA/cluster-id"
  fi
  cid=$(cat "$KAFKA_DATA/cluster-id")
  if [[ ! -f $logdir/meta.properties ]]; then
    # Static controller.quorum.voters, so no --standalone.
    if ! _kafka_run_java "-Xmx256m" kafka.tools.StorageTool format -t "$cid" -c "$props" >>"$lf" 2>&1; then
      log "kafka: formatting $logdir failed; last lines of $lf:"; tail -n 20 "$lf" >&2; return 1
    fi
  fi

  rm -f "$pf"
  # The inner shell records its own PID and then execs java, so the PID file holds the JVM itself.
  # setsid detaches it from our session/terminal so it outlives the calling shell.
  # shellcheck disable=SC2016  # $$ and $1 are for the inner shell
  # shellcheck disable=SC2086  # heap/JVM options are deliberately word-split
  setsid nohup bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-launch "$pf" \
    "$(_kafka_java)" ${KAFKA_HEAP_OPTS} -XX:-UsePerfData -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent ${KAFKA_JVM_OPTS:-} \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties" \
    -Dlog4j2.shutdownHookEnabled=false \
    -cp "$KAFKA_LIB/*" kafka.Kafka "$props" \
    >>"$lf" 2>&1 </dev/null &
  for _ in $(seq 1 50); do [[ -s $pf ]] && break; sleep 0.1; done
  [[ -s $pf ]] || { log "kafka: the broker did not record its PID in $pf (see $lf)"; return 1; }
}

# _kafka_api_versions [HOST] [PORT]: send a Kafka ApiVersions v0 request over /dev/tcp (default
# 127.0.0.1:$KAFKA_PORT) and require a well-formed answer (our correlation id, error_code 0). A
# real protocol round trip, not just an open port.
_kafka_api_versions() {
  local hex host=${1:-127.0.0.1} port=${2:-$KAFKA_PORT}
  # size=10 | api_key=18 (ApiVersions) | api_version=0 | correlation_id=7 | client_id=null
  hex=$(
    exec 3<>"/dev/tcp/$host/$port" || exit 1
    printf '\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x07\xff\xff' >&3
    timeout 5 head -c 10 <&3 | od -An -tx1 | tr -d ' \n'
  ) 2>/dev/null || return 1
  # response: size(4) correlation_id(4)=7 error_code(2)=0
  [[ ${hex:8:12} == 000000070000 ]]
}

# _kafka_api_versions_tls [HOST] [PORT]: the same round trip over TLS, the broker's certificate
# checked against the secure stack's CA (ApiVersions is answered before authentication).
_kafka_api_versions_tls() {
  python3 - "${1:-127.0.0.1}" "${2:-$KAFKA_PORT}" "$(secure_ca)" <<'PY'
import socket, ssl, struct, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
context = ssl.create_default_context(cafile=ca)
with socket.create_connection((host, port), timeout=5) as raw:
    with context.wrap_socket(raw, server_hostname=host) as s:
        s.sendall(struct.pack(">ihhih", 10, 18, 0, 7, -1))
        head = s.makefile("rb").read(10)
sys.exit(0 if len(head) == 10 and struct.unpack(">iih", head)[1:] == (7, 0) else 1)
PY
}

# _kafka_answers HOST: the broker at HOST:9092 answers ApiVersions (over TLS on the secure stack).
_kafka_answers() {
  if [[ -n ${SECURE:-} ]]; then _kafka_api_versions_tls "$1" 9092; else _kafka_api_versions "$1" 9092; fi
}

kafka_ready() {
  _kafka_answers 127.0.0.1 || return 1
  # For a broker we started, also wait for the end of startup (broker unfenced, coordinators loaded).
  if pid_alive kafka; then
    grep -q 'Kafka Server started' "$(logfile kafka)" 2>/dev/null || return 1
  fi
}

kafka_version() {
  local v
  v=$(grep -ohE 'Kafka version: [0-9][^ ]*' "$(logfile kafka)" 2>/dev/null | tail -n 1 | cut -d' ' -f3)
  printf 'Kafka %s\n' "${v:-$KAFKA_VERSION}"
}

# kafka_secure_properties HOST NAME: the secure listeners of the node at HOST, whose certificate
# is NAME's (scripts/kafka/server-secure.properties).
kafka_secure_properties() {
  sed -e "s|@KAFKA_PKI@|$SERVICES_DIR/pki|g" -e "s|@HOST@|$1|g" -e "s|@NAME@|$2|g" \
    "$KAFKA_SRC/server-secure.properties"
}

# After every `up` of the secure stack: each principal's SCRAM credentials and ACLs.
kafka_provision() {
  [[ -n ${SECURE:-} ]] || return 0
  secure_provision kafka
}

# reload-tls: every broker reads its certificate file (pki/NAME.bundle.pem, which `up` and
# `reload-tls --renew` rewrite) again, for its client listener's new connections.
kafka_reload_tls() { secure_provision kafka-reload-tls; }
