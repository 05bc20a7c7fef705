#!/usr/bin/env bash
# Local dev/test stack for phoenix-resume-stream: one Kafka (KRaft, combined
# broker+controller, no ZooKeeper, no Docker) and one Arize Phoenix server.
#
#   scripts/stack.sh up       start what is missing; prints the two env lines
#   scripts/stack.sh down     stop everything this script started (idempotent)
#   scripts/stack.sh status   say what runs
#   scripts/stack.sh env      print $STACK_DIR/env
#   scripts/stack.sh restart-kafka   (re)start the broker on its data, running or dead
#   scripts/stack.sh restart-phoenix (re)start Phoenix on its data, running or dead
#
# `up` after a crash (processes gone, data left) starts them again on their data and ports;
# only `down`, or STACK_FRESH=1 for `up`, throws the data away.
#
# `up` prints exactly these lines on stdout (and writes them to $STACK_DIR/env):
#   KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:<port>
#   PHOENIX_HOST=http://127.0.0.1:<port>
# Everything else (progress, timings, errors) goes to stderr.
#
# Environment (all optional):
#   STACK_DIR               state dir (pids, data, logs, env)   [<repo>/.stack]
#   KAFKA_BOOTSTRAP_SERVERS if set: use this Kafka, start none
#   KAFKA_PORT              broker port, 0 = pick a free one    [9092]
#   KAFKA_VERSION           kafka_2.13 version resolved by Maven [4.1.1]
#   KAFKA_LIBS_DIR          jar cache root (<version>/ below)   [<repo>/.stack/kafka-libs]
#   KAFKA_HOME              unpacked Kafka release; its libs/ are used if mvn is absent
#   KAFKA_HEAP_OPTS         JVM heap flags                      [-Xms128m -Xmx512m]
#   KAFKA_START_TIMEOUT     seconds to wait for the broker      [90]
#   KAFKA_SASL_USERS        user:password[,...]: also a SASL_PLAINTEXT (PLAIN) listener; `up`
#                           then prints KAFKA_SASL_BOOTSTRAP_SERVERS=127.0.0.1:<port> too
#   KAFKA_MVN_ARGS          extra mvn args, e.g. "-o"           []
#   KAFKA_MVN_TIMEOUT       seconds allowed for the Maven step  [900]
#   JAVA_HOME               java is $JAVA_HOME/bin/java if set, else `java` on PATH
#   PHOENIX_HOST            if set: use this Phoenix, start none
#   PHOENIX_PORT            HTTP port, 0 = pick a free one      [6006]
#   PHOENIX_BIN             phoenix executable                  [phoenix]
#   PHOENIX_START_TIMEOUT   seconds to wait for Phoenix         [120]
#   STACK_STOP_GRACE        seconds between SIGTERM and SIGKILL on stop [20]
#   STACK_FRESH             1: `up` wipes data left by a stopped stack instead of reusing it
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_LIBS_DIR="${KAFKA_LIBS_DIR:-$ROOT/.stack/kafka-libs}"
KAFKA_POM="$ROOT/scripts/kafka/pom.xml"
KAFKA_LOG4J="$ROOT/scripts/kafka/log4j2.properties"
LOG_DIR="$STACK_DIR/logs"
KAFKA_LOG="$LOG_DIR/kafka.log"
PHOENIX_LOG="$LOG_DIR/phoenix.log"
KAFKA_PID_FILE="$STACK_DIR/kafka.pid"
PHOENIX_PID_FILE="$STACK_DIR/phoenix.pid"
KAFKA_ADDR_FILE="$STACK_DIR/kafka.addr"      # "KAFKA_BOOTSTRAP_SERVERS=..." of our broker
PHOENIX_ADDR_FILE="$STACK_DIR/phoenix.addr"  # "PHOENIX_HOST=..." of our Phoenix
ENV_FILE="$STACK_DIR/env"
KAFKA_DATA="$STACK_DIR/kafka-data"
STOP_GRACE="${STACK_STOP_GRACE:-20}"  # seconds between SIGTERM and SIGKILL

log() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

now_ms() { date +%s%3N; }
elapsed() { # start_ms -> "12.3"
  local d=$(( $(now_ms) - $1 ))
  printf '%d.%d' $((d / 1000)) $(((d % 1000) / 100))
}

# --- python helper (stdlib only) -------------------------------------------
PY=""
find_python() {
  [[ -n "$PY" ]] && return 0
  local c
  for c in python3 python; do
    if command -v "$c" >/dev/null 2>&1; then PY="$(command -v "$c")"; return 0; fi
  done
  die "python3 is needed (free-port selection / port checks) but was not found on PATH"
}

free_port() { # prints a currently free 127.0.0.1 TCP port
  find_python
  "$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_is_free() { # port -> 0 if 127.0.0.1:port can be bound right now
  find_python
  "$PY" -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()' "$1"
}

resolve_port() { # name requested_port env_name -> prints port (free) or dies
  local name="$1" req="$2" var="$3"
  [[ "$req" =~ ^[0-9]+$ ]] || die "$var must be a port number (or 0 for any free port), got '$req'"
  if [[ "$req" == 0 ]]; then free_port; return 0; fi
  port_is_free "$req" || die "port $req is in use; set $var to another port, or $var=0 for any free port ($name)"
  echo "$req"
}

tcp_open() { # port -> 0 if something accepts on 127.0.0.1:port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# --- process-group handling -------------------------------------------------
# Daemons are started with setsid, so pid == pgid == sid and `kill -- -pid`
# reaches every child. Linux never reuses a pid while it is still some group's
# pgid, so "group $pid alive" is reliable as long as anything of ours lives.
group_alive() { kill -0 -- "-$1" 2>/dev/null; }
pid_alive() { kill -0 "$1" 2>/dev/null; }

read_pid() { # pidfile -> pid on stdout, or nothing
  local f="$1" p=""
  [[ -f "$f" ]] && p="$(tr -dc '0-9' <"$f" || true)"
  [[ -n "$p" ]] && echo "$p"
  return 0
}

running_pid() { # pidfile marker -> prints pid if its group is alive and looks like ours
  local f="$1" marker="$2" p
  p="$(read_pid "$f")"
  [[ -n "$p" ]] || return 1
  group_alive "$p" || return 1
  if pid_alive "$p" && [[ -r "/proc/$p/cmdline" ]]; then
    # leader still there: make sure the pid was not recycled for something else
    tr '\0' ' ' <"/proc/$p/cmdline" | grep -q -- "$marker" || return 1
  fi
  echo "$p"
}

stop_group() { # name pid
  local name="$1" p="$2" i
  group_alive "$p" || return 0
  log "stopping $name (pgid $p)"
  kill -TERM -- "-$p" 2>/dev/null || true
  for ((i = 0; i < STOP_GRACE * 10; i++)); do
    group_alive "$p" || return 0
    sleep 0.1
  done
  log "$name did not exit within ${STOP_GRACE}s; sending SIGKILL"
  kill -KILL -- "-$p" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    group_alive "$p" || return 0
    sleep 0.1
  done
  log "warning: process group $p ($name) still alive after SIGKILL"
}

show_log_tail() { # file
  if [[ -f "$1" ]]; then
    printf -- '----- last 30 lines of %s -----\n' "$1" >&2
    tail -n 30 "$1" >&2 || true
    printf -- '----- end of %s -----\n' "$1" >&2
  fi
}

# Components started by *this* invocation of `up`; torn down if `up` fails.
STARTED_KAFKA=""
STARTED_PHOENIX=""
FORMATTED_KAFKA=""  # this invocation created the broker's data (a failed `up` may delete it)
CREATED_PHOENIX=""  # likewise for Phoenix's working dir
KAFKA_LINE=""
PHOENIX_LINE=""
UP_OK=0
cleanup_failed_up() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ "$UP_OK" != 1 ]]; then
    if [[ -n "$STARTED_PHOENIX" ]]; then
      stop_group phoenix "$STARTED_PHOENIX"
      rm -f "$PHOENIX_PID_FILE" "$PHOENIX_ADDR_FILE"
      if [[ -n "$CREATED_PHOENIX" ]]; then rm -rf "$CREATED_PHOENIX"; fi
    fi
    if [[ -n "$STARTED_KAFKA" ]]; then
      stop_group kafka "$STARTED_KAFKA"
      rm -f "$KAFKA_PID_FILE" "$KAFKA_ADDR_FILE"
      if [[ -n "$FORMATTED_KAFKA" ]]; then rm -rf "$KAFKA_DATA"; fi
    fi
    [[ $rc == 0 ]] && rc=1
  fi
  exit "$rc"
}

# --- Kafka ------------------------------------------------------------------
java_bin() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    echo "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    command -v java
  else
    die "java not found (need JDK/JRE 17+): install it or set JAVA_HOME"
  fi
}

kafka_libs() { # prints a directory of jars for `java -cp "<dir>/*"`
  local dest="$KAFKA_LIBS_DIR/$KAFKA_VERSION"
  if [[ -f "$dest/.complete" ]]; then
    echo "$dest"; return 0
  fi
  if command -v mvn >/dev/null 2>&1; then
    mkdir -p "$KAFKA_LIBS_DIR" "$LOG_DIR"
    local tmp="$KAFKA_LIBS_DIR/.tmp-$KAFKA_VERSION-$$"
    local mvn_log="$LOG_DIR/maven.log"
    local t0; t0=$(now_ms)
    rm -rf "$tmp"
    local old
    for old in "$KAFKA_LIBS_DIR"/.tmp-*-[0-9]*; do   # left behind by a killed run
      [[ -d "$old" ]] && ! pid_alive "${old##*-}" && rm -rf "$old"
    done
    log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION with Maven into $dest (log: $mvn_log)"
    local -a to=()
    command -v timeout >/dev/null 2>&1 && to=(timeout "${KAFKA_MVN_TIMEOUT:-900}")
    # shellcheck disable=SC2086  # KAFKA_MVN_ARGS is a deliberately word-split list
    if ! "${to[@]}" mvn -B -q -Dstyle.color=never -f "$KAFKA_POM" ${KAFKA_MVN_ARGS:-} \
          -Dkafka.version="$KAFKA_VERSION" \
          -Dkafka.libs.dir="$tmp/libs" \
          -Dkafka.build.dir="$tmp/build" \
          dependency:copy-dependencies >"$mvn_log" 2>&1 </dev/null; then
      rm -rf "$tmp"
      if [[ -n "${KAFKA_HOME:-}" ]] && compgen -G "$KAFKA_HOME/libs/kafka_2.13-*.jar" >/dev/null; then
        log "Maven failed (see $mvn_log); falling back to KAFKA_HOME=$KAFKA_HOME/libs"
        echo "$KAFKA_HOME/libs"; return 0
      fi
      show_log_tail "$mvn_log"
      die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (log: $mvn_log). Check access to Maven Central (offline with a primed ~/.m2: KAFKA_MVN_ARGS=-o), pick another KAFKA_VERSION, set KAFKA_HOME to an unpacked Kafka 4.x release, or set KAFKA_BOOTSTRAP_SERVERS"
    fi
    if [[ ! -f "$tmp/libs/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
      rm -rf "$tmp"
      die "Maven finished but $tmp/libs/kafka_2.13-$KAFKA_VERSION.jar is missing (see $mvn_log)"
    fi
    rm -rf "$tmp/build"
    date -u +%FT%TZ >"$tmp/libs/.complete"
    # Atomic publish; if a concurrent `up` won the race, keep theirs.
    rm -rf "$dest.stale-$$"
    if [[ -d "$dest" && ! -f "$dest/.complete" ]]; then
      mv -T "$dest" "$dest.stale-$$" 2>/dev/null || true   # interrupted earlier copy
      rm -rf "$dest.stale-$$"
    fi
    mv -T "$tmp/libs" "$dest" 2>/dev/null || true
    rm -rf "$tmp"
    [[ -f "$dest/.complete" ]] || die "could not publish Kafka jars into $dest"
    log "kafka jars ready in $(elapsed "$t0") s ($(find "$dest" -name '*.jar' | wc -l) jars)"
    echo "$dest"; return 0
  fi
  if [[ -n "${KAFKA_HOME:-}" ]]; then
    compgen -G "$KAFKA_HOME/libs/kafka_2.13-*.jar" >/dev/null \
      || die "KAFKA_HOME=$KAFKA_HOME has no libs/kafka_2.13-*.jar (expected an unpacked Apache Kafka 4.x release)"
    echo "$KAFKA_HOME/libs"; return 0
  fi
  die "cannot get Kafka: mvn is not installed and KAFKA_HOME is not set. Install Maven (jars are then fetched from Maven Central), or set KAFKA_HOME to an unpacked Apache Kafka 4.x release, or point KAFKA_BOOTSTRAP_SERVERS at a running broker"
}

kafka_cluster_id() { # Kafka Uuid: 16 random bytes, base64url without padding, not starting with '-'
  find_python
  "$PY" -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s); break'
}

kafka_jvm() { # java libs -> fills the caller's array `jvm` with the JVM command line
  jvm=(
    "$1" ${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}
    -XX:+UseG1GC -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$KAFKA_LOG4J"
    -Dkafka.logs.file="$KAFKA_LOG"
    -Dkafka.logs.dir="$LOG_DIR"
    -cp "$2/*"
  )
}

launch_kafka() { # props port jvm... : start the broker on formatted storage and wait for it
  local props="$1" port="$2"; shift 2
  local -a jvm=("$@")
  log "starting kafka on 127.0.0.1:$port (data $KAFKA_DATA, log $KAFKA_LOG)"
  # A restart appends to the log of the broker before it: look for "started" only in what this
  # one writes, or the old line (and a port the new broker opens before it serves) pass for ready.
  local from=0
  [[ -f "$KAFKA_LOG" ]] && from="$(stat -c %s "$KAFKA_LOG")"
  setsid "${jvm[@]}" kafka.Kafka "$props" >>"$KAFKA_LOG" 2>&1 </dev/null &
  local pid=$!
  STARTED_KAFKA="$pid"
  echo "$pid" >"$KAFKA_PID_FILE"

  local limit="${KAFKA_START_TIMEOUT:-90}"
  [[ "$limit" =~ ^[0-9]+$ ]] || die "KAFKA_START_TIMEOUT must be whole seconds, got '$limit'"
  local deadline=$(( $(now_ms) + limit * 1000 ))
  while :; do
    if ! pid_alive "$pid"; then
      show_log_tail "$KAFKA_LOG"
      die "kafka exited during startup; log: $KAFKA_LOG"
    fi
    if tail -c +"$((from + 1))" "$KAFKA_LOG" 2>/dev/null | grep -q 'Kafka Server started' \
        && tcp_open "$port"; then
      break
    fi
    if (( $(now_ms) >= deadline )); then
      stop_group kafka "$pid"
      printf 'kafka did not come up within %s s; log: %s\n' "$limit" "$KAFKA_LOG" >&2
      show_log_tail "$KAFKA_LOG"
      exit 1
    fi
    sleep 0.2
  done
}

kafka_data_ok() { # 0 if $KAFKA_DATA holds a formatted broker we can start again
  [[ -f "$KAFKA_DATA/server.properties" && -f "$KAFKA_DATA/port" \
     && -f "$KAFKA_DATA/logs/meta.properties" ]]
}

restart_kafka() { # stop the broker if it runs, and start it on the same storage and port
  kafka_data_ok || die "no broker data in $KAFKA_DATA to start again (run: scripts/stack.sh up)"
  local p
  if p="$(running_pid "$KAFKA_PID_FILE" kafka.Kafka)"; then
    stop_group kafka "$p"
  else
    log "kafka is not running; starting it on its data"
  fi
  local port; port="$(cat "$KAFKA_DATA/port")"
  mkdir -p "$LOG_DIR"
  local java; java="$(java_bin)"
  local libs; libs="$(kafka_libs)"
  local -a jvm
  kafka_jvm "$java" "$libs"
  local t0; t0=$(now_ms)
  launch_kafka "$KAFKA_DATA/server.properties" "$port" "${jvm[@]}"
  [[ -f "$KAFKA_ADDR_FILE" ]] || echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port" >"$KAFKA_ADDR_FILE"
  KAFKA_LINE="$(cat "$KAFKA_ADDR_FILE")"
  log "kafka restarted in $(elapsed "$t0") s"
}

start_kafka() { # sets KAFKA_LINE="KAFKA_BOOTSTRAP_SERVERS=..." (runs in the main shell: no $(...))
  local p
  if p="$(running_pid "$KAFKA_PID_FILE" kafka.Kafka)"; then
    log "kafka already running (pid $p); reusing it"
    KAFKA_LINE="$(cat "$KAFKA_ADDR_FILE")"; return 0
  fi
  if [[ "${STACK_FRESH:-}" != 1 ]] && kafka_data_ok; then
    # A stack that stopped without `down` (a crash, a reboot): its topics and offsets stay.
    log "kafka is not running but its data is in $KAFKA_DATA: starting it on that (STACK_FRESH=1 starts afresh)"
    restart_kafka
    return 0
  fi
  rm -f "$KAFKA_PID_FILE" "$KAFKA_ADDR_FILE"

  local t0; t0=$(now_ms)
  local java; java="$(java_bin)"
  local port; port="$(resolve_port kafka "${KAFKA_PORT:-9092}" KAFKA_PORT)"
  local libs; libs="$(kafka_libs)"
  local cport
  cport="$(free_port)"
  while [[ "$cport" == "$port" ]]; do cport="$(free_port)"; done
  # Optional second listener with SASL/PLAIN, for testing authenticated clients.
  local sport="" listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
  local advertised="PLAINTEXT://127.0.0.1:$port" protomap="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  local sasl_props=""
  if [[ -n "${KAFKA_SASL_USERS:-}" ]]; then
    sport="$(free_port)"
    while [[ "$sport" == "$port" || "$sport" == "$cport" ]]; do sport="$(free_port)"; done
    listeners="$listeners,SASL_PLAINTEXT://127.0.0.1:$sport"
    advertised="$advertised,SASL_PLAINTEXT://127.0.0.1:$sport"
    protomap="$protomap,SASL_PLAINTEXT:SASL_PLAINTEXT"
    local users="" pair
    local -a pairs
    IFS=',' read -ra pairs <<<"$KAFKA_SASL_USERS"
    for pair in "${pairs[@]}"; do
      [[ "$pair" == *:* ]] || die "KAFKA_SASL_USERS must be user:password[,user:password]"
      users="$users user_${pair%%:*}=\"${pair#*:}\""
    done
    local first="${pairs[0]}"
    sasl_props="sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"${first%%:*}\" password=\"${first#*:}\"$users;"
  fi
  local t1; t1=$(now_ms)

  rm -rf "$KAFKA_DATA"
  FORMATTED_KAFKA=1
  mkdir -p "$KAFKA_DATA/logs" "$LOG_DIR"
  [[ -f "$KAFKA_LOG" ]] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.prev"
  : >"$KAFKA_LOG"
  local props="$KAFKA_DATA/server.properties"
  cat >"$props" <<EOF
# generated by scripts/stack.sh
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protomap
log.dirs=$KAFKA_DATA/logs
num.partitions=8
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Room for oversized messages, so tests can check what an agent does with one.
message.max.bytes=16777216
$sasl_props
EOF
  local -a jvm
  kafka_jvm "$java" "$libs"
  local cid; cid="$(kafka_cluster_id)"
  if ! timeout 120 "${jvm[@]}" kafka.tools.StorageTool format -t "$cid" -c "$props" \
        >>"$KAFKA_LOG" 2>&1 </dev/null; then
    show_log_tail "$KAFKA_LOG"
    die "formatting KRaft storage in $KAFKA_DATA failed; log: $KAFKA_LOG"
  fi

  echo "$port" >"$KAFKA_DATA/port"
  launch_kafka "$props" "$port" "${jvm[@]}"
  echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port" >"$KAFKA_ADDR_FILE"
  if [[ -n "$sport" ]]; then echo "KAFKA_SASL_BOOTSTRAP_SERVERS=127.0.0.1:$sport" >>"$KAFKA_ADDR_FILE"; fi
  log "kafka ready in $(elapsed "$t0") s (format+start $(elapsed "$t1") s, pid $STARTED_KAFKA, log $KAFKA_LOG)"
  KAFKA_LINE="$(cat "$KAFKA_ADDR_FILE")"
}

# --- Phoenix ----------------------------------------------------------------
phoenix_dir() { # prints the working dir a stopped Phoenix left behind, if exactly one
  local dirs=("$STACK_DIR"/phoenix-[0-9]*)
  [[ ${#dirs[@]} == 1 && -d "${dirs[0]}" ]] && echo "${dirs[0]}"
}

start_phoenix() { # sets PHOENIX_LINE="PHOENIX_HOST=..." (runs in the main shell: no $(...))
  local p
  if p="$(running_pid "$PHOENIX_PID_FILE" phoenix)"; then
    log "phoenix already running (pid $p); reusing it"
    PHOENIX_LINE="$(cat "$PHOENIX_ADDR_FILE")"; return 0
  fi
  rm -f "$PHOENIX_PID_FILE" "$PHOENIX_ADDR_FILE"
  local wd=""
  if [[ "${STACK_FRESH:-}" != 1 ]] && wd="$(phoenix_dir)"; then
    log "phoenix is not running but its data is in $wd: starting it on that (STACK_FRESH=1 starts afresh)"
    launch_phoenix "${wd##*-}" "$wd"
    return 0
  fi
  local port; port="$(resolve_port phoenix "${PHOENIX_PORT:-6006}" PHOENIX_PORT)"
  rm -rf "$STACK_DIR"/phoenix-[0-9]*
  CREATED_PHOENIX="$STACK_DIR/phoenix-$port"
  launch_phoenix "$port" "$CREATED_PHOENIX"
}

restart_phoenix() { # stop Phoenix if it runs, and start it on the same working dir and port
  local wd
  wd="$(phoenix_dir)" || die "no Phoenix data in $STACK_DIR to start again (run: scripts/stack.sh up)"
  local p
  if p="$(running_pid "$PHOENIX_PID_FILE" phoenix)"; then
    stop_group phoenix "$p"
  else
    log "phoenix is not running; starting it on its data"
  fi
  rm -f "$PHOENIX_PID_FILE"
  launch_phoenix "${wd##*-}" "$wd"
}

launch_phoenix() { # port working-dir: start Phoenix there and wait for it; sets PHOENIX_LINE
  local port="$1" wd="$2"
  local t0; t0=$(now_ms)
  local bin="${PHOENIX_BIN:-phoenix}"
  command -v "$bin" >/dev/null 2>&1 \
    || die "phoenix executable '$bin' not found: install arize-phoenix (e.g. in the project venv and put its bin/ on PATH), set PHOENIX_BIN, or point PHOENIX_HOST at a running Phoenix"
  command -v curl >/dev/null 2>&1 || die "curl is needed to wait for Phoenix but was not found"
  local gport; gport="$(free_port)"
  while [[ "$gport" == "$port" ]]; do gport="$(free_port)"; done

  mkdir -p "$wd" "$LOG_DIR"
  [[ -f "$PHOENIX_LOG" ]] && mv -f "$PHOENIX_LOG" "$PHOENIX_LOG.prev"
  : >"$PHOENIX_LOG"

  log "starting phoenix on 127.0.0.1:$port (grpc 127.0.0.1:$gport, working dir $wd)"
  # Fresh SQLite in the working dir: drop any database settings inherited from the shell.
  setsid env -u PHOENIX_SQL_DATABASE_URL -u PHOENIX_POSTGRES_HOST \
      -u PHOENIX_SQL_DATABASE_SCHEMA \
      PHOENIX_WORKING_DIR="$wd" PHOENIX_HOST=127.0.0.1 PHOENIX_PORT="$port" \
      PHOENIX_GRPC_PORT="$gport" PHOENIX_TELEMETRY_ENABLED=false \
      PYTHONUNBUFFERED=1 \
      "$bin" serve >>"$PHOENIX_LOG" 2>&1 </dev/null &
  local pid=$!
  STARTED_PHOENIX="$pid"
  echo "$pid" >"$PHOENIX_PID_FILE"

  local limit="${PHOENIX_START_TIMEOUT:-120}"
  [[ "$limit" =~ ^[0-9]+$ ]] || die "PHOENIX_START_TIMEOUT must be whole seconds, got '$limit'"
  local deadline=$(( $(now_ms) + limit * 1000 ))
  local url="http://127.0.0.1:$port/arize_phoenix_version"
  while :; do
    if ! pid_alive "$pid"; then
      show_log_tail "$PHOENIX_LOG"
      die "phoenix exited during startup; log: $PHOENIX_LOG"
    fi
    if curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null; then
      break
    fi
    if (( $(now_ms) >= deadline )); then
      stop_group phoenix "$pid"
      printf 'phoenix did not come up within %s s; log: %s\n' "$limit" "$PHOENIX_LOG" >&2
      show_log_tail "$PHOENIX_LOG"
      exit 1
    fi
    sleep 0.3
  done
  echo "PHOENIX_HOST=http://127.0.0.1:$port" >"$PHOENIX_ADDR_FILE"
  log "phoenix ready in $(elapsed "$t0") s (version $(curl -fsS --max-time 2 "$url" 2>/dev/null || echo '?'), pid $pid, log $PHOENIX_LOG)"
  PHOENIX_LINE="$(cat "$PHOENIX_ADDR_FILE")"
}

# --- subcommands --------------------------------------------------------------
cmd_up() {
  mkdir -p "$STACK_DIR" "$LOG_DIR"
  trap cleanup_failed_up EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  local t0; t0=$(now_ms)
  if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
    log "KAFKA_BOOTSTRAP_SERVERS is set; not starting kafka"
    KAFKA_LINE="KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS"
  else
    start_kafka
  fi
  if [[ -n "${PHOENIX_HOST:-}" ]]; then
    log "PHOENIX_HOST is set; not starting phoenix"
    PHOENIX_LINE="PHOENIX_HOST=$PHOENIX_HOST"
  else
    start_phoenix
  fi
  printf '%s\n%s\n' "$KAFKA_LINE" "$PHOENIX_LINE" >"$ENV_FILE.tmp.$$"
  mv -f "$ENV_FILE.tmp.$$" "$ENV_FILE"
  UP_OK=1
  log "stack up in $(elapsed "$t0") s (env: $ENV_FILE)"
  printf '%s\n%s\n' "$KAFKA_LINE" "$PHOENIX_LINE"
}

cmd_down() {
  local p
  # running_pid checks the leader's cmdline, so a stale pid file (e.g. after a
  # reboot, pid recycled) never makes us kill somebody else's process group.
  if p="$(running_pid "$PHOENIX_PID_FILE" phoenix)"; then stop_group phoenix "$p"; fi
  if p="$(running_pid "$KAFKA_PID_FILE" kafka.Kafka)"; then stop_group kafka "$p"; fi
  rm -f "$PHOENIX_PID_FILE" "$KAFKA_PID_FILE" "$PHOENIX_ADDR_FILE" "$KAFKA_ADDR_FILE" "$ENV_FILE"
  rm -rf "$KAFKA_DATA" "$STACK_DIR"/phoenix-[0-9]*
  log "down (kept logs in $LOG_DIR and jar cache in $KAFKA_LIBS_DIR)"
}

cmd_status() {
  local rc=0 p
  if p="$(running_pid "$KAFKA_PID_FILE" kafka.Kafka)"; then
    echo "kafka: running (pid $p) $(cat "$KAFKA_ADDR_FILE" 2>/dev/null || echo '(starting)') log=$KAFKA_LOG"
  else
    echo "kafka: not running"; rc=1
  fi
  if p="$(running_pid "$PHOENIX_PID_FILE" phoenix)"; then
    echo "phoenix: running (pid $p) $(cat "$PHOENIX_ADDR_FILE" 2>/dev/null || echo '(starting)') log=$PHOENIX_LOG"
  else
    echo "phoenix: not running"; rc=1
  fi
  [[ -f "$ENV_FILE" ]] && echo "env file: $ENV_FILE"
  return "$rc"
}

cmd_env() {
  [[ -f "$ENV_FILE" ]] || die "no $ENV_FILE (run: scripts/stack.sh up)"
  cat "$ENV_FILE"
}

usage() {
  sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  restart-kafka) restart_kafka ;;
  restart-phoenix) restart_phoenix ;;
  -h | --help | help) usage ;;
  *) usage; exit 2 ;;
esac
