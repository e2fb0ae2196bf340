#!/usr/bin/env bash
# Smoke test of the deployment: the image, deploy/compose.yaml and the load balancer, end to end,
# on a machine with podman and podman-compose and no registry access needed.
#
#   deploy/smoke.sh                 (as root; ~3-6 min cold, ~1-2 min with images cached)
#   SMOKE_BENCH=1 deploy/smoke.sh   (also wrk: single events through the LB vs one replica direct)
#
# 1. Base images: BASE (default the official python:3.12-slim) and the official PostgreSQL and
#    HAProxy images are used when present or pullable; when not, a Debian base is made with
#    debootstrap (deploy/images/debootstrap-base.sh) and the service, PostgreSQL and HAProxy
#    images are built on it from Debian's packages (deploy/images/*.Containerfile).
# 2. Builds the service's image from the Containerfile (the machine's CA bundle, if any, as
#    the build secret `ca`) and checks its user, volume, healthcheck and that no secret stayed.
# 3. Starts deploy/compose.yaml as project $SMOKE_PROJECT, the load balancer on
#    127.0.0.1:$SMOKE_PORT, and times the cold start to /readyz 200 through it.
# 4. Makes an API key with the CLI inside a replica; writes and reads an event through the LB;
#    a login that claims another client address in X-Forwarded-For is recorded with the
#    address the LB saw (trusted proxies), and the request id comes back.
# 5. Under load through the LB (retrying unanswered events with the same id): SIGKILLs one
#    replica's process, which its restart policy must bring back, then SIGTERMs the other
#    (`podman stop`), which must drain and exit 0. Then
#    checks that every acknowledged event is stored exactly once, and `auditlog verify`.
# 6. Tears everything down (also on failure or timeout): no container, volume or network of
#    the project is left. Built images stay in local storage as a cache (SMOKE_RMI=1 removes
#    the service's image too).
#
# Traffic goes to 127.0.0.1 only (and to the Debian mirror / PyPI while building images).
# The whole run is bounded by SMOKE_TIMEOUT seconds (default 1200).
#
# Environment: BASE, POSTGRES_IMAGE, HAPROXY_IMAGE (official images by default),
# DEBIAN_BASE (localhost/debian-base:bookworm), SMOKE_PROJECT (auditlog-smoke), SMOKE_PORT
# (18080), SMOKE_APP_PORT (18001, the bench's direct port), SMOKE_CA (a CA bundle for pip;
# default /etc/ssl/certs/ca-certificates.crt when it exists, "" for none), SMOKE_WORK
# (/var/tmp/auditlog-smoke: containers.conf and the run's files), SMOKE_LOAD_SECONDS (16),
# SMOKE_BENCH (0), SMOKE_BENCH_SECONDS (10), SMOKE_BENCH_ROUNDS (2), SMOKE_RMI (0),
# SMOKE_REF (build the image from this commit, e.g. HEAD, instead of the working tree),
# CONTAINERS_CONF.
set -euo pipefail

SMOKE_TIMEOUT="${SMOKE_TIMEOUT:-1200}"
if [ -z "${SMOKE_UNDER_TIMEOUT:-}" ]; then
    # bound the whole run; on timeout the EXIT trap below still tears down (up to 2 min more)
    SMOKE_UNDER_TIMEOUT=1 exec timeout -k 120 "$SMOKE_TIMEOUT" "$0" "$@"
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPLOY="$ROOT/deploy"
PROJECT="${SMOKE_PROJECT:-auditlog-smoke}"
PORT="${SMOKE_PORT:-18080}"
APP_PORT="${SMOKE_APP_PORT:-18001}"
WORK="${SMOKE_WORK:-/var/tmp/auditlog-smoke}"
BASE="${BASE:-docker.io/library/python:3.12-slim}"
DEBIAN_BASE="${DEBIAN_BASE:-localhost/debian-base:bookworm}"
POSTGRES_IMAGE="${POSTGRES_IMAGE:-docker.io/library/postgres:16}"
HAPROXY_IMAGE="${HAPROXY_IMAGE:-docker.io/library/haproxy:2.8}"
AUDITLOG_IMAGE="localhost/auditlog:smoke"
LOAD_SECONDS="${SMOKE_LOAD_SECONDS:-16}"
if [ -z "${SMOKE_CA+set}" ] && [ -s /etc/ssl/certs/ca-certificates.crt ]; then
    SMOKE_CA=/etc/ssl/certs/ca-certificates.crt
fi
SMOKE_CA="${SMOKE_CA:-}"

started=$(date +%s)
say() { printf '[%4ss] %s\n' "$(($(date +%s) - started))" "$*"; }
fail() {
    say "FAILED: $*"
    exit 1
}
for tool in podman podman-compose python3; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install podman podman-compose)"
done

mkdir -p "$WORK"
run="$(mktemp -d "$WORK/run.XXXXXX")"
if [ -z "${CONTAINERS_CONF:-}" ]; then
    # runc (crun refuses some hybrid cgroup layouts) and ulimits within the machine's hard
    # limits: see docs/deploy.md
    hard_nofile="$(ulimit -Hn)"
    [ "$hard_nofile" = unlimited ] && hard_nofile=1048576
    cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$hard_nofile:$hard_nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF="$WORK/containers.conf"
fi

# podman without systemd logs an error about healthcheck timers on every start; drop those
quiet() { grep -v -e 'systemd connection' -e 'failed to connect to syslog' || true; }
pm() { podman "$@" 2> >(quiet >&2); }

export POSTGRES_PASSWORD="smoke-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
export AUDITLOG_LOG_ORIGIN="smoke.auditlog.test" AUDITLOG_IMAGE POSTGRES_IMAGE HAPROXY_IMAGE
export AUDITLOG_BIND=127.0.0.1 AUDITLOG_HTTP_PORT="$PORT" AUDITLOG_APP_PORT="$APP_PORT"
compose_files=(-f "$DEPLOY/compose.yaml")
if [ "${SMOKE_BENCH:-0}" = 1 ]; then
    compose_files+=(-f "$DEPLOY/compose.bench.yaml")
fi
compose() { timeout 180 podman-compose -p "$PROJECT" "${compose_files[@]}" "$@" >>"$run/compose.log" 2>&1; }
ctr() { echo "${PROJECT}_$1_1"; }
LB="http://127.0.0.1:$PORT"

teardown() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    if [ "$status" -ne 0 ]; then
        say "failed (status $status); the containers and their last log lines:"
        podman ps -a --filter "label=io.podman.compose.project=$PROJECT" \
            --format '  {{.Names}} {{.Status}}' 2>&1 | quiet
        for c in db migrate app1 app2 lb; do
            podman logs --tail 15 "$(ctr "$c")" 2>&1 | quiet | sed "s/^/  $c: /"
        done
        tail -n 20 "$run/compose.log" 2>/dev/null | sed 's/^/  compose: /'
    fi
    say "tearing down"
    local label="io.podman.compose.project=$PROJECT" ids vols
    ids="$(podman ps -aq --filter "label=$label")"
    vols=""
    for id in $ids; do
        vols+=" $(podman inspect --format '{{range .Mounts}}{{if .Name}}{{.Name}} {{end}}{{end}}' "$id" 2>/dev/null)"
    done
    compose down -v
    # podman-compose 1.0.3 leaves anonymous volumes (the image's VOLUME) and the network
    ids="$(podman ps -aq --filter "label=$label")"
    [ -n "$ids" ] && podman rm -f -v $ids >/dev/null 2>&1
    for v in $vols $(podman volume ls -q --filter "label=$label"); do
        podman volume exists "$v" && podman volume rm -f "$v" >/dev/null 2>&1
    done
    podman network exists "${PROJECT}_default" && podman network rm -f "${PROJECT}_default" >/dev/null 2>&1
    left="$(podman ps -aq --filter "label=$label") $(podman volume ls -q --filter "label=$label")"
    for v in $vols; do podman volume exists "$v" && left+=" $v"; done
    podman network exists "${PROJECT}_default" && left+=" ${PROJECT}_default"
    if [ -n "${left// /}" ]; then
        say "teardown: LEFT BEHIND: $left"
        [ "$status" -eq 0 ] && status=1
    else
        say "teardown: no container, volume or network of $PROJECT left"
    fi
    if [ "${SMOKE_RMI:-0}" = 1 ]; then
        podman rmi -f "$AUDITLOG_IMAGE" >/dev/null 2>&1
    fi
    rm -rf "$run"
    if [ "$status" -eq 0 ]; then
        say "smoke test PASSED in $(($(date +%s) - started)) s"
    else
        say "smoke test FAILED (status $status) after $(($(date +%s) - started)) s"
    fi
    exit "$status"
}
trap teardown EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

if [ -n "$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT")" ]; then
    fail "containers of project $PROJECT exist already (a run in progress?); set SMOKE_PROJECT"
fi

# -- 1. base images -----------------------------------------------------------------------
have_or_pull() {
    podman image exists "$1" || timeout 300 podman pull -q "$1" >/dev/null 2>&1
}
debian_base() {
    if ! podman image exists "$DEBIAN_BASE"; then
        command -v debootstrap >/dev/null || fail "debootstrap is not installed"
        say "making $DEBIAN_BASE with debootstrap"
        WORK="$WORK" timeout 900 "$DEPLOY/images/debootstrap-base.sh" "$DEBIAN_BASE" 2>&1 |
            grep -v '^Copying\|^Writing\|^Storing' | sed 's/^/  /'
    fi
}
if have_or_pull "$BASE"; then
    say "base: $BASE"
else
    say "base: $BASE cannot be pulled; using a Debian base made with debootstrap"
    debian_base
    BASE="$DEBIAN_BASE"
fi
if ! have_or_pull "$POSTGRES_IMAGE"; then
    debian_base
    POSTGRES_IMAGE=localhost/postgres:15-debian
    if ! podman image exists "$POSTGRES_IMAGE"; then
        say "building $POSTGRES_IMAGE from Debian's postgresql-15"
        timeout 900 podman build -q -f "$DEPLOY/images/postgres.Containerfile" \
            --build-arg BASE="$DEBIAN_BASE" -t "$POSTGRES_IMAGE" "$DEPLOY/images" \
            >"$run/postgres-build.log" 2>&1 || {
            tail -n 30 "$run/postgres-build.log"
            fail "building $POSTGRES_IMAGE"
        }
    fi
fi
if ! have_or_pull "$HAPROXY_IMAGE"; then
    debian_base
    HAPROXY_IMAGE=localhost/haproxy:debian
    if ! podman image exists "$HAPROXY_IMAGE"; then
        say "building $HAPROXY_IMAGE from Debian's haproxy"
        timeout 900 podman build -q -f "$DEPLOY/images/haproxy.Containerfile" \
            --build-arg BASE="$DEBIAN_BASE" -t "$HAPROXY_IMAGE" "$DEPLOY/images" \
            >"$run/haproxy-build.log" 2>&1 || {
            tail -n 30 "$run/haproxy-build.log"
            fail "building $HAPROXY_IMAGE"
        }
    fi
fi
say "images: PostgreSQL $POSTGRES_IMAGE, load balancer $HAPROXY_IMAGE"

# -- 2. the service's image ---------------------------------------------------------------
secret=()
[ -n "$SMOKE_CA" ] && secret=(--secret "id=ca,src=$SMOKE_CA")
context="$ROOT"
if [ -n "${SMOKE_REF:-}" ]; then
    # build a commit rather than the working tree (which others may be editing)
    context="$run/context"
    mkdir -p "$context"
    git -C "$ROOT" archive "$SMOKE_REF" | tar -x -C "$context" || fail "git archive $SMOKE_REF"
    say "building from $SMOKE_REF ($(git -C "$ROOT" rev-parse --short "$SMOKE_REF")), not the working tree"
fi
t0=$(date +%s)
timeout 900 podman build --format docker --build-arg BASE="$BASE" "${secret[@]}" \
    -t "$AUDITLOG_IMAGE" "$context" >"$run/build.log" 2>&1 || {
    tail -n 40 "$run/build.log"
    fail "building the image"
}
size=$(podman image inspect --format '{{.Size}}' "$AUDITLOG_IMAGE")
say "built $AUDITLOG_IMAGE on $BASE in $(($(date +%s) - t0)) s: $((size / 1000000)) MB"
podman history --format '{{.Size}}	{{.CreatedBy}}' "$AUDITLOG_IMAGE" | grep -v '^0 B' |
    cut -c1-100 | sed 's/^/  layer /'
user=$(podman image inspect --format '{{.Config.User}}' "$AUDITLOG_IMAGE")
volumes=$(podman image inspect --format '{{range $k, $v := .Config.Volumes}}{{$k}} {{end}}' "$AUDITLOG_IMAGE")
health=$(podman image inspect --format '{{if .HealthCheck}}{{.HealthCheck.Test}}{{end}}' "$AUDITLOG_IMAGE")
case "$user" in "" | 0 | 0:* | root | root:*) fail "the image runs as root ('$user')" ;; esac
[[ "$volumes" == *"/var/lib/auditlog"* ]] || fail "no VOLUME /var/lib/auditlog ($volumes)"
[[ "$health" == *healthz* ]] || fail "no HEALTHCHECK on /healthz ($health)"
pm run --rm --network none --entrypoint /bin/sh "$AUDITLOG_IMAGE" -c \
    'test ! -e /tmp/pip-ca.pem && test -z "$(ls -A /run/secrets 2>/dev/null)" &&
     test ! -e /opt/auditlog/bin/pip && test ! -e /opt/build' ||
    fail "the image holds the build secret, pip or the build venv"
say "image: user $user, volume $volumes, healthcheck on /healthz, no secret, no pip"

# -- 3. the stack -------------------------------------------------------------------------
# podman-compose 1.0.3 ignores the network's ipam subnet, which AUDITLOG_TRUSTED_PROXIES names:
# make the network first, as compose would (it is used as it is when it exists)
SUBNET="${AUDITLOG_SUBNET:-172.29.57.0/24}"
export AUDITLOG_SUBNET="$SUBNET"
podman network create --subnet "$SUBNET" --label "io.podman.compose.project=$PROJECT" \
    --label "com.docker.compose.project=$PROJECT" "${PROJECT}_default" >/dev/null ||
    fail "creating the network ${PROJECT}_default on $SUBNET"
t0=$(date +%s.%N)
compose up -d || fail "podman-compose up (see above)"
up_s=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
python3 "$DEPLOY/smoke_load.py" probe "$LB/readyz" --timeout 180 >/dev/null ||
    fail "/readyz through the load balancer"
cold=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
say "compose up: /readyz 200 through the load balancer $cold s after 'up' began (cold: a new database; 'up' itself took $up_s s)"
for c in app1 app2; do
    for _ in $(seq 1 60); do
        pm healthcheck run "$(ctr "$c")" >/dev/null 2>&1 && break
        sleep 1
    done
    pm healthcheck run "$(ctr "$c")" >/dev/null || fail "$c's HEALTHCHECK does not pass"
done
# the one-shot may still be in its restart loop (on-failure) if it started before PostgreSQL
for _ in $(seq 1 60); do
    migrate_state=$(podman inspect --format '{{.State.ExitCode}} {{.State.Status}} {{.RestartCount}}' "$(ctr migrate)")
    [[ "$migrate_state" == "0 exited "* ]] && break
    sleep 1
done
[[ "$migrate_state" == "0 exited "* ]] ||
    fail "the migrate one-shot did not exit 0 (exit code, status, restarts: $migrate_state)"
say "both replicas pass the image's HEALTHCHECK; migrate exited 0 (after ${migrate_state##* } restarts)"
# A container of the stack (Podman 4.3 with netavark) sometimes cannot resolve `db` for a
# while after containers start: seconds, once over 40 s, while aardvark-dns answers the same
# question from the host. Running replicas keep their database connections, but new ones
# (and the commands run inside them) fail. Wait for it, say so, and after 20 s restart one
# container of the network (it has ended at once, or up to 30 s later, after that).
dns_ok() { timeout 4 podman exec "$(ctr "$dns_in")" getent hosts db >/dev/null 2>&1; }
ensure_dns() { # the service whose container must resolve db
    dns_in="$1"
    dns_ok && return 0
    local t0 i
    t0=$(date +%s)
    while [ $(($(date +%s) - t0)) -lt 20 ]; do
        sleep 1
        if dns_ok; then
            say "WARNING: the network's DNS resolved 'db' in $dns_in only after $(($(date +%s) - t0)) s more (a Podman/netavark delay)"
            return 0
        fi
    done
    say "WARNING: the network's DNS has not resolved 'db' in $dns_in for 20 s; asked from the host:"
    python3 "$DEPLOY/smoke_load.py" dns "${SUBNET%.*}.1" "db.dns.podman" | sed 's/^/    /'
    say "         restarting $(ctr lb), and waiting 30 s more"
    pm restart "$(ctr lb)" >/dev/null
    for i in $(seq 1 30); do
        dns_ok && break
        sleep 1
    done
    dns_ok || fail "the network's DNS does not resolve 'db' in $dns_in"
    python3 "$DEPLOY/smoke_load.py" probe "$LB/readyz" --timeout 30 >/dev/null ||
        fail "/readyz through the load balancer after restarting it"
}
ensure_dns app1

# -- 4. a key with the CLI, an event through the load balancer ------------------------------
ensure_dns app1
key=$(pm exec "$(ctr app1)" auditlog keys create --tenant smoke --scopes admin --name smoke | tail -n 1)
[[ "$key" == alk_* ]] || fail "auditlog keys create printed no key"
say "made an admin key for tenant smoke with 'auditlog keys create' inside $(ctr app1)"
python3 "$DEPLOY/smoke_load.py" roundtrip --url "$LB" --key "$key" | sed 's/^/  /'
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "write and read through the load balancer"
ensure_dns app2
printf '%s\n' "smoke-password-$RANDOM$RANDOM" |
    pm exec -i "$(ctr app2)" auditlog users add smoke-user --tenant smoke --scopes events:read |
    sed 's/^/  /'
python3 "$DEPLOY/smoke_load.py" proxy --url "$LB" --key "$key" --user smoke-user | sed 's/^/  /'
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "the client's address and request id behind the load balancer"

# -- 5. SIGKILL and SIGTERM under load ------------------------------------------------------
say "load: 16 threads of single events through the LB for $LOAD_SECONDS s"
python3 "$DEPLOY/smoke_load.py" write --url "$LB" --key "$key" --seconds "$LOAD_SECONDS" \
    --threads 16 --retry-window 30 --acked "$run/acked" >"$run/write.log" 2>&1 &
writer=$!
sleep 4
# SIGKILL to the replica's process from the host, as a crash or the OOM killer would (a
# `podman kill` counts as stopped by the user, and no restart policy applies to it)
restarts=$(podman inspect --format '{{.RestartCount}}' "$(ctr app2)")
pid=$(podman inspect --format '{{.State.Pid}}' "$(ctr app2)")
kill -KILL "$pid"
t0=$(date +%s.%N)
say "  SIGKILLed $(ctr app2)'s auditlog serve (host pid $pid)"
healthy=""
for _ in $(seq 1 120); do
    if [ "$(podman inspect --format '{{.RestartCount}}' "$(ctr app2)" 2>/dev/null)" != "$restarts" ] &&
        pm healthcheck run "$(ctr app2)" >/dev/null 2>&1; then
        healthy=1
        break
    fi
    sleep 0.5
done
[ -n "$healthy" ] || fail "$(ctr app2) was not restarted by its restart policy within 60 s"
say "  $(ctr app2) restarted by its restart policy, healthy $(python3 -c "import time; print(f'{time.time() - $t0:.1f}')") s after the kill"
sleep 2
t0=$(date +%s.%N)
pm stop -t 60 "$(ctr app1)" >/dev/null
stop_s=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
code=$(podman inspect --format '{{.State.ExitCode}}' "$(ctr app1)")
podman logs --tail 6 "$(ctr app1)" 2>&1 | quiet |
    sed -E 's/^\{"time":"([^"]*)".*"message":"([^"]*)".*/\1 \2/; s/^/    app1: /'
[ "$code" = 0 ] || fail "$(ctr app1) exited $code on SIGTERM (expected 0 after draining)"
say "  SIGTERM to $(ctr app1) (PID 1, no init): drained and exited 0 in $stop_s s"
pm start "$(ctr app1)" >/dev/null
wait "$writer" || { cat "$run/write.log"; fail "the load run"; }
sed 's/^/  /' "$run/write.log"
python3 "$DEPLOY/smoke_load.py" check --url "$LB" --key "$key" --acked "$run/acked" | sed 's/^/  /'
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "acknowledged events missing or stored twice"
ensure_dns app2
pm exec "$(ctr app2)" auditlog verify --wait 5 >"$run/verify.log" 2>&1 || {
    cat "$run/verify.log"
    fail "auditlog verify"
}
sed 's/^/  verify: /' "$run/verify.log"
say "every acknowledged event stored once; auditlog verify: intact"

# -- optional: throughput ------------------------------------------------------------------
if [ "${SMOKE_BENCH:-0}" = 1 ]; then
    command -v wrk >/dev/null || fail "SMOKE_BENCH=1 needs wrk"
    python3 "$DEPLOY/smoke_load.py" probe "http://127.0.0.1:$APP_PORT/readyz" --timeout 60 >/dev/null ||
        fail "app1 direct on 127.0.0.1:$APP_PORT"
    bench_s="${SMOKE_BENCH_SECONDS:-10}"
    # the machine's busy CPU (all processes, in cores) since the previous call
    cpu_mark() { read -r _ u n s i w q sq st _ </proc/stat; echo "$((u + n + s + q + sq + st)) $((u + n + s + q + sq + st + i + w))"; }
    cpu_since() {
        local now
        now=$(cpu_mark)
        python3 -c "import os,sys; b0,t0,b1,t1=map(int,sys.argv[1:]); print(f'{(b1-b0)/(t1-t0)*os.cpu_count():.2f}')" $1 $now
    }
    m=$(cpu_mark)
    sleep 3
    say "bench: machine busy before (stack idle): $(cpu_since "$m") of $(nproc) cores"
    say "bench: bench/post_event.lua, wrk -t1 -c64, 2 s warm-up then $bench_s s; per round: through"
    say "       HAProxy to both replicas, to app1 directly, through HAProxy with app2 stopped"
    # CPU time (ns) of a container's cgroup: its process and children (the search indexer)
    ctr_cpu() {
        local pid cg
        pid=$(podman inspect --format '{{.State.Pid}}' "$(ctr "$1")" 2>/dev/null) || { echo 0; return; }
        cg=$(awk -F: '$2 == "cpuacct" || $2 ~ /(^|,)cpuacct(,|$)/ {print $3}' "/proc/$pid/cgroup" 2>/dev/null)
        if [ -n "$cg" ] && [ -r "/sys/fs/cgroup/cpuacct$cg/cpuacct.usage" ]; then
            cat "/sys/fs/cgroup/cpuacct$cg/cpuacct.usage"
        else # cgroup v2
            cg=$(awk -F: '$1 == "0" {print $3}' "/proc/$pid/cgroup")
            awk '$1 == "usage_usec" {print $2 * 1000}' "/sys/fs/cgroup$cg/cpu.stat" 2>/dev/null || echo 0
        fi
    }
    bench_one() { # label url
        AUDITLOG_KEY="$key" wrk -t1 -c64 -d2s -s "$ROOT/bench/post_event.lua" "$2" >/dev/null 2>&1
        local m r c0=() c1=() t0 t1 parts="" i=0 c
        for c in db app1 app2 lb; do c0+=("$(ctr_cpu "$c")"); done
        m=$(cpu_mark)
        t0=$(date +%s%N)
        r=$(AUDITLOG_KEY="$key" wrk -t1 -c64 -d"${bench_s}s" -s "$ROOT/bench/post_event.lua" "$2" | grep '^RESULT')
        t1=$(date +%s%N)
        for c in db app1 app2 lb; do c1+=("$(ctr_cpu "$c")"); done
        for c in db app1 app2 lb; do
            parts+=" $c=$(python3 -c "print(f'{max(0, $((c1[i] - c0[i]))) / $((t1 - t0)):.2f}')")"
            i=$((i + 1))
        done
        say "  round $round, $1: ${r#RESULT }"
        say "      cores busy: machine=$(cpu_since "$m")$parts (the rest: wrk and other processes)"
    }
    for round in $(seq 1 "${SMOKE_BENCH_ROUNDS:-2}"); do
        bench_one "LB, 2 replicas" "$LB"
        bench_one "app1 direct" "http://127.0.0.1:$APP_PORT"
        pm stop -t 60 "$(ctr app2)" >/dev/null
        sleep 3 # HAProxy marks it down after two failed checks, 1 s apart
        bench_one "LB, 1 replica" "$LB"
        pm start "$(ctr app2)" >/dev/null
        for _ in $(seq 1 60); do
            pm healthcheck run "$(ctr app2)" >/dev/null 2>&1 && break
            sleep 0.5
        done
        sleep 3 # and up after two good ones
    done
fi
