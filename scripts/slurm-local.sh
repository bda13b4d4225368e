#!/usr/bin/env bash
# A single-node Slurm cluster on 127.0.0.1 for tests and CI (Debian packages, Slurm 22.05).
#
#   scripts/slurm-local.sh start   install (if needed), configure and start munge, mariadb,
#                                  slurmdbd, slurmctld and slurmd; wait until a job runs
#   scripts/slurm-local.sh stop    stop the daemons this script started
#   scripts/slurm-local.sh status  sinfo, and whether the controller answers
#
# Needs root (it writes /etc/slurm and starts daemons without systemd). The node is called
# `localhost` (slurmd -N), whatever the host's name; it offers this machine's CPUs and most of
# its memory. Accounting (slurmdbd on mariadb) is on, so `sacct` works.
#
# Facts this encodes (Slurm 22.05.8, no systemd, no cgroups):
# - munged runs as user munge with /run/munge owned by munge;
# - ProctrackType=proctrack/linuxproc and TaskPlugin=task/none, with no cgroup.conf;
# - DefMemPerCPU is set, or each job takes the whole node's memory;
# - DependencyParameters=kill_invalid_depend cancels the children of failed jobs;
# - SchedulerParameters=bf_interval=1, or small jobs start about one a second.
set -euo pipefail

STATE=/var/lib/electra-pipe-slurm
LOGS=/var/log/electra-pipe-slurm
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server procps)

log() { echo "slurm-local: $*" >&2; }

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

write_config() {
    local cpus mem_mb
    cpus=$(nproc)
    mem_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 3 / 4))
    mkdir -p /etc/slurm "$STATE"/{ctld,d} "$LOGS"
    cat >/etc/slurm/slurm.conf <<EOF
ClusterName=electrapipe
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobCompType=jobcomp/none
AccountingStoreFlags=job_comment
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
DependencyParameters=kill_invalid_depend
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
ReturnToService=2
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=electra-pipe
StorageLoc=slurm_acct_db
EOF
    chmod 600 /etc/slurm/slurmdbd.conf
    rm -f /etc/slurm/cgroup.conf
}

running() { pgrep -x "$1" >/dev/null; }

start_munge() {
    running munged && return
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    [[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
}

start_mariadb() {
    if ! running mariadbd; then
        mkdir -p /run/mysqld
        chown mysql:mysql /run/mysqld
        [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
        (setsid /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql \
            --socket=/run/mysqld/mysqld.sock --bind-address=127.0.0.1 \
            >"$LOGS/mariadb.log" 2>&1 &)
    fi
    wait_for "mariadb" 60 mariadb -e "select 1"
    mariadb <<'EOF'
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'electra-pipe';
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
}

# wait_for WHAT SECONDS COMMAND...: retry COMMAND every half second until it succeeds.
wait_for() {
    local what=$1 seconds=$2
    shift 2
    for ((i = 0; i < seconds * 2; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    log "$what did not come up within ${seconds}s (logs: $LOGS)"
    return 1
}

start() {
    [[ $(id -u) == 0 ]] || { log "must run as root"; exit 1; }
    install_packages
    write_config
    start_munge
    start_mariadb
    running slurmdbd || /usr/sbin/slurmdbd
    wait_for "slurmdbd" 60 bash -c "exec 3<>/dev/tcp/127.0.0.1/6819"
    # The cluster must be known to the database before jobs are accounted.
    sacctmgr -i add cluster electrapipe >/dev/null 2>&1 || true
    running slurmctld || /usr/sbin/slurmctld
    running slurmd || /usr/sbin/slurmd -N localhost
    wait_for "slurmctld" 60 scontrol ping
    scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
    wait_for "the node" 60 bash -c "sinfo -h -N -o %t | grep -qx idle"
    local id
    id=$(sbatch --parsable --wrap true --job-name slurm-local-check --output /dev/null)
    wait_for "a first job (id $id)" 60 bash -c "sacct -X -n -P -j $id -o State | grep -qx COMPLETED"
    log "up: $(sinfo -h -o '%P %D nodes, %c CPUs, %m MB')"
}

stop() {
    for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
        if running "$daemon"; then
            pkill -x "$daemon" || true
            for ((i = 0; i < 40; i++)); do running "$daemon" || break; sleep 0.25; done
            running "$daemon" && pkill -9 -x "$daemon" || true
        fi
    done
    log "stopped"
}

status() {
    scontrol ping && sinfo
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
