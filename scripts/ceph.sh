#!/usr/bin/env bash
# A throwaway S3 server for the tests: Ceph radosgw from Debian's packages on a single-node
# cluster (one monitor on 127.0.0.1 with messenger v1 and no auth, one OSD on a memstore of
# GLUCOSESTREAM_TEST_CEPH_MEMSTORE_BYTES, 2 GiB by default, pools of size 1). `scripts/ceph.sh start` installs the packages if missing, starts the
# cluster and gateway, creates an S3 user and writes .services/s3.env (endpoint and keys);
# `scripts/ceph.sh stop` stops the daemons and removes the cluster. Needs root (as in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
state=.services/ceph
mon_port=${GLUCOSESTREAM_TEST_CEPH_MON_PORT:-16789}
rgw_port=${GLUCOSESTREAM_TEST_S3_PORT:-17480}
memstore_bytes=${GLUCOSESTREAM_TEST_CEPH_MEMSTORE_BYTES:-2147483648}
access_key=glucosestream-test
secret_key=glucosestream-test-secret

retry() {  # retry N COMMAND...: run COMMAND until it succeeds, at most N times, 1 s apart
  local tries=$1; shift
  local n
  for ((n = 1; n <= tries; n++)); do
    if "$@" 2>>"${RETRY_LOG:-/dev/null}"; then return 0; fi
    sleep 1
  done
  echo "failed after $tries tries: $*" >&2
  return 1
}

start() {
  if ! command -v radosgw >/dev/null || ! command -v ceph-osd >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
      echo "Ceph not installed; run: sudo apt-get install -y radosgw ceph-mon ceph-osd" >&2
      exit 1
    fi
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      radosgw ceph-mon ceph-osd >/dev/null
  fi
  stop >/dev/null 2>&1 || true
  mkdir -p "$state"
  local dir; dir=$(mktemp -d /tmp/glucosestream-ceph-XXXXXX)
  echo "$dir" > "$state/dir"
  local fsid; fsid=$(cat /proc/sys/kernel/random/uuid)
  mkdir -p "$dir"/{run,log,mon/ceph-a,osd/ceph-0,rgw}
  cat > "$dir/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
osd objectstore = memstore
memstore device bytes = $memstore_bytes
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
# The script places the OSD in the CRUSH map itself. Left on, the OSD asks the monitor to do it
# at start-up, and on a loaded machine that request can go out before the OSD has the monitor
# map; the monitor then refuses it ("wrong fsid") and the OSD exits.
osd crush update on start = false
osd class update on start = false
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
mon data = $dir/mon/ceph-\$id
osd data = $dir/osd/ceph-\$id
keyring = $dir/keyring
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $dir/rgw
rgw dns name = 127.0.0.1
CONF
  local conf="$dir/ceph.conf"
  ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --addv a "[v1:127.0.0.1:$mon_port]" --fsid "$fsid" "$dir/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring"
  ceph-mon -c "$conf" -i a 2>>"$dir/log/daemons.err"
  # The monitor answers commands a moment after it starts; until then the CLI may fail (seen:
  # "Error EPERM: problem getting command descriptions from mon"), so wait for it.
  retry 60 ceph -c "$conf" --connect-timeout 5 mon stat
  local osd_uuid; osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  local id; id=$(retry 30 ceph -c "$conf" --connect-timeout 5 osd new "$osd_uuid")
  ceph-osd -c "$conf" -i "$id" --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>&1
  retry 30 ceph -c "$conf" --connect-timeout 5 osd crush add "osd.$id" 1.0 root=default >/dev/null
  ceph-osd -c "$conf" -i "$id" 2>>"$dir/log/daemons.err"
  radosgw -c "$conf" -n client.rgw.a 2>>"$dir/log/daemons.err"
  local deadline=$((SECONDS + 90))
  until curl -s -o /dev/null "http://127.0.0.1:$rgw_port/"; do
    if [ $SECONDS -gt $deadline ]; then
      echo "radosgw did not start; see $dir/log" >&2
      exit 1
    fi
    sleep 0.5
  done
  retry 30 radosgw-admin -c "$conf" user create --uid=glucosestream --display-name=glucosestream \
    --access-key="$access_key" --secret-key="$secret_key" >/dev/null
  cat > .services/s3.env <<ENV
GLUCOSESTREAM_TEST_S3_ENDPOINT=http://127.0.0.1:$rgw_port
GLUCOSESTREAM_TEST_S3_ACCESS_KEY=$access_key
GLUCOSESTREAM_TEST_S3_SECRET_KEY=$secret_key
ENV
  echo "http://127.0.0.1:$rgw_port"
}

stop() {
  [ -f "$state/dir" ] || return 0
  local dir; dir=$(cat "$state/dir")
  for pidfile in "$dir"/run/*.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  pkill -f "$dir/ceph.conf" 2>/dev/null || true
  sleep 0.5
  pkill -9 -f "$dir/ceph.conf" 2>/dev/null || true
  rm -rf "$dir" "$state" .services/s3.env
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
