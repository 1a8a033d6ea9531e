#!/usr/bin/env bash
# bench/load.sh - end-to-end SMTP acceptance benchmark on loopback:
# Postfix smtp-sink (SMTP ceiling) vs a private stock Postfix (queue + fsync)
# vs mxgate. Run `bash bench/load.sh --help` for the full manual.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIB_DIR=$SCRIPT_DIR/lib

# ---------------------------------------------------------------- defaults --
MESSAGES=3000
REPEAT=3
SESSIONS="1 10 50"
TARGETS="sink postfix mxgate"
MXGATE=build/gateway/mxgate
WORK=""
KEEP=0
WARMUP=200
SIZE=10240
REUSE=1
RUN_TIMEOUT=300
READY_TIMEOUT=10
PORT_BASE=10025
DOMAIN=example.test
RELAY=0

usage() {
    cat <<'EOF'
NAME
    load.sh - end-to-end SMTP acceptance benchmark: smtp-sink vs Postfix vs mxgate

SYNOPSIS
    bash bench/load.sh [--messages N] [--repeat R] [--sessions "1 10 50"]
                       [--targets "sink postfix mxgate"] [--mxgate PATH]
                       [--work DIR] [--keep] [--warmup N] [--size BYTES]
                       [--no-reuse] [--timeout SEC] [--ready-timeout SEC]
                       [--port-base PORT] [--relay] [--help]

DESCRIPTION
    Measures how many messages per second each target ACCEPTS (250 reply to
    the end of DATA) on 127.0.0.1, all targets in the same run so their
    ratios are comparable. The load generator is Postfix's smtp-source(1):
    each run sends N messages of BYTES bytes of body (plus smtp-source's
    own few headers) over S parallel SMTP sessions, one recipient per
    message. Each run is timed with CLOCK_MONOTONIC (bench/lib/mono-time;
    falls back to `date +%s.%N` if Perl's Time::HiRes is missing) from the
    start to the exit of smtp-source, so the rate includes connection setup
    and QUIT. Each (target, sessions) pair is measured R times and the median
    is reported. Repeats are interleaved (repeat 1 of every target and
    session count, then repeat 2, ...) so that background load drifting
    during the run affects all targets alike.

    Before a run the script calls sync(1) and pauses briefly so that write
    back from the previous run does not bleed into the next one. Every
    smtp-source is bounded by timeout(1): a hung server fails that run, it
    cannot hang the script.

TARGETS
    sink     /usr/sbin/smtp-sink: Postfix's SMTP test server. Speaks SMTP
             (with PIPELINING/ESMTP announced) and throws the message away:
             no disk, no fsync. This is the ceiling for SMTP-layer work on
             this machine with this load generator.

    postfix  A private, stock Postfix instance set up by the script under
             WORK/postfix/{etc,spool,data}: smtpd -> cleanup -> queue file
             fsync()ed before the 250 reply, i.e. normal Postfix
             durability. It listens on 127.0.0.1 only (inet_interfaces =
             127.0.0.1, one master.cf inet service 127.0.0.1:PORT, no port
             25 service) and never delivers: every message is put on HOLD
             by `smtpd_data_restrictions = check_client_access static:HOLD`
             (cleanup writes the queue file, fsyncs it and renames it into
             hold/, so the queue manager never sees it and spends no CPU
             during the measurement); as a second safety net both
             local_transport and default_transport are discard:. The hold
             queue is emptied with postsuper(1) after every run (outside
             the timed region) so the queue does not grow from run to run.
             Anvil limits (connection count/rate, message/recipient rate)
             are disabled, in_flow_delay = 0 (with no delivery the inflow
             controller would otherwise stall cleanup for up to 1 s per
             message) and default_process_limit = 200 so 50 sessions are
             never throttled. Logging goes through postlogd to
             WORK/postfix/maillog (not syslog). Started with
             `postfix -c WORK/postfix/etc start`, stopped with `... stop`.

    mxgate   The mxgate daemon given by --mxgate, started as
             `MXGATE -c WORK/mxgate/mxgate.toml` with a config written by
             this script (accept-all for example.test, abuse filters and TLS off,
             spool and state under WORK/mxgate), stderr to
             WORK/mxgate/mxgate.log. Skipped with a message (not an error)
             when the binary does not exist yet.

    Each server is started once, before the first run, on a free loopback
    port (searched upwards from --port-base with `ss -ltn`; ports below 1024
    are refused), and is considered ready when its port answers with a 220
    greeting (bounded by --ready-timeout; on failure the log tail is
    printed). Everything the script started is stopped on exit, including
    on errors and Ctrl-C.

OPTIONS
    --messages N       Messages per timed run (default 3000).
    --repeat R         Timed runs per target and session count; the median
                       is reported (default 3).
    --sessions LIST    Space-separated concurrent session counts, passed to
                       smtp-source -s (default "1 10 50").
    --targets LIST     Any of: sink postfix mxgate (default: all three).
    --mxgate PATH      mxgate daemon binary (default build/gateway/mxgate,
                       relative to the current directory).
    --work DIR         Work directory for configs, queues, spools and logs.
                       Default: a fresh `mktemp -d` under ${TMPDIR:-/var/tmp}
                       (deliberately not /tmp, which may be tmpfs: fsync on
                       tmpfs is free and would flatter the disk-backed
                       targets). A given DIR must be empty or a previous
                       load.sh work dir. The work dir (or, for a given DIR,
                       what the script created in it) is removed at the end.
    --keep             Keep the work directory (queues, configs, logs).
    --warmup N         Untimed messages sent to each target at each session
                       count before the timed runs, so processes are forked
                       and caches are warm (default 200; 0 disables).
    --size BYTES       Message body size, smtp-source -l (default 10240).
    --no-reuse         One message per SMTP connection (drop smtp-source -d).
                       The default reuses each connection for many messages,
                       as a relaying MTA does.
    --timeout SEC      Upper bound for one smtp-source run (default 300).
    --ready-timeout SEC
                       Upper bound for a server to start answering
                       (default 10).
    --port-base PORT   First port tried when looking for free loopback
                       ports (default 10025).
    --relay            Relay mode: measure end-to-end RELAY throughput
                       instead of acceptance. smtp-sink (started with -c,
                       counting messages) is the downstream server; Postfix
                       is a plain relay (transport_maps sends everything to
                       the sink, no HOLD, normal queue manager and smtp
                       client) and mxgate forwards example.test to the sink
                       with a [[route]] (delivery on). A run is timed from
                       the start of smtp-source until the sink has counted
                       every message of the run, so the rate includes
                       queueing, fsync and outbound delivery. Default
                       targets in this mode: "postfix mxgate".
    -h, --help         Show this manual.

LOAD GENERATOR COMMAND
    smtp-source -4 -d -s S -m N -l BYTES -N -M client.example.test \
        -f bench@example.test -t rcpt@example.test -S bench 127.0.0.1:PORT

    -d   keep the connection open and send the next message over it
         (connection reuse; omitted with --no-reuse)
    -s   S parallel sessions; -m N messages in total over all sessions
    -l   body size; -N prepends a sequence number to each recipient so every
         message has a distinct recipient (1rcpt@, 2rcpt@, ...)
    smtp-source sends HELO (not EHLO) and does not pipeline commands; it
    aborts with a non-zero exit status on any unexpected reply, which fails
    the run. The exact command line of every row is printed with the table.

OUTPUT
    Progress goes to stderr. A Markdown report goes to stdout: the setup,
    a table with one row per target and session count (median msg/s, the
    individual runs, and the ratio to postfix and to sink measured in the
    same run), and the exact smtp-source command lines.

EXIT STATUS
    0 all requested measurements succeeded (a skipped mxgate counts as
    success), 1 a measurement or server start failed, 2 usage error.

EXAMPLES
    bash bench/load.sh --mxgate build/gateway/mxgate      # what `make bench` runs
    bash bench/load.sh --targets "sink postfix" --repeat 1 --messages 500
    bash bench/load.sh --targets "postfix mxgate" --sessions 50 --keep

CAVEATS
    Load generator and servers share the same (small, possibly busy)
    machine, so absolute numbers are noisy; compare ratios within one run,
    not absolute rates across runs or machines. Needs root (Postfix master
    and smtp-sink run as root and drop to user postfix).
EOF
}

# ------------------------------------------------------------------ helpers --
log() { printf '[load.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
usage_error() {
    printf 'load.sh: %s (see --help)\n' "$*" >&2
    exit 2
}
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# ------------------------------------------------------------ command line --
while (($#)); do
    opt=$1
    val=""
    case $opt in
    --*=*)
        val=${opt#*=}
        opt=${opt%%=*}
        ;;
    --messages | --repeat | --sessions | --targets | --mxgate | --work | --warmup | --size | --timeout | --ready-timeout | --port-base)
        (($# >= 2)) || usage_error "$opt needs an argument"
        val=$2
        shift
        ;;
    esac
    case $opt in
    --messages) MESSAGES=$val ;;
    --repeat) REPEAT=$val ;;
    --sessions) SESSIONS=$val ;;
    --targets) TARGETS=$val ;;
    --mxgate) MXGATE=$val ;;
    --work) WORK=$val ;;
    --warmup) WARMUP=$val ;;
    --size) SIZE=$val ;;
    --timeout) RUN_TIMEOUT=$val ;;
    --ready-timeout) READY_TIMEOUT=$val ;;
    --port-base) PORT_BASE=$val ;;
    --keep) KEEP=1 ;;
    --relay) RELAY=1 ;;
    --no-reuse) REUSE=0 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) usage_error "unknown option: $1" ;;
    esac
    shift
done

need_int() { # OPTION VALUE MIN [MAX]
    if ! is_uint "$2" || (($2 < $3)) || { (($# > 3)) && (($2 > $4)); }; then
        usage_error "$1 must be an integer >= $3${4:+ and <= $4}, not '$2'"
    fi
}
need_int --messages "$MESSAGES" 1
need_int --repeat "$REPEAT" 1
need_int --warmup "$WARMUP" 0
need_int --size "$SIZE" 0
need_int --timeout "$RUN_TIMEOUT" 1
need_int --ready-timeout "$READY_TIMEOUT" 1
need_int --port-base "$PORT_BASE" 1024 64999 # never 25/587
read -r -a SESSION_LIST <<<"$SESSIONS"
((${#SESSION_LIST[@]} > 0)) || usage_error "--sessions is empty"
for s in "${SESSION_LIST[@]}"; do need_int --sessions "$s" 1; done
if ((RELAY)) && [[ $TARGETS == "sink postfix mxgate" ]]; then TARGETS="postfix mxgate"; fi
read -r -a TARGET_LIST <<<"$TARGETS"
((${#TARGET_LIST[@]} > 0)) || usage_error "--targets is empty"
for t in "${TARGET_LIST[@]}"; do
    case $t in sink | postfix | mxgate) ;; *) usage_error "--targets: unknown target '$t'" ;; esac
done
want() { [[ " ${TARGET_LIST[*]} " == *" $1 "* ]]; }

# ------------------------------------------------------------ prerequisites --
((EUID == 0)) || die "must run as root (Postfix master and smtp-sink need it)"
for cmd in smtp-source timeout ss sync awk; do
    command -v "$cmd" >/dev/null || die "$cmd not found (smtp-source/smtp-sink come with the postfix package)"
done
if want sink; then command -v smtp-sink >/dev/null || die "smtp-sink not found (install postfix)"; fi
if want postfix; then
    for cmd in postfix postconf postsuper; do
        command -v "$cmd" >/dev/null || die "$cmd not found (install postfix)"
    done
    getent passwd postfix >/dev/null || die "user 'postfix' does not exist"
    getent group postdrop >/dev/null || die "group 'postdrop' does not exist"
fi
if perl -MTime::HiRes=clock_gettime,CLOCK_MONOTONIC -e 1 2>/dev/null; then
    CLOCK="CLOCK_MONOTONIC (bench/lib/mono-time)"
    HAVE_MONO=1
else
    CLOCK="realtime, date +%s.%N (Perl Time::HiRes missing)"
    HAVE_MONO=0
fi

MXGATE_SKIP=""
if want mxgate; then
    if [[ ! -f $MXGATE || ! -x $MXGATE ]]; then
        MXGATE_SKIP="binary '$MXGATE' not found or not executable"
        log "mxgate: $MXGATE_SKIP - skipping the mxgate target (build it, or pass --mxgate PATH)"
    else
        MXGATE=$(cd "$(dirname "$MXGATE")" && pwd)/$(basename "$MXGATE")
    fi
fi
active() { want "$1" && { [[ $1 != mxgate ]] || [[ -z $MXGATE_SKIP ]]; }; }

# ---------------------------------------------------------------- work dir --
CREATED_WORK=0
if [[ -z $WORK ]]; then
    WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/mxgate-bench.XXXXXX")
    CREATED_WORK=1
else
    mkdir -p "$WORK"
    if [[ ! -e $WORK/.mxgate-bench ]] && [[ -n $(ls -A "$WORK") ]]; then
        die "--work $WORK is not empty and not a load.sh work dir; refusing to use it"
    fi
    WORK=$(cd "$WORK" && pwd)
fi
touch "$WORK/.mxgate-bench"
# Postfix daemons run as user postfix and must be able to traverse to the queue.
chmod 755 "$WORK"
RUN_DIR=$WORK/runs
mkdir -p "$RUN_DIR"

# ----------------------------------------------------------------- cleanup --
SINK_PID=""
MX_PID=""
PF_STARTED=0
PF_ETC=""
PF_SPOOL=""
FAILED=0

# The cleanup functions below are only reached through the EXIT trap.
# shellcheck disable=SC2317
stop_pid() { # NAME PID: TERM, wait up to 10 s, then KILL; only our own children
    local name=$1 pid=$2 i
    [[ -n $pid ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            # a reaped-but-not-waited child stays a zombie: wait reaps it
            [[ $(ps -o stat= -p "$pid" 2>/dev/null) == Z* ]] && break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null && [[ $(ps -o stat= -p "$pid" 2>/dev/null) != Z* ]]; then
            log "$name (pid $pid) ignored SIGTERM for 10 s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

postfix_master_pid() {
    local pid=""
    [[ -n $PF_SPOOL && -r $PF_SPOOL/pid/master.pid ]] || return 1
    read -r pid <"$PF_SPOOL/pid/master.pid" || true
    pid=${pid//[[:space:]]/}
    [[ -n $pid ]] && echo "$pid"
}

# shellcheck disable=SC2317
stop_postfix() {
    ((PF_STARTED)) || return 0
    PF_STARTED=0
    local pid i
    pid=$(postfix_master_pid) || pid=""
    log "stopping postfix (master pid ${pid:-unknown})"
    postfix -c "$PF_ETC" stop >/dev/null 2>&1 || true
    [[ -n $pid ]] || return 0
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "postfix master $pid still running after 15 s, aborting it"
    postfix -c "$PF_ETC" abort >/dev/null 2>&1 || true
    sleep 1
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
}

# shellcheck disable=SC2317
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    [[ -n $MX_PID ]] && log "stopping mxgate (pid $MX_PID)"
    stop_pid mxgate "$MX_PID"
    [[ -n $SINK_PID ]] && log "stopping smtp-sink (pid $SINK_PID)"
    stop_pid smtp-sink "$SINK_PID"
    stop_postfix
    if ((KEEP)); then
        log "kept work directory $WORK"
    elif ((CREATED_WORK)); then
        rm -rf -- "$WORK"
    else
        rm -rf -- "$WORK/postfix" "$WORK/mxgate" "$WORK/sink" "$WORK/runs" "$WORK/.mxgate-bench"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ------------------------------------------------------------------- ports --
USED_PORTS=" "
port_busy() { [[ -n $(ss -Htln "( sport = :$1 )" 2>/dev/null) ]]; }
pick_port() { # prints the first free port >= PORT_BASE not yet handed out
    local p=$PORT_BASE
    while [[ $USED_PORTS == *" $p "* ]] || port_busy "$p"; do
        p=$((p + 1))
        ((p < 65535)) || die "no free port found above $PORT_BASE"
    done
    USED_PORTS+="$p "
    echo "$p"
}

# --------------------------------------------------------------- readiness --
smtp_greets() { # PORT: true when the port answers with a 220 greeting
    # shellcheck disable=SC2016 # the inner script expands $1 itself
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        IFS= read -r -t 2 line <&3 || exit 1
        printf "QUIT\r\n" >&3
        [[ $line == 220* ]]' _ "$1" 2>/dev/null
}

show_log_tail() { # NAME FILE
    [[ -s $2 ]] || return 0
    log "last lines of $2:"
    tail -n 20 "$2" | sed 's/^/    /' >&2
}

wait_ready() { # NAME PORT PID-OR-EMPTY LOGFILE
    local name=$1 port=$2 pid=$3 logf=$4
    local deadline=$((SECONDS + READY_TIMEOUT))
    while :; do
        if [[ -n $pid ]] && { ! kill -0 "$pid" 2>/dev/null || [[ $(ps -o stat= -p "$pid" 2>/dev/null) == Z* ]]; }; then
            log "$name exited during startup"
            show_log_tail "$name" "$logf"
            return 1
        fi
        smtp_greets "$port" && return 0
        if ((SECONDS >= deadline)); then
            log "$name does not answer on 127.0.0.1:$port after ${READY_TIMEOUT}s"
            show_log_tail "$name" "$logf"
            return 1
        fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------- servers --
declare -A PORT=()
declare -A DEAD=() # target -> reason it cannot be measured any more

start_sink() {
    mkdir -p "$WORK/sink"
    PORT[sink]=$(pick_port)
    log "starting smtp-sink on 127.0.0.1:${PORT[sink]}"
    # -u: drop root after binding; -m: max simultaneous connections; backlog 1024
    local count=()
    ((RELAY)) && count=(-c) # running counters on stdout: "... mesg=N"
    smtp-sink -4 "${count[@]}" -u postfix -h sink.bench.test -m 1000 "127.0.0.1:${PORT[sink]}" 1024 \
        </dev/null >"$WORK/sink/sink.log" 2>&1 &
    SINK_PID=$!
    wait_ready smtp-sink "${PORT[sink]}" "$SINK_PID" "$WORK/sink/sink.log"
}

postfix_delivery_settings() {
    if ((RELAY)); then
        cat <<EOF
# Relay everything for the test domain to the sink (a plain relay).
mydestination =
relay_domains = $DOMAIN
relayhost =
transport_maps = static:smtp:[127.0.0.1]:${PORT[sink]}
smtp_tls_security_level = none
local_recipient_maps =
alias_maps =
alias_database =
biff = no
default_destination_concurrency_limit = 50
EOF
    else
        cat <<EOF
# Accept any recipient in the test domain, deliver nothing.
mydestination = $DOMAIN
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
relayhost =
local_transport = discard:bench
default_transport = discard:bench
biff = no
smtpd_data_restrictions = check_client_access static:HOLD
EOF
    fi
}

start_postfix() {
    local dir=$WORK/postfix
    PF_ETC=$dir/etc
    PF_SPOOL=$dir/spool
    mkdir -p "$PF_ETC" "$PF_SPOOL"
    install -d -o postfix -g postfix -m 700 "$dir/data"
    PORT[postfix]=$(pick_port)
    log "setting up a private postfix instance in $dir (127.0.0.1:${PORT[postfix]})"

    cat >"$PF_ETC/main.cf" <<EOF
# Private Postfix instance written by bench/load.sh. Loopback only, never
# delivers (every message is put on HOLD), logs to a file.
compatibility_level = 3.6
queue_directory = $PF_SPOOL
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-bench
maillog_file = $dir/maillog

myhostname = mx.postfix.bench.test
mydomain = bench.test
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8

$(postfix_delivery_settings)

# 50 parallel sessions from one client must not be throttled.
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
smtpd_client_event_limit_exceptions = 127.0.0.0/8
$( ((RELAY)) || printf '%s\n' '# No delivery means no inflow tokens: do not let cleanup wait for them.' 'in_flow_delay = 0s')
EOF

    cat >"$PF_ETC/master.cf" <<EOF
# Private Postfix instance written by bench/load.sh: the only inet service
# is on 127.0.0.1:${PORT[postfix]}; nothing is chrooted.
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:${PORT[postfix]} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF

    # `postfix check` creates the queue directories with the right owners.
    if ! postfix -c "$PF_ETC" check >"$dir/check.log" 2>&1; then
        show_log_tail "postfix check" "$dir/check.log"
        return 1
    fi
    local before25
    before25=$(ss -Htln '( sport = :25 or sport = :587 )' 2>/dev/null || true)
    PF_STARTED=1 # from here on, cleanup runs `postfix stop`
    if ! postfix -c "$PF_ETC" start >"$dir/start.log" 2>&1; then
        show_log_tail "postfix start" "$dir/start.log"
        show_log_tail postfix "$dir/maillog"
        return 1
    fi
    local pid="" i
    for ((i = 0; i < 50; i++)); do
        pid=$(postfix_master_pid) && kill -0 "$pid" 2>/dev/null && break
        pid=""
        sleep 0.1
    done
    [[ -n $pid ]] || {
        log "postfix master did not start"
        show_log_tail postfix "$dir/maillog"
        return 1
    }
    wait_ready postfix "${PORT[postfix]}" "" "$dir/maillog" || return 1

    # Safety: the instance must listen on our loopback port and nowhere else.
    local socks bad
    socks=$(ss -Htlnp 2>/dev/null | grep -F "pid=$pid," || true)
    if [[ -n $socks ]]; then
        bad=$(awk -v want="127.0.0.1:${PORT[postfix]}" '$4 != want' <<<"$socks")
        [[ -z $bad ]] || die "postfix listens somewhere else than 127.0.0.1:${PORT[postfix]}: $bad"
    fi
    [[ $(ss -Htln '( sport = :25 or sport = :587 )' 2>/dev/null || true) == "$before25" ]] ||
        die "a new listener appeared on port 25/587 after starting postfix"
    log "postfix master pid $pid ready"
}

mxgate_delivery_settings() { # DIR
    if ((RELAY)); then
        cat <<EOF
[delivery]
hold = false
maildir_root = "$1/mail"
destination_concurrency = 50

[[route]]
name = "sink"
domains = ["$DOMAIN"]
type = "forward"
hosts = ["127.0.0.1:${PORT[sink]}"]
tls = "none"
EOF
    else
        cat <<EOF
[delivery]
# Acceptance only, like the Postfix target (which holds its queue): no
# Maildir deliveries competing for the disk during the measurement.
hold = true
maildir_root = "$1/mail"
EOF
    fi
}

start_mxgate() {
    local dir=$WORK/mxgate
    mkdir -p "$dir/state" "$dir/spool"
    PORT[mxgate]=$(pick_port)
    local cfg=$dir/mxgate.toml
    # The mxgate configuration under test. Keep it in this one heredoc.
    cat >"$cfg" <<EOF
[server]
hostname = "mx.bench.test"
listen = ["127.0.0.1:${PORT[mxgate]}"]
state_dir = "$dir/state"
spool_dir = "$dir/spool"
user = ""
log_level = "warn"

[smtp]
max_connections = 2000
max_connections_per_ip = 1000

[[domains]]
name = "$DOMAIN"
recipients = "accept-all"

[tls]
# Plain SMTP like the other targets (smtp-source does not do STARTTLS).
enabled = false

$(mxgate_delivery_settings "$dir")

[filters.abuse]
enabled = false
EOF
    if ! "$MXGATE" --check-config -c "$cfg" >"$dir/check-config.log" 2>&1; then
        log "mxgate rejects the generated configuration:"
        sed 's/^/    /' "$dir/check-config.log" >&2
        return 1
    fi
    log "starting mxgate $MXGATE on 127.0.0.1:${PORT[mxgate]}"
    "$MXGATE" -c "$cfg" </dev/null >"$dir/mxgate.log" 2>&1 &
    MX_PID=$!
    wait_ready mxgate "${PORT[mxgate]}" "$MX_PID" "$dir/mxgate.log"
}

target_alive() { # TARGET: is the server process still there?
    local pid
    case $1 in
    sink) pid=$SINK_PID ;;
    mxgate) pid=$MX_PID ;;
    postfix) pid=$(postfix_master_pid) || return 1 ;;
    esac
    kill -0 "$pid" 2>/dev/null && [[ $(ps -o stat= -p "$pid" 2>/dev/null) != Z* ]]
}

target_log() {
    case $1 in
    sink) echo "$WORK/sink/sink.log" ;;
    postfix) echo "$WORK/postfix/maillog" ;;
    mxgate) echo "$WORK/mxgate/mxgate.log" ;;
    esac
}

# -------------------------------------------------------------------- load --
SRC_CMD=()
source_cmd() { # TARGET SESSIONS COUNT -> SRC_CMD
    SRC_CMD=(smtp-source -4)
    ((REUSE)) && SRC_CMD+=(-d)
    SRC_CMD+=(-s "$2" -m "$3" -l "$SIZE" -N -M "client.$DOMAIN"
        -f "bench@$DOMAIN" -t "rcpt@$DOMAIN" -S bench "127.0.0.1:${PORT[$1]}")
}

time_cmd() { # OUTFILE CMD...: run CMD, write elapsed seconds to OUTFILE
    local out=$1 t0 t1 rc=0
    shift
    if ((HAVE_MONO)); then
        perl "$LIB_DIR/mono-time" "$out" "$@"
        return
    fi
    t0=$(date +%s.%N)
    "$@" || rc=$?
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }' >"$out"
    return "$rc"
}

settle() {
    timeout 30 sync || true
    sleep 0.3
}

postfix_queue_count() { # files in the given queue subdirectories
    local q n=0 c
    for q in "$@"; do
        [[ -d $PF_SPOOL/$q ]] || continue
        c=$(find "$PF_SPOOL/$q" -type f | wc -l)
        n=$((n + c))
    done
    echo "$n"
}

after_postfix_run() { # COUNT: check every message reached the hold queue, then purge
    local want=$1 held stray
    held=$(postfix_queue_count hold)
    stray=$(postfix_queue_count incoming active deferred)
    ((held == want)) || log "warning: postfix hold queue has $held messages, expected $want"
    ((stray == 0)) || log "warning: $stray postfix messages outside the hold queue (HOLD not effective?)"
    postsuper -c "$PF_ETC" -d ALL >/dev/null 2>&1 || log "warning: postsuper -d ALL failed"
}

sink_count() { # messages the sink has received so far (relay mode)
    local n
    n=$(tail -c 300 "$WORK/sink/sink.log" | tr '\r' '\n' | grep -o 'mesg=[0-9]*' | tail -n 1 | cut -d= -f2)
    echo "${n:-0}"
}

# relay_send OUTFILE: smtp-source, then wait until the sink has every
# message of the run; elapsed seconds of the whole to OUTFILE.
relay_send() {
    local out=$1 want t0 t1 rc=0 deadline
    want=$(($(sink_count) + RELAY_COUNT))
    t0=$(date +%s.%N)
    timeout -k 5 "$RUN_TIMEOUT" "${SRC_CMD[@]}" || rc=$?
    ((rc == 0)) || return "$rc"
    deadline=$((SECONDS + RUN_TIMEOUT))
    while (($(sink_count) < want)); do
        ((SECONDS < deadline)) || {
            echo "sink has $(sink_count) of $want messages" >&2
            return 124
        }
        sleep 0.02
    done
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }' >"$out"
}

# one_run TARGET SESSIONS COUNT TIMED(0/1): prints msg/s when timed
one_run() {
    local target=$1 sessions=$2 count=$3 timed=$4 rc=0 elapsed
    local tfile=$RUN_DIR/elapsed errf=$RUN_DIR/$target-s$sessions.err
    source_cmd "$target" "$sessions" "$count"
    settle
    if ((RELAY)); then
        RELAY_COUNT=$count relay_send "$tfile" </dev/null >"$errf" 2>&1 || rc=$?
    else
        time_cmd "$tfile" timeout -k 5 "$RUN_TIMEOUT" "${SRC_CMD[@]}" </dev/null >"$errf" 2>&1 || rc=$?
    fi
    if ((rc != 0)); then
        if ((rc == 124 || rc == 137)); then
            log "$target s=$sessions: smtp-source timed out after ${RUN_TIMEOUT}s"
        else
            log "$target s=$sessions: smtp-source failed (exit $rc)"
        fi
        show_log_tail smtp-source "$errf"
        show_log_tail "$target" "$(target_log "$target")"
        return 1
    fi
    [[ $target == postfix ]] && ((!RELAY)) && after_postfix_run "$count"
    if ((timed)); then
        elapsed=$(<"$tfile")
        awk -v n="$count" -v t="$elapsed" 'BEGIN { printf "%.1f\n", (t > 0 ? n / t : 0) }'
    fi
}

median() { # numbers... -> median (mean of the middle two for an even count)
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        if (NR % 2) printf "%.1f\n", v[(NR + 1) / 2]
        else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# -------------------------------------------------------------------- main --
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
WORK_FS=$(df --output=fstype "$WORK" 2>/dev/null | tail -n 1) || WORK_FS="?"
log "work directory $WORK ($WORK_FS filesystem)"
[[ $WORK_FS == tmpfs ]] &&
    log "warning: $WORK is on tmpfs: fsync is free there, the postfix/mxgate numbers will be flattering"

ORDER=() # targets actually measured, in report order
if ((RELAY)) && ! active sink; then
    start_sink || die "smtp-sink (the relay downstream) did not start"
fi
for t in sink postfix mxgate; do
    active "$t" || continue
    case $t in
    sink) start_sink || DEAD[sink]="did not start" ;;
    postfix) start_postfix || DEAD[postfix]="did not start" ;;
    mxgate) start_mxgate || DEAD[mxgate]="did not start" ;;
    esac
    if [[ -n ${DEAD[$t]:-} ]]; then
        FAILED=1
        log "$t: not measured (${DEAD[$t]})"
    fi
    ORDER+=("$t")
done

declare -A RUNS=() # "target s" -> space-separated msg/s of the timed runs
declare -A CMDS=() # "target s" -> exact command line
mark_dead() {
    DEAD[$1]=$2
    FAILED=1
    log "$1: giving up on this target ($2)"
}

measure() { # TARGET SESSIONS COUNT TIMED
    local t=$1 s=$2 rate
    [[ -z ${DEAD[$t]:-} ]] || return 0
    if ! target_alive "$t"; then
        show_log_tail "$t" "$(target_log "$t")"
        mark_dead "$t" "server process died"
        return 0
    fi
    if rate=$(one_run "$t" "$s" "$3" "$4"); then
        if (($4)); then
            source_cmd "$t" "$s" "$3"
            CMDS["$t $s"]="timeout -k 5 $RUN_TIMEOUT ${SRC_CMD[*]}"
            RUNS["$t $s"]+="$rate "
            log "$t s=$s: $3 messages, $rate msg/s"
        fi
    else
        mark_dead "$t" "smtp-source run failed at $s sessions"
    fi
}

if ((WARMUP > 0)); then
    for s in "${SESSION_LIST[@]}"; do
        for t in "${ORDER[@]}"; do
            [[ -z ${DEAD[$t]:-} ]] && log "warm-up: $t s=$s ($WARMUP messages)"
            measure "$t" "$s" "$WARMUP" 0
        done
    done
fi
for ((r = 1; r <= REPEAT; r++)); do
    log "repeat $r/$REPEAT"
    for s in "${SESSION_LIST[@]}"; do
        for t in "${ORDER[@]}"; do
            measure "$t" "$s" "$MESSAGES" 1
        done
    done
done
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ report --
declare -A MED=()
for t in "${ORDER[@]}"; do
    for s in "${SESSION_LIST[@]}"; do
        read -r -a vals <<<"${RUNS["$t $s"]:-}"
        if ((${#vals[@]} == REPEAT)); then
            MED["$t $s"]=$(median "${vals[@]}")
        fi
    done
done
ratio() { # TARGET REF SESSIONS
    local a=${MED["$1 $3"]:-} b=${MED["$2 $3"]:-}
    if [[ -n $a && -n $b ]]; then
        awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'
    else
        printf 'n/a'
    fi
}

{
    echo "## mxgate load benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    echo
    echo "- host: $(nproc) CPUs, $(uname -sr); load average $START_LOAD at start, $END_LOAD at end"
    if ((REUSE)); then
        mode="connection reuse (-d: each session sends many messages over one connection)"
    else
        mode="one message per connection (--no-reuse)"
    fi
    echo "- load: smtp-source, $MESSAGES messages of $SIZE bytes body per timed run, 1 recipient each, $mode"
    echo "- $REPEAT timed run(s) per row, median reported; $WARMUP warm-up messages per row first; clock: $CLOCK"
    if ((RELAY)); then
        echo "- RELAY mode: rate = messages / (smtp-source start .. smtp-sink counted them all); downstream smtp-sink on loopback"
        want postfix && echo "- postfix $(postconf -d -h mail_version 2>/dev/null || echo '?'): private instance as a plain relay (queue file fsync'd, qmgr + smtp client to the sink)"
        want mxgate && echo "- mxgate: spool fsync'd, [[route]] forward to the sink, destination_concurrency 50"
    else
        want postfix && echo "- postfix $(postconf -d -h mail_version 2>/dev/null || echo '?'): private instance, queue file fsync'd then put on HOLD (no delivery)"
    fi
    echo "- work dir: $WORK ($WORK_FS)"
    if want mxgate; then
        if [[ -n $MXGATE_SKIP ]]; then
            echo "- mxgate: skipped, $MXGATE_SKIP"
        else
            echo "- mxgate: $MXGATE ($(stat -c %y "$MXGATE" | cut -d. -f1))"
        fi
    fi
    echo
    echo "| target | sessions | median msg/s | runs (msg/s) | vs postfix | vs sink |"
    echo "|---|---:|---:|---|---:|---:|"
    for s in "${SESSION_LIST[@]}"; do
        for t in "${ORDER[@]}"; do
            if [[ -n ${MED["$t $s"]:-} ]]; then
                runs=${RUNS["$t $s"]% }
                echo "| $t | $s | ${MED["$t $s"]} | ${runs// /, } | $(ratio "$t" postfix "$s") | $(ratio "$t" sink "$s") |"
            else
                echo "| $t | $s | FAILED | ${DEAD[$t]:-incomplete} | | |"
            fi
        done
        if want mxgate && [[ -n $MXGATE_SKIP ]]; then
            echo "| mxgate | $s | skipped | binary not found | | |"
        fi
    done
    echo
    echo "vs X = median msg/s of the row / median msg/s of X at the same session count, same run."
    if ((${#CMDS[@]} > 0)); then
        echo
        echo "Load generator command lines:"
        echo
        echo '```'
        for s in "${SESSION_LIST[@]}"; do
            for t in "${ORDER[@]}"; do
                [[ -n ${CMDS["$t $s"]:-} ]] && printf '%-8s %s\n' "$t:" "${CMDS["$t $s"]}"
            done
        done
        echo '```'
    fi
}

exit "$FAILED"
