#!/usr/bin/env bash
# Boot test of the chainroute appliance image in qemu-system-x86_64 (KVM when /dev/kvm
# works, else software emulation, TCG). Passes only when, in order:
#   1. first boot (slot A, configured from a NoCloud-style seed): chainrouted.service is
#      active, grpc.health.v1 answers SERVING through a forwarded port (TCP + TLS with
#      client certificates from a CA made here), `chainroute status` answers (remotely
#      over TLS and inside over the Unix socket), the kernel tuning is in force
#      (hugepages, isolated cores), the daemon runs unprivileged, /data was grown;
#   2. upgrade to a second build: chainroute-upgrade writes slot B, the trial boots,
#      serves and is committed; the persistent state survived;
#   3. upgrade to a deliberately broken build: it is written to slot A and boots once,
#      never serves, and the appliance falls back to slot B by itself.
#
#   appliance-image/test.sh            (after `make image`; `make image-test` does both)
# Environment: CR_TEST_ACCEL=kvm|tcg (default: kvm if usable), CR_TEST_BOOT_TIMEOUT (s),
#   CR_TEST_UEFI=1 (boot through OVMF instead of SeaBIOS), CR_TEST_KEEP=1 (keep the VM's
#   files under out/test; on failure leave the VM running).
set -euo pipefail
export PATH="/usr/sbin:/sbin:$PATH"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
# shellcheck source=image.conf
. "$HERE/image.conf"
OUT=${CR_OUT:-$HERE/out}
BIN_DIR=${CR_BIN_DIR:-${CARGO_TARGET_DIR:-$TOP/target}/release}
T=$OUT/test
T0=$(date +%s)

log() { printf '[image-test %4ds] %s\n' $(( $(date +%s) - T0 )) "$*" >&2; }
fail() {
  printf '[image-test %4ds] FAIL: %s\n' $(( $(date +%s) - T0 )) "$*" >&2
  if [ -s "$T/serial.log" ]; then
    echo "---- last 60 lines of the serial console ($T/serial.log) ----" >&2
    tail -n 60 "$T/serial.log" | tr -d '\r' >&2
  fi
  exit 1
}

"$HERE/setup.sh"
[ -s "$OUT/chainroute.qcow2" ] || fail "no image: run make image first ($OUT/chainroute.qcow2)"
[ -x "$BIN_DIR/chainroute" ] || fail "$BIN_DIR/chainroute is missing (cargo build --release -p chainroute-mgmt)"
V1=$(cat "$OUT/VERSION")
BASE=$(readlink -f "$OUT/chainroute.qcow2")

# ---------------------------------------------------------------- accelerator
# KVM when /dev/kvm is there and works; the first boot doubles as the probe: a KVM
# that does not get GRUB onto the serial console within CR_TEST_KVM_PROBE seconds
# (nested KVM can be unusably slow before the guest enables paging) is dropped for TCG.
accel=${CR_TEST_ACCEL:-auto}
case "$accel" in
  auto)
    if [ -r /dev/kvm ] && [ -w /dev/kvm ] &&
       echo quit | timeout 30 qemu-system-x86_64 -accel kvm -M q35 -nodefaults -display none -monitor stdio -S >/dev/null 2>&1; then
      accel=kvm; KVM_PROBE=1
    else
      accel=tcg
    fi ;;
  kvm|tcg) KVM_PROBE=0 ;;
  *) fail "CR_TEST_ACCEL must be auto, kvm or tcg" ;;
esac
set_accel() {
  accel=$1
  case "$accel" in
    kvm) cpu=host; BOOT_TIMEOUT=${CR_TEST_BOOT_TIMEOUT:-300} ;;
    tcg) cpu=max; BOOT_TIMEOUT=${CR_TEST_BOOT_TIMEOUT:-900} ;;
  esac
}
set_accel "$accel"
log "image $V1 ($BASE), accelerator $accel$([ "${KVM_PROBE:-0}" = 1 ] && echo " (probed at the first boot)")"

# ---------------------------------------------------------------- the two updates
rm -rf "$T"
mkdir -p "$T"
QEMU_PID=""
SSH_PORT=""
cleanup() {
  rc=$?
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
    if [ "${CR_TEST_KEEP:-0}" = 1 ] && [ "$rc" != 0 ]; then
      echo "image-test: the VM is left running (pid $QEMU_PID): ssh -i $T/keys/ssh -p $SSH_PORT root@127.0.0.1" >&2
      return
    fi
    kill "$QEMU_PID" 2>/dev/null || true; wait "$QEMU_PID" 2>/dev/null || true
  fi
  if [ "${CR_TEST_KEEP:-0}" != 1 ]; then rm -f "$T"/*.qcow2 "$T"/*.img "$T"/upd/*.img "$T"/broken/*.img; fi
}
trap cleanup EXIT
V2="$V1.upgrade"
VB="$V1.broken"
log "building the second release ($V2) and a broken one ($VB)"
"$HERE/build.sh" --rootfs-only --no-zst --version "$V2" --out "$T/upd" --bin-dir "$BIN_DIR" 2> "$T/build-upd.log" || { tail -20 "$T/build-upd.log"; fail "build of $V2"; }
"$HERE/build.sh" --rootfs-only --no-zst --broken --version "$VB" --out "$T/broken" --bin-dir "$BIN_DIR" 2> "$T/build-broken.log" || { tail -20 "$T/build-broken.log"; fail "build of $VB"; }
SHA2=$(cut -d' ' -f1 "$T/upd/chainroute-$V2.rootfs.img.sha256")
SHAB=$(cut -d' ' -f1 "$T/broken/chainroute-$VB.rootfs.img.sha256")
T_BUILD=$(( $(date +%s) - T0 ))

# ---------------------------------------------------------------- credentials and seed
log "test CA, server and client certificates, SSH key, seed"
K=$T/keys
mkdir -p "$K"
ossl() { openssl "$@" 2>>"$T/openssl.log"; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=chainroute image-test CA" \
  -keyout "$K/ca.key" -out "$K/ca.crt"
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" -keyout "$K/server.key" -out "$K/server.csr"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$K/server.ext"
ossl x509 -req -in "$K/server.csr" -CA "$K/ca.crt" -CAkey "$K/ca.key" -CAcreateserial -days 2 -extfile "$K/server.ext" -out "$K/server.crt"
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=operator" -keyout "$K/client.key" -out "$K/client.csr"
printf 'extendedKeyUsage=clientAuth\n' > "$K/client.ext"
ossl x509 -req -in "$K/client.csr" -CA "$K/ca.crt" -CAkey "$K/ca.key" -CAcreateserial -days 2 -extfile "$K/client.ext" -out "$K/client.crt"
ssh-keygen -q -t ed25519 -N '' -C image-test -f "$K/ssh"

S=$T/seed
mkdir -p "$S/chainroute/tls"
cat > "$S/chainroute/chainroute.toml" <<'EOF'
# image-test: no NIC is bound to DPDK in the VM: two net_null ports, real hugepages
# (reserved on the kernel command line), the worker on the isolated core 1.
[dataplane]
lcores = "0-1"
hugepages = true
pci = false
memory_mb = 256
mbufs = 4095
stats_interval_s = 60

[[ports]]
name = "uplink"
device = "net_null0"

[[ports]]
name = "hosts"
device = "net_null1"

[api]
socket = "/run/chainroute/api.sock"
tcp = "0.0.0.0:50051"
tls_cert = "/etc/chainroute/tls/server.crt"
tls_key = "/etc/chainroute/tls/server.key"
client_ca = "/etc/chainroute/tls/client-ca.crt"

[metrics]
listen = "0.0.0.0:9750"
EOF
cp "$K/server.crt" "$K/server.key" "$S/chainroute/tls/"
cp "$K/ca.crt" "$S/chainroute/tls/client-ca.crt"
cp "$K/ssh.pub" "$S/authorized_keys"
echo cr-test > "$S/hostname"
echo 900 > "$S/trial-timeout"
printf 'instance-id: chainroute-image-test\nlocal-hostname: cr-test\n' > "$S/meta-data"
printf '#cloud-config\n{}\n' > "$S/user-data"
mkfs.vfat -C -n CIDATA "$T/seed.img" 8192 >/dev/null
mcopy -s -i "$T/seed.img" "$S"/* ::/

# The VM's disk: a copy-on-write overlay, larger than the image (the data partition grows).
qemu-img create -q -f qcow2 -F qcow2 -b "$BASE" "$T/disk.qcow2" 4G

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API_PORT=$(free_port); SSH_PORT=$(free_port)

# Firmware: SeaBIOS (legacy BIOS, GRUB from the BIOS boot partition) by default;
# CR_TEST_UEFI=1 boots through OVMF and the ESP's EFI/BOOT/BOOTX64.EFI instead.
FIRMWARE=()
if [ "${CR_TEST_UEFI:-0}" = 1 ]; then
  ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd
  [ -r "$ovmf_code" ] || fail "CR_TEST_UEFI=1 needs $ovmf_code (apt install ovmf)"
  cp /usr/share/OVMF/OVMF_VARS_4M.fd "$T/ovmf-vars.fd"
  FIRMWARE=(-drive "if=pflash,format=raw,readonly=on,file=$ovmf_code" -drive "if=pflash,format=raw,file=$T/ovmf-vars.fd")
fi
start_vm() {
  : > "$T/serial.log"
  qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -machine q35 -smp 2 -m 2048 "${FIRMWARE[@]}" \
    -nodefaults -display none -no-user-config -monitor "unix:$T/monitor.sock,server,nowait" \
    -serial "file:$T/serial.log" \
    -boot strict=on \
    -drive "file=$T/disk.qcow2,if=none,id=disk,format=qcow2,cache=unsafe" \
    -device virtio-blk-pci,drive=disk,bootindex=1 \
    -drive "file=$T/seed.img,if=none,id=seed,format=raw,readonly=on" \
    -device virtio-blk-pci,drive=seed,serial=seed \
    -drive "file=$T/upd/chainroute-$V2.rootfs.img,if=none,id=upd,format=raw,readonly=on" \
    -device virtio-blk-pci,drive=upd,serial=update-v2 \
    -drive "file=$T/broken/chainroute-$VB.rootfs.img,if=none,id=brk,format=raw,readonly=on" \
    -device virtio-blk-pci,drive=brk,serial=update-broken \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$API_PORT-:50051,hostfwd=tcp:127.0.0.1:$SSH_PORT-:22" \
    -device virtio-net-pci,netdev=n0 \
    -device virtio-rng-pci \
    > "$T/qemu.log" 2>&1 &
  QEMU_PID=$!
}

CONSOLE=("$BIN_DIR/chainroute" --target "https://localhost:$API_PORT" --ca "$K/ca.crt" --cert "$K/client.crt" --key "$K/client.key")
health() { timeout 20 "${CONSOLE[@]}" health 2>/dev/null || true; }
vm_alive() { kill -0 "$QEMU_PID" 2>/dev/null || fail "qemu exited: $(tail -5 "$T/qemu.log")"; }
wait_serving() {  # $1: what for
  local deadline=$(( $(date +%s) + BOOT_TIMEOUT )) t=$(date +%s)
  while [ "$(health)" != SERVING ]; do
    vm_alive
    [ "$(date +%s)" -lt "$deadline" ] || fail "$1: grpc.health.v1 not SERVING through 127.0.0.1:$API_PORT after ${BOOT_TIMEOUT}s"
    sleep 3
  done
  log "$1: SERVING through the forwarded port after $(( $(date +%s) - t ))s"
}
wait_down() {  # the old system is gone (the API stops answering)
  local deadline=$(( $(date +%s) + 300 ))
  while [ "$(health)" = SERVING ]; do
    vm_alive
    [ "$(date +%s)" -lt "$deadline" ] || fail "$1: the appliance did not go down"
    sleep 2
  done
}
SSH=(ssh -i "$K/ssh" -p "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
     -o ConnectTimeout=20 -o BatchMode=yes -o LogLevel=ERROR -o ServerAliveInterval=10 root@127.0.0.1)
vm() {
  local i
  local i rc out
  for i in 1 2 3 4 5 6; do
    out=$(timeout 180 "${SSH[@]}" "$@" 2>"$T/ssh.err") && { printf '%s\n' "$out"; return 0; }
    # 255: ssh itself failed (sshd still starting); anything else is the command's status.
    rc=$?
    [ "$rc" = 255 ] || { printf '%s\n' "$out"; return "$rc"; }
    sleep 5
  done
  fail "ssh: $(cat "$T/ssh.err")"
}
expect() {  # expect DESCRIPTION ACTUAL PATTERN (grep -E)
  if printf '%s\n' "$2" | grep -Eq -- "$3"; then log "ok: $1"; else fail "$1: expected /$3/, got: $2"; fi
}
re() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|/]/\\&/g'; }
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }
wait_committed() {  # $1 slot
  local deadline=$(( $(date +%s) + BOOT_TIMEOUT )) c
  while :; do
    # Early in a boot the status can fail (the ESP not mounted yet): keep polling.
    c=$(vm chainroute-slot status -j | json_field '["committed"]' 2>/dev/null) || c="(no status: $(tail -n 1 "$T/ssh.err" 2>/dev/null))"
    [ "$c" = "$1" ] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || fail "slot $1 was not committed (committed: $c)"
    sleep 3
  done
}

# ---------------------------------------------------------------- 1. first boot
log "phase 1: first boot of $V1 (slot a)"
P=$(date +%s)
start_vm
if [ "$accel" = kvm ] && [ "${KVM_PROBE:-0}" = 1 ]; then
  probe_end=$(( $(date +%s) + ${CR_TEST_KVM_PROBE:-60} ))
  until grep -q "Booting .chainroute slot" "$T/serial.log" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$probe_end" ] || ! kill -0 "$QEMU_PID" 2>/dev/null; then
      log "KVM is present but does not get GRUB going within ${CR_TEST_KVM_PROBE:-60}s: using TCG"
      kill "$QEMU_PID" 2>/dev/null || true; wait "$QEMU_PID" 2>/dev/null || true
      qemu-img create -q -f qcow2 -F qcow2 -b "$BASE" "$T/disk.qcow2" 4G
      set_accel tcg
      start_vm
      break
    fi
    sleep 2
  done
fi
wait_serving "first boot"
expect "chainrouted.service is active" "$(vm systemctl is-active chainrouted.service)" '^active$'
st=$("${CONSOLE[@]}" status) || fail "chainroute status over TCP+TLS: $st"
expect "chainroute status (TCP+TLS, client certificate)" "$st" 'serving'
stj=$("${CONSOLE[@]}" -j status)
expect "status: dataplane up, 2 ports, 1 worker" "$(echo "$stj" | json_field '["dataplaneUp"] if "dataplaneUp" in d else d["dataplane_up"]') $(echo "$stj" | json_field '["ports"]') $(echo "$stj" | json_field '["workers"]')" '^True 2 1$'
expect "chainroute status inside (Unix socket)" "$(vm chainroute status)" '^chainrouted .*: serving'
if command -v grpcurl >/dev/null 2>&1; then
  g=$(timeout 30 grpcurl -cacert "$K/ca.crt" -cert "$K/client.crt" -key "$K/client.key" "localhost:$API_PORT" grpc.health.v1.Health/Check 2>&1 || true)
  expect "grpcurl grpc.health.v1.Health/Check" "$g" '"status": "SERVING"'
fi
if ! nocert=$(timeout 20 "$BIN_DIR/chainroute" --target "https://localhost:$API_PORT" --ca "$K/ca.crt" status 2>&1); then
  log "ok: the TCP API refuses a client without a certificate"
else
  fail "the TCP API answered a client without a certificate: $nocert"
fi
expect "daemon runs as the chainroute user" "$(vm ps -o user:20= -C chainrouted)" '^chainroute$'
cmdline=$(vm cat /proc/cmdline)
expect "kernel command line: slot a, not a trial" "$cmdline" 'chainroute\.slot=a chainroute\.trial=0'
expect "kernel command line: serial console" "$cmdline" 'console=ttyS0'
expect "kernel command line: hugepages" "$cmdline" ' hugepages=[0-9]+'
expect "kernel command line: isolated core 1" "$cmdline" 'isolcpus=managed_irq,domain,1 nohz_full=1 rcu_nocbs=1'
expect "hugepages reserved" "$(vm "awk '/HugePages_Total/{print \$2}' /proc/meminfo")" '^[1-9][0-9]*$'
expect "core 1 isolated" "$(vm cat /sys/devices/system/cpu/isolated)" '^1$'
expect "worker thread on the isolated core" "$(vm 'ps -L -o psr=,comm= -p $(pidof chainrouted) | grep -c "^ *1 rte-worker"')" '^[1-9]'
expect "configuration from the seed" "$(vm cat /etc/chainroute/chainroute.toml)" 'net_null1'
expect "hostname from the seed" "$(vm hostname)" '^cr-test$'
expect "A/B: booted a, committed a" "$(vm chainroute-slot status -j | json_field '["booted"]+d["committed"]')" '^aa$'
sec=$(vm 'systemd-analyze security chainrouted.service --no-pager 2>/dev/null | tail -n1' || true)
log "info: ${sec#→ }"
data_mb=$(vm df -m --output=size /data | tail -n1 | tr -d ' ')
[ "$data_mb" -gt $(( CR_DATA_MB + 1024 )) ] && log "ok: /data grown to the disk (${data_mb} MiB)" || fail "/data was not grown (${data_mb} MiB)"
vm 'echo persistent > /var/lib/chainroute/image-test-marker && hostname > /data/lib/image-test-host'
T_P1=$(( $(date +%s) - P ))

# ---------------------------------------------------------------- 2. upgrade
log "phase 2: upgrade to $V2 (slot b)"
P=$(date +%s)
# A transfer cut short (the stream path: hashed on the way in) must be refused and wiped.
bad=$(vm "head -c 32M /dev/disk/by-id/virtio-update-v2 | chainroute-upgrade --no-reboot --sha256 $SHA2 - 2>&1") \
  && fail "a truncated upgrade was accepted: $bad"
expect "a truncated upgrade is refused (checksum) and the slot wiped" "$bad" 'checksum mismatch'
expect "nothing armed after a refused upgrade" "$(vm chainroute-slot status -j | json_field '["pending_trial"]+"/"+d["slots"]["b"]')" '^/\(empty\)$'
up=$(vm chainroute-upgrade --no-reboot --sha256 "$SHA2" /dev/disk/by-id/virtio-update-v2 '2>&1') || fail "chainroute-upgrade: $up"
expect "upgrade written and armed" "$(vm chainroute-slot status -j | json_field '["pending_trial"]+d["slots"]["b"]')" "^b$(re "$V2")\$"
vm 'systemctl --no-block reboot' || true
wait_down "reboot into slot b"
wait_serving "upgraded boot"
expect "release $V2 booted" "$(vm cat /etc/chainroute-release)" "VERSION=$(re "$V2")\$"
expect "slot b booted as a trial" "$(vm cat /proc/cmdline)" 'chainroute.slot=b chainroute.trial=1'
wait_committed b
log "ok: slot b committed after it served"
expect "chainrouted.service is active on b" "$(vm systemctl is-active chainrouted.service)" '^active$'
expect "state survived the upgrade" "$(vm cat /var/lib/chainroute/image-test-marker /data/lib/image-test-host)" 'persistent'
expect "seed applied once" "$(vm 'wc -l < /data/lib/seed.log')" '^1$'
expect "status (TCP+TLS) answers from $V2" "$("${CONSOLE[@]}" status)" 'serving'
T_P2=$(( $(date +%s) - P ))

# ---------------------------------------------------------------- 3. broken upgrade
log "phase 3: upgrade to the broken $VB (slot a) and the automatic fallback"
P=$(date +%s)
up=$(vm chainroute-upgrade --no-reboot --sha256 "$SHAB" /dev/disk/by-id/virtio-update-broken '2>&1') || fail "chainroute-upgrade (broken): $up"
expect "broken release written into slot a" "$(vm chainroute-slot status -j | json_field '["pending_trial"]+d["slots"]["a"]')" "^a$(re "$VB")\$"
vm 'systemctl --no-block reboot' || true
wait_down "reboot into the broken slot a"
wait_serving "after the fallback"
expect "GRUB booted the broken slot as a trial (serial console)" "$(tr -d '\r' < "$T/serial.log" | grep -cF "chainroute $VB: slot a (trial 1)" || true)" '^[12]$'
expect "its kernel ran exactly once" "$(tr -d '\r' < "$T/serial.log" | grep -c '\] Command line: .*chainroute\.slot=a chainroute\.trial=1' || true)" '^1$'
expect "back on slot b, committed b" "$(vm chainroute-slot status -j | json_field '["booted"]+d["committed"]')" '^bb$'
expect "release $V2 runs again" "$(vm cat /etc/chainroute-release)" "VERSION=$(re "$V2")\$"
expect "the failed trial is recorded" "$(vm chainroute-slot status -j | json_field '["last_failed_trial"]')" "^a $(re "$VB") "
expect "history: trial of a not healthy" "$(vm chainroute-slot history)" "slot a \\($(re "$VB")\\) NOT healthy"
expect "status (TCP+TLS) answers after the fallback" "$("${CONSOLE[@]}" status)" 'serving'
T_P3=$(( $(date +%s) - P ))

vm 'systemctl --no-block poweroff' || true
for _ in $(seq 60); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 2; done
log "PASS: image $V1 ($accel, $([ "${CR_TEST_UEFI:-0}" = 1 ] && echo UEFI || echo BIOS)): builds ${T_BUILD}s, first boot ${T_P1}s, upgrade ${T_P2}s, fallback ${T_P3}s, total $(( $(date +%s) - T0 ))s"
