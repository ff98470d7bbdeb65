#!/bin/bash
# The Slurm recipe, for real, on one Debian machine: installs slurm-wlm and
# munge if they are missing, starts a single-node cluster on localhost
# (munged, slurmctld, slurmd) unless one answers already, submits
# plugwarden-array.sbatch as a 4-task array over a batch of mixed inputs
# (some crash, hang or break the policy), waits, merges and verifies the
# shard logs, checks every verdict and every output, and stops only the
# daemons it started.
#
# Usage (root, from a checkout):  deploy/slurm/smoke.sh
#   PW_BIN_DIR  where plugwarden and pw-probe are (default: target/release,
#               else target/debug; built with cargo when neither has them)
#   KEEP=1      keep the work directory (logs, outputs) for a look
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
tasks=4
say() { echo "smoke: $*"; }
die() { echo "smoke: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"
[ -r /etc/debian_version ] || die "this script is for Debian (apt, Debian's slurm-wlm)"

# --- binaries -------------------------------------------------------------
bin_dir=${PW_BIN_DIR:-}
if [ -z "$bin_dir" ]; then
    for d in "$repo/target/release" "$repo/target/debug"; do
        if [ -x "$d/plugwarden" ] && [ -x "$d/pw-probe" ]; then bin_dir=$d; break; fi
    done
fi
if [ -z "$bin_dir" ]; then
    command -v cargo >/dev/null || die "no plugwarden build found and no cargo to build one"
    say "building plugwarden and pw-probe (release)"
    (cd "$repo" && cargo build --release -q -p plugwarden -p pw-probe)
    bin_dir=$repo/target/release
fi

# --- packages ---------------------------------------------------------------
missing=()
for pkg in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- a world-readable work directory (the job runs plugins as uid 65534) -----
work=$(mktemp -d /tmp/pw-slurm-smoke.XXXXXX)
chmod 0755 "$work"
mkdir -p "$work/bin" "$work/in/sub" "$work/shared" "$work/logs" "$work/slurm/spool"
install -m 0755 "$bin_dir/plugwarden" "$bin_dir/pw-probe" "$work/bin/"

started_munged=
started_slurm=
jobid=
cleanup() {
    local status=$?
    set +e
    if [ -n "$jobid" ]; then scancel "$jobid" 2>/dev/null; fi
    if [ -n "$started_slurm" ]; then
        scontrol shutdown >/dev/null 2>&1
        wait_gone "$(cat "$work/slurm/slurmctld.pid" 2>/dev/null)" "$(cat "$work/slurm/slurmd.pid" 2>/dev/null)"
        say "stopped slurmctld and slurmd"
    fi
    if [ -n "$started_munged" ]; then
        kill "$started_munged" 2>/dev/null
        wait_gone "$started_munged"
        say "stopped munged"
    fi
    if [ "${KEEP:-0}" = 1 ] || [ $status != 0 ]; then
        say "work directory kept: $work"
    else
        rm -rf "$work"
    fi
    exit $status
}
# A process counts as gone once it no longer exists or is a zombie (PID 1
# may reap late).
wait_gone() {
    local pid state
    for pid in "$@"; do
        [ -n "$pid" ] || continue
        for _ in $(seq 100); do
            state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || break
            [ "$state" = Z ] && break
            sleep 0.1
        done
    done
}
trap cleanup EXIT

# --- munge -------------------------------------------------------------------
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged is running already: using it"
else
    install -d -o munge -g munge -m 0755 /run/munge
    chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged --force
    started_munged=$(cat /run/munge/munged.pid)
    munge -n | unmunge >/dev/null || die "munged does not answer"
    say "started munged (pid $started_munged)"
fi

# --- slurm ---------------------------------------------------------------------
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(free -m | awk '/^Mem:/ {print $2}') * 9 / 10 ))
if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
    die "slurmctld or slurmd runs already; this script starts a cluster of its own: stop those first"
fi
export SLURM_CONF=$work/slurm/slurm.conf
chown slurm:slurm "$work/slurm"
cat > "$SLURM_CONF" <<CONF
ClusterName=pwsmoke
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$work/slurm
SlurmdSpoolDir=$work/slurm/spool
SlurmctldPidFile=$work/slurm/slurmctld.pid
SlurmdPidFile=$work/slurm/slurmd.pid
SlurmctldLogFile=$work/slurm/slurmctld.log
SlurmdLogFile=$work/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=300
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
chmod 0644 "$SLURM_CONF"
/usr/sbin/slurmctld -f "$SLURM_CONF"
/usr/sbin/slurmd -f "$SLURM_CONF"
started_slurm=1
for _ in $(seq 100); do
    state=$(sinfo -h -o %t 2>/dev/null | head -n 1)
    case $state in
        idle*) break ;;
        down* | drain*) scontrol update nodename="$host" state=resume 2>/dev/null ;;
    esac
    sleep 0.2
done
[ "${state:-}" = idle ] || die "the node is not idle (sinfo: ${state:-no answer}); see $work/slurm/*.log"
say "started slurmctld and slurmd: node $host idle, $cpus CPUs"

# --- the batch: what each input asks pw-probe to do, and the verdict due ------
declare -A expect
n=0
add() { # name command verdict
    printf '%s' "$2" > "$work/in/$1"
    expect[$1]=$3
    n=$((n + 1))
}
for i in $(seq -w 0 31); do add "ok-$i" "echo:hello $i" ok; done
for i in 1 2 3; do add "sub/crash-$i" crash crashed; done
for i in 1 2 3; do add "sub/violate-$i" socket violation; done
for i in 1 2; do add "sub/hang-$i" sleep timeout; done
say "$n inputs: 32 ok, 3 crash, 3 violate the policy, 2 hang"

# --- submit and wait ---------------------------------------------------------------
export PW_BIN=$work/bin/plugwarden PW_SHARED=$work/shared PW_INPUTS=$work/in PW_COMMAND=run
export PW_ARGS="--plugin $work/bin/pw-probe --policy strict --timeout 2s"
jobid=$(sbatch --parsable --array=0-$((tasks - 1)) --export=ALL \
    --output="$work/logs/%A_%a.out" --chdir="$work" "$repo/deploy/slurm/plugwarden-array.sbatch")
say "submitted array job $jobid ($tasks tasks)"
deadline=$((SECONDS + 300))
while :; do
    states=$(scontrol show job -o "$jobid" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | sort | uniq -c | tr -s ' ' || true)
    if [ -n "$states" ] && ! grep -qE 'PENDING|RUNNING|CONFIGURING|COMPLETING|SUSPENDED' <<<"$states"; then break; fi
    [ $SECONDS -lt $deadline ] || die "the array did not finish in 300 s: $states"
    sleep 0.5
done
done_tasks=$(scontrol show job -o "$jobid" | grep -c 'JobState=COMPLETED.* ExitCode=0:0' || true)
[ "$done_tasks" = "$tasks" ] || die "$done_tasks of $tasks tasks COMPLETED with exit 0; see $work/logs"
jobid=
say "all $tasks tasks completed"

# --- merge, verify, check ------------------------------------------------------------
pw=$work/bin/plugwarden
"$pw" audit status "$work"/shared/audit/shard-*.jsonl --inputs "$work/in"
"$pw" audit merge "$work"/shared/audit/shard-*.jsonl --inputs "$work/in" --out "$work/shared/merged.jsonl" \
    || die "audit merge refused the shard logs"
"$pw" audit verify "$work/shared/merged.jsonl" || die "the merged log does not verify"
records=$(grep -c '"input":' "$work/shared/merged.jsonl")
[ "$records" = "$n" ] || die "the merged log holds $records input records, not $n"
wrong=0
for name in "${!expect[@]}"; do
    line=$(grep -F "\"input\":\"$work/in/$name\"" "$work/shared/merged.jsonl")
    verdict=$(sed -E 's/.*"verdict":"([a-z_]+)".*/\1/' <<<"$line")
    out=$work/shared/out/$name
    if [ "$verdict" != "${expect[$name]}" ]; then
        echo "  $name: verdict $verdict, expected ${expect[$name]}"; wrong=$((wrong + 1))
    elif [ "$verdict" = ok ] && [ "$(cat "$out" 2>/dev/null)" != "${name/ok-/hello }" ]; then
        echo "  $name: output $(cat "$out" 2>/dev/null || echo missing), expected ${name/ok-/hello }"; wrong=$((wrong + 1))
    elif [ "$verdict" != ok ] && [ -e "$out" ]; then
        echo "  $name: $verdict but an output was written"; wrong=$((wrong + 1))
    fi
done
[ "$wrong" = 0 ] || die "$wrong inputs with a wrong verdict or output"
say "PASS: $tasks shards, $n inputs each judged once with the verdict due, every output checked"
