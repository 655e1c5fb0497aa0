# Shared by the chainroute appliance tools (sourced, POSIX sh).
# The A/B state lives in GRUB's environment block on the ESP (see grub.cfg there):
#   cr_slot     committed slot (a|b)        cr_try   one-shot trial slot (set by an upgrade)
#   cr_tried    the trial GRUB last booted  cr_cmdline  kernel tuning override
GRUBENV=${CR_GRUBENV:-/boot/efi/grub/grubenv}
SLOT_STATE=${CR_SLOT_STATE:-/data/lib/slot}

cr_log() { echo "$(basename "$0"): $*" >&2; }
cr_die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# The value of a kernel command line argument (last one wins), empty when absent.
cmdline_arg() {
  for w in $(cat /proc/cmdline); do
    case "$w" in "$1="*) v=${w#*=} ;; esac
  done
  echo "${v:-}"
  unset v
}

booted_slot() { cmdline_arg chainroute.slot; }
other_slot() { [ "$1" = a ] && echo b || echo a; }

env_get() {
  [ -r "$GRUBENV" ] || cr_die "$GRUBENV is not readable (is the ESP mounted at /boot/efi?)"
  grub-editenv "$GRUBENV" list | sed -n "s/^$1=//p"
}
env_set() {
  grub-editenv "$GRUBENV" set "$@" || cr_die "cannot write $GRUBENV"
  sync "$GRUBENV" 2>/dev/null || sync
}
env_unset() {
  grub-editenv "$GRUBENV" unset "$@" || cr_die "cannot write $GRUBENV"
  sync "$GRUBENV" 2>/dev/null || sync
}
committed_slot() { s=$(env_get cr_slot); echo "${s:-a}"; }

# The disk that holds the booted root file system (/dev/vda, /dev/nvme0n1...).
root_disk() {
  src=$(findmnt -no SOURCE /)
  pk=$(lsblk -no PKNAME "$src" 2>/dev/null | head -n1)
  [ -n "$pk" ] || cr_die "cannot find the disk of the root file system ($src)"
  echo "/dev/$pk"
}

# The partition of slot $1 on the root disk (GPT name cr-root-a / cr-root-b).
slot_device() {
  dev=$(lsblk -lnpo NAME,PARTLABEL "$(root_disk)" | awk -v l="cr-root-$1" '$2 == l { print $1; exit }')
  [ -n "$dev" ] || cr_die "no partition named cr-root-$1 on $(root_disk)"
  echo "$dev"
}

# Records an A/B event in the persistent history (and the journal).
slot_history() {
  mkdir -p "$SLOT_STATE"
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*" >> "$SLOT_STATE/history"
  sync "$SLOT_STATE/history" 2>/dev/null || true
  logger -t chainroute-slot -- "$*" 2>/dev/null || true
}

release_field() { sed -n "s/^$2=//p" "$1" 2>/dev/null; }
