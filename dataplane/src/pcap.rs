//! Classic libpcap files (Ethernet link type): what net_pcap replays and writes,
//! what tests generate and check, and what Pktgen-DPDK's `-s P:file.pcap` reads.

use std::io::{self, Read, Write};

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
const LINKTYPE_ETHERNET: u32 = 1;

/// Writes a pcap stream with microsecond timestamps.
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut out: W) -> io::Result<PcapWriter<W>> {
        out.write_all(&MAGIC_US.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?; // thiszone
        out.write_all(&0u32.to_le_bytes())?; // sigfigs
        out.write_all(&65535u32.to_le_bytes())?; // snaplen
        out.write_all(&LINKTYPE_ETHERNET.to_le_bytes())?;
        Ok(PcapWriter { out })
    }

    /// Appends one frame stamped `micros` after the epoch.
    pub fn write(&mut self, micros: u64, frame: &[u8]) -> io::Result<()> {
        self.out.write_all(&((micros / 1_000_000) as u32).to_le_bytes())?;
        self.out.write_all(&((micros % 1_000_000) as u32).to_le_bytes())?;
        self.out.write_all(&(frame.len() as u32).to_le_bytes())?;
        self.out.write_all(&(frame.len() as u32).to_le_bytes())?;
        self.out.write_all(frame)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads every frame of a pcap stream (either byte order, µs or ns stamps).
pub fn read_all<R: Read>(mut input: R) -> io::Result<Vec<Vec<u8>>> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut header = [0u8; 24];
    input.read_exact(&mut header)?;
    let magic_le = u32::from_le_bytes(header[0..4].try_into().unwrap());
    let big = match magic_le {
        MAGIC_US | MAGIC_NS => false,
        m if m.swap_bytes() == MAGIC_US || m.swap_bytes() == MAGIC_NS => true,
        _ => return Err(bad("not a pcap file")),
    };
    let u32_at = |b: &[u8]| {
        let a: [u8; 4] = b.try_into().unwrap();
        if big { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) }
    };
    if u32_at(&header[20..24]) != LINKTYPE_ETHERNET {
        return Err(bad("pcap link type is not Ethernet"));
    }
    let mut frames = Vec::new();
    let mut rec = [0u8; 16];
    loop {
        match input.read_exact(&mut rec) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(frames),
            Err(e) => return Err(e),
        }
        let caplen = u32_at(&rec[8..12]) as usize;
        if caplen > 262_144 {
            return Err(bad("pcap record larger than 256 KiB"));
        }
        let mut frame = vec![0u8; caplen];
        input.read_exact(&mut frame)?;
        frames.push(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write(1, &[1, 2, 3]).unwrap();
        w.write(2_000_001, &[4; 60]).unwrap();
        let bytes = w.into_inner();
        assert_eq!(read_all(&bytes[..]).unwrap(), vec![vec![1, 2, 3], vec![4; 60]]);
        assert!(read_all(&bytes[..10]).is_err());
        assert!(read_all(&[0u8; 24][..]).is_err());
    }
}
