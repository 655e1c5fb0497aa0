#!/usr/bin/env python3
"""Installs GRUB for legacy BIOS into a GPT disk image file, without loop devices.

    grub-bios-embed.py DISK BOOT_IMG CORE_IMG BIOS_BOOT_START_SECTOR BIOS_BOOT_SECTORS

What grub-bios-setup does for a GPT disk with a BIOS boot partition, minus its
guessing of the build host's root device (which fails for an image file):
  * core.img goes to the BIOS boot partition; the blocklist at the end of its first
    sector (diskboot.img) points at the rest of it, loaded at segment 0x820;
  * boot.img goes to the MBR, with the LBA of core.img, boot drive 0xff (the BIOS's),
    the hard-disk drive-check workaround, and the disk's own partition table.
No Reed-Solomon codes are added (like grub-bios-setup --no-rs-codes).
"""
import struct
import sys

SECTOR = 512
KERNEL_SECTOR = 0x5C      # GRUB_BOOT_MACHINE_KERNEL_SECTOR
BOOT_DRIVE = 0x64         # GRUB_BOOT_MACHINE_BOOT_DRIVE
DRIVE_CHECK = 0x66        # GRUB_BOOT_MACHINE_DRIVE_CHECK
BPB_START, BPB_END = 0x03, 0x5A
NT_MAGIC, PART_END = 0x1B8, 0x1FE
BLOCKLIST = 12            # struct grub_boot_blocklist { u64 start; u16 len; u16 segment; }
FIRST_SEGMENT = 0x820     # GRUB_BOOT_I386_PC_KERNEL_SEG + (512 >> 4)


def main():
    disk, boot_path, core_path = sys.argv[1:4]
    start, room = int(sys.argv[4]), int(sys.argv[5])
    boot = bytearray(open(boot_path, "rb").read())
    core = bytearray(open(core_path, "rb").read())
    if len(boot) != SECTOR:
        sys.exit("boot.img is not one sector")
    nsec = (len(core) + SECTOR - 1) // SECTOR
    if nsec > room:
        sys.exit(f"core.img needs {nsec} sectors, the BIOS boot partition has {room}")
    if nsec > 0xFFFF or nsec < 2:
        sys.exit("core.img has an unexpected size")
    core += bytes(nsec * SECTOR - len(core))

    # The blocklists of diskboot.img: clear the defaults (from the end backwards), then one
    # block for the contiguous rest of core.img, and a zero terminator before it.
    first = SECTOR - BLOCKLIST
    off = first
    while off > 0 and struct.unpack_from("<QHH", core, off)[1] != 0:
        core[off:off + BLOCKLIST] = bytes(BLOCKLIST)
        off -= BLOCKLIST
    struct.pack_into("<QHH", core, first, start + 1, nsec - 1, FIRST_SEGMENT)
    struct.pack_into("<QHH", core, first - BLOCKLIST, 0, 0, 0)

    with open(disk, "r+b") as f:
        mbr = f.read(SECTOR)
        boot[BPB_START:BPB_END] = mbr[BPB_START:BPB_END]
        boot[DRIVE_CHECK:DRIVE_CHECK + 2] = b"\x90\x90"
        boot[BOOT_DRIVE] = 0xFF
        struct.pack_into("<Q", boot, KERNEL_SECTOR, start)
        boot[NT_MAGIC:PART_END] = mbr[NT_MAGIC:PART_END]
        if boot[PART_END:] != b"\x55\xaa":
            sys.exit("boot.img has no boot signature")
        f.seek(start * SECTOR)
        f.write(core)
        f.seek(0)
        f.write(boot)


if __name__ == "__main__":
    main()
