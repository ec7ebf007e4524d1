# bench/lib.sh: shell shared by bench/run's loads (sourced, not run). Starts and samples
# the systems under test on loopback: threering (release binary), Kamailio (stateful proxy)
# and rtpengine (userspace media relay with recording). Every process started here is
# remembered in `pids` and stopped by its own PID in `bench_cleanup`.
#
# Needs: $work (a scratch directory), $root (the checkout), $RTP_BLOCK (ports in the
# system under test's RTP range).

pids=()

bench_cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# Stops one process started here (and forgets it).
stop_pid() {
  local pid=$1 keep=() p
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${pids[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# A UDP port nobody on 127.0.0.1 holds now (the kernel picks it).
free_port() {
  python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts of disjoint blocks of UDP ports, one per SIZE argument (even starts), of which no
# port sampled (every 25th) is bound now: the RTP ranges of the system under test and of
# the two SIPps. Other programs on a shared machine hold ranges of their own.
free_port_blocks() {
  python3 - "$@" <<'PY'
import random, socket, sys
taken, starts = [], []
for size in map(int, sys.argv[1:]):
    for _ in range(2000):
        start = random.randrange(16000, 65000 - size) & ~1
        if any(start < hi and lo < start + size for lo, hi in taken):
            continue
        try:
            socks = []
            for port in list(range(start, start + size, 25)) + [start + size - 1]:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", port))
                socks.append(s)
        except OSError:
            continue
        taken.append((start, start + size))
        starts.append(start)
        break
    else:
        sys.exit(f"no free block of {size} UDP ports")
print(*starts)
PY
}

# Waits for a URL to answer 200 (or exits with the log named).
wait_http() {
  local url=$1 pid=$2 log=$3
  for _ in $(seq 1 200); do
    curl -fsS "$url" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { echo "process $pid died:" >&2; tail -30 "$log" >&2; exit 1; }
    sleep 0.1
  done
  echo "no answer from $url" >&2; tail -30 "$log" >&2; exit 1
}

# Waits until something listens on UDP 127.0.0.1:PORT.
wait_udp() {
  local port=$1 pid=$2 log=$3 hex
  hex=$(printf ':%04X' "$port")
  for _ in $(seq 1 100); do
    grep -q "0100007F$hex " /proc/net/udp && return 0
    kill -0 "$pid" 2>/dev/null || { echo "process $pid died:" >&2; tail -30 "$log" >&2; exit 1; }
    sleep 0.1
  done
  echo "nothing listens on udp $port" >&2; tail -30 "$log" >&2; exit 1
}

# threering's config for the bench: one queue "4008001234" of AGENTS agents whose contacts
# are all the one SIPp agent UAS on AGENT_PORT; per-source limits raised (every SIPp is on
# 127.0.0.1); RECORD true/false; RTP ports from RTP_START ($RTP_BLOCK wide).
#   threering_config FILE SIP_PORT HTTP_PORT AGENT_PORT AGENTS MAX_CALLS RECORD RTP_START
threering_config() {
  local file=$1 sip_port=$2 http_port=$3 agent_port=$4 agents=$5 max_calls=$6 record=$7 rtp=$8
  local dir ids=() id i
  dir=$(dirname "$file")
  {
    cat <<EOF
[sip]
listen = ["udp:127.0.0.1:$sip_port"]
realm = "threering"
source_rps = 100000
trusted_source_rps = 100000
source_pending_invites = 100000
max_transactions = 100000

[media]
address = "127.0.0.1"
rtp_ports = [$rtp, $(( rtp + RTP_BLOCK - 1 ))]

[http]
listen = "127.0.0.1:$http_port"

[store]
database = "sqlite://$dir/bench.db"
recordings = "$dir/rec"

[daemon]
max_calls = $max_calls
grace_ms = 0

[survey]
enabled = false
EOF
    for i in $(seq 1 "$agents"); do
      id=$(printf 'b%04d' "$i")
      ids+=("\"$id\"")
      printf '\n[[agents]]\nid = "%s"\nname = "Bench %s"\ncontact = "sip:%s@127.0.0.1:%s"\n' \
        "$id" "$id" "$id" "$agent_port"
    done
    printf '\n[[queues]]\nname = "bench"\nnumbers = ["4008001234"]\nstrategy = "longest-idle"\n'
    printf 'wrap_up_ms = 0\nrecord = %s\nmax_wait_ms = 5000\nauto_pause_after = 0\n' "$record"
    printf 'agents = [%s]\n' "$(IFS=,; echo "${ids[*]}")"
  } >"$file"
}

# Starts threering in DIR with DIR/threering.toml; sets daemon_pid.
#   start_threering DIR HTTP_PORT
start_threering() {
  local dir=$1 http_port=$2
  (cd "$dir" && THREERING_LOG=warn exec "$THREERING_BIN" serve --config "$dir/threering.toml") \
    >"$dir/daemon.log" 2>&1 &
  daemon_pid=$!
  pids+=("$daemon_pid")
  wait_http "http://127.0.0.1:$http_port/healthz" "$daemon_pid" "$dir/daemon.log"
}

# Starts Kamailio from bench/peers/kamailio.cfg in DIR; with "rtpengine" as 5th argument
# it anchors media through rtpengine's NG port. Sets kamailio_pid.
#   start_kamailio DIR SIP_PORT AGENT_PORT NG_PORT [rtpengine]
start_kamailio() {
  local dir=$1 sip_port=$2 agent_port=$3 ng_port=$4 mode=${5:-proxy} modules defines=()
  modules=$(dirname "$(dpkg -L kamailio 2>/dev/null | grep '/modules/tm.so$' | head -1)")
  mkdir -p "$dir/run"
  sed -e "s#@SIP_PORT@#$sip_port#g" -e "s#@AGENT_PORT@#$agent_port#g" \
    -e "s#@NG_PORT@#$ng_port#g" -e "s#@MODULES@#$modules/#g" \
    -e "s#@CHILDREN@#${KAMAILIO_CHILDREN:-8}#g" \
    "$root/bench/peers/kamailio.cfg" >"$dir/kamailio.cfg"
  [ "$mode" = rtpengine ] && defines=(-A WITH_RTPENGINE)
  # -DD: the main process stays in the foreground (its PID is ours) and forks the workers.
  kamailio -f "$dir/kamailio.cfg" "${defines[@]}" -DD -E -m 512 -M 32 -Y "$dir/run" \
    -P "$dir/kamailio.pid" >"$dir/kamailio.log" 2>&1 &
  kamailio_pid=$!
  pids+=("$kamailio_pid")
  wait_udp "$sip_port" "$kamailio_pid" "$dir/kamailio.log"
}

# Starts rtpengine (no kernel module: table -1, every packet forwarded in userspace) with
# call recording to DIR/rec as pcap files written by rtpengine itself. Sets rtpengine_pid.
#   start_rtpengine DIR NG_PORT CLI_PORT PORT_MIN
start_rtpengine() {
  local dir=$1 ng_port=$2 cli_port=$3 port_min=$4
  mkdir -p "$dir/rec"
  sed -e "s#@NG_PORT@#$ng_port#g" -e "s#@CLI_PORT@#$cli_port#g" \
    -e "s#@PORT_MIN@#$port_min#g" -e "s#@PORT_MAX@#$(( port_min + RTP_BLOCK - 1 ))#g" \
    -e "s#@REC_DIR@#$dir/rec#g" -e "s#@THREADS@#${RTPENGINE_THREADS:-2}#g" -e "s#@LOG_LEVEL@#${RTPENGINE_LOG_LEVEL:-4}#g" \
    "$root/bench/peers/rtpengine.conf" >"$dir/rtpengine.conf"
  (cd "$dir" && exec rtpengine --config-file="$dir/rtpengine.conf" --config-section=rtpengine \
    --pidfile="$dir/rtpengine.pid") >"$dir/rtpengine.log" 2>&1 &
  rtpengine_pid=$!
  pids+=("$rtpengine_pid")
  wait_udp "$ng_port" "$rtpengine_pid" "$dir/rtpengine.log"
}
