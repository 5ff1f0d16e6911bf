#!/bin/bash
# Second stage of the testbed VM, started by init inside the chroot of the host's /.
# Sets up soft-RoCE on a veth and an fsdax ext4 on /dev/pmem0, then runs the caller's
# command (or a shell). Anything that goes wrong before that is reported through
# $ctl/status so that scripts/testbed fails loudly instead of running the command.
set -uo pipefail
ctl=/run/daxshare-testbed
addr=169.254.77.1
export PATH=/opt/swift/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 debian_chroot=testbed

say() { echo "testbed-guest: [$(cut -d' ' -f1 /proc/uptime)] $*"; }
grep -qw testbed_quiet /proc/cmdline && say() { :; }
fail() {
    say "$*"
    echo "setup-failed: $*" >"$ctl/status"
    exit 1
}

hostname testbed
say "setting up rxe0"
ip link set lo up
# rxe refuses lo; on a veth it works, and a client of the same address is served through
# rxe's loopback. MTU 9000 before `rdma link add` gives active_mtu 4096 instead of 1024:
# rxe works per packet in software, so that is most of its throughput.
ip link add veth0 mtu 9000 type veth peer name veth1 mtu 9000 || fail "cannot create veth0"
ip addr add "$addr/24" dev veth0
ip link set veth1 up && ip link set veth0 up || fail "cannot bring veth0 up"
rdma link add rxe0 type rxe netdev veth0 || fail "rdma link add rxe0 failed (rdma_rxe not loaded?)"
for _ in $(seq 100); do
    rdma link show rxe0/1 2>/dev/null | grep -q 'state ACTIVE' && break
    sleep 0.1
done
info=$(ibv_devinfo -d rxe0 2>&1) || fail "ibv_devinfo -d rxe0 failed: $info"
grep -q PORT_ACTIVE <<<"$info" || fail "rxe0 is not PORT_ACTIVE"
grep -q 'active_mtu:.*4096' <<<"$info" || fail "rxe0 active_mtu is not 4096"

say "setting up /mnt/pmem"
# memmap=1G!1G makes /dev/pmem0 (via nd_e820). DAX needs the block size to equal the page size.
[ -b /dev/pmem0 ] || fail "no /dev/pmem0 (memmap= kernel argument or nd_e820/nd_pmem missing)"
mkfs.ext4 -q -F -b 4096 -E stride=512,stripe_width=512 /dev/pmem0 || fail "mkfs.ext4 on /dev/pmem0 failed"
mkdir -p /mnt/pmem
mount -t ext4 -o dax /dev/pmem0 /mnt/pmem || fail "mount -o dax /dev/pmem0 failed"
grep -Eq '^/dev/pmem0 /mnt/pmem ext4 .*dax(=always)?([, ]|$)' /proc/mounts ||
    fail "/mnt/pmem is mounted without dax: $(grep pmem /proc/mounts)"

# RDMA registrations pin or track memory; never let RLIMIT_MEMLOCK get in the way.
ulimit -l unlimited

# The caller's CI, TERM and DAXSHARE_* variables (written by scripts/testbed), then ours.
. "$ctl/env"
export DAXSHARE_TEST_ADDR="$addr" DAXSHARE_PMEM=/mnt/pmem
cd "$(cat "$ctl/repo")" || fail "cannot cd to the repo"

say "running the command"
echo started >"$ctl/started"   # from here on a crash is the command's, not the boot's
if [ "$(cat "$ctl/mode")" = shell ]; then
    [ -n "${TESTBED_TTY_SIZE:-}" ] && stty rows "${TESTBED_TTY_SIZE% *}" cols "${TESTBED_TTY_SIZE#* }" </dev/ttyS0
    unset TESTBED_TTY_SIZE
    echo "daxshare testbed: rxe0 on $addr, fsdax at /mnt/pmem. 'exit' powers off." >/dev/ttyS0
    # -c: make the serial line the controlling tty, so job control and ^C work.
    setsid -c -w bash -i </dev/ttyS0 >/dev/ttyS0 2>&1
    rc=$?
else
    bash -c "$(cat "$ctl/cmd")" </dev/null >>"$ctl/out" 2>>"$ctl/err"
    rc=$?
fi
say "command exited $rc"
echo "rc $rc" >"$ctl/status"
