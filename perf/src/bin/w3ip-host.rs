//! w3ip-host: a minimal W3IP host over the UDP tunnel, for labs and tests. It binds
//! its wallet at a router (a signed BIND, re-sent before it expires), then either
//! answers pings (`--echo`) or pings a destination (`--ping ADDR`) and reports the
//! replies. Works from behind NAT: everything leaves and returns through one UDP
//! socket, so the router answers to the NAT's public endpoint.
//!
//! Ping payload: `ping <n>`; an echo answers `pong <n>` to the sender's address.

use chainroute_crypto::signed::emit_signed_bind;
use chainroute_crypto::DeviceKey;
use chainroute_wire::ext::{next_header, BindRepr, BIND_LEN};
use chainroute_wire::{w3ip, Address, Wallet};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: w3ip-host --router IP:PORT --wallet 0x.. --device-seed HEX32 --locator ADDR
                 (--echo | --ping ADDR [--count N]) [--seconds S] [--bind-seq N]
  --router     the router's tunnel endpoint (UDP 5733 by default)
  --wallet     this host's wallet; its unicast is LOCATOR/96 + wallet
  --device-seed the Ed25519 device key seed the wallet authorised (64 hex digits)
  --locator    a W3IP address whose top 96 bits are the routing prefix
  --echo       answer pings for --seconds (default 10)
  --ping ADDR  send --count pings (default 5) to ADDR (W3IP, IPv6 text or 0x wallet)";

struct Args {
    router: SocketAddr,
    wallet: Wallet,
    seed: [u8; 32],
    locator: Address,
    ping: Option<Address>,
    count: u32,
    seconds: f64,
    seq: Option<u64>,
}

fn parse() -> Result<Args, String> {
    let (mut router, mut wallet, mut seed, mut locator) = (None, None, None, None);
    let (mut ping, mut echo, mut count, mut seconds, mut seq) = (None, false, 5u32, 10.0f64, None);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut v = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--router" => {
                let t = v()?;
                router = Some(t.parse::<SocketAddr>().or_else(|_| t.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 5733))).map_err(|_| format!("--router: {t:?}"))?)
            }
            "--wallet" => wallet = Some(v()?.parse::<Wallet>().map_err(|e| format!("--wallet: {e}"))?),
            "--device-seed" => {
                let h = v()?;
                let mut s = [0u8; 32];
                if h.len() != 64 {
                    return Err("--device-seed: 64 hex digits".into());
                }
                for (i, b) in s.iter_mut().enumerate() {
                    *b = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).map_err(|_| "--device-seed: not hex")?;
                }
                seed = Some(s)
            }
            "--locator" => locator = Some(v()?.parse::<Address>().map_err(|e| format!("--locator: {e}"))?),
            "--ping" => ping = Some(v()?.parse::<Address>().map_err(|e| format!("--ping: {e}"))?),
            "--echo" => echo = true,
            "--count" => count = v()?.parse().map_err(|_| "--count: not a number")?,
            "--seconds" => seconds = v()?.parse().map_err(|_| "--seconds: not a number")?,
            "--bind-seq" => seq = Some(v()?.parse().map_err(|_| "--bind-seq: not a number")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if echo == ping.is_some() {
        return Err("give exactly one of --echo and --ping".into());
    }
    Ok(Args {
        router: router.ok_or("--router is required")?,
        wallet: wallet.ok_or("--wallet is required")?,
        seed: seed.ok_or("--device-seed is required")?,
        locator: locator.ok_or("--locator is required")?,
        ping,
        count,
        seconds,
        seq,
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn bind_packet(key: &DeviceKey, wallet: Wallet, unicast: Address, seq: u64, expiry: u64) -> Vec<u8> {
    let mut hdr = [0u8; BIND_LEN];
    let bind = BindRepr { next_header: next_header::NO_NEXT, wallet, unicast, expiry, sequence: seq, device_key: [0; 32], signature: [0; 64] };
    emit_signed_bind(key, bind, &mut hdr).expect("fixed-size header");
    let repr = w3ip::Repr { traffic_class: 0, flow_label: 0, payload_len: BIND_LEN as u16, next_header: next_header::BIND, hop_limit: 64, src_addr: unicast, dst_addr: Address::UNSPECIFIED };
    let mut p = vec![0u8; repr.buffer_len()];
    repr.emit(&mut w3ip::Packet::new_unchecked(&mut p[..])).expect("sized buffer");
    p[w3ip::HEADER_LEN..].copy_from_slice(&hdr);
    p
}

fn data_packet(src: Address, dst: Address, payload: &[u8]) -> Vec<u8> {
    let repr = w3ip::Repr { traffic_class: 0, flow_label: 0, payload_len: payload.len() as u16, next_header: next_header::NO_NEXT, hop_limit: 64, src_addr: src, dst_addr: dst };
    let mut p = vec![0u8; repr.buffer_len()];
    repr.emit(&mut w3ip::Packet::new_unchecked(&mut p[..])).expect("sized buffer");
    p[w3ip::HEADER_LEN..].copy_from_slice(payload);
    p
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("w3ip-host: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let key = DeviceKey::from_seed(&a.seed);
    let me = Address::unicast(&a.locator, a.wallet);
    let any: SocketAddr = if a.router.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
    let sock = UdpSocket::bind(any).expect("UDP socket");
    sock.connect(a.router).expect("connect to the router");
    sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    // A sequence that grows across restarts of this host.
    let mut seq = a.seq.unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64);
    let lifetime = 120;
    let mut rebind_at = Instant::now();
    eprintln!("w3ip-host: {} at {me} via {}", a.wallet, a.router);

    let deadline = Instant::now() + Duration::from_secs_f64(a.seconds);
    let (mut sent, mut received, mut answered) = (0u32, 0u32, 0u32);
    let mut next_ping = Instant::now() + Duration::from_millis(200);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if Instant::now() >= rebind_at {
            seq += 1;
            let _ = sock.send(&bind_packet(&key, a.wallet, me, seq, unix_now() + lifetime));
            rebind_at = Instant::now() + Duration::from_secs(lifetime / 2);
        }
        if let Some(dst) = a.ping {
            if sent < a.count && Instant::now() >= next_ping {
                let _ = sock.send(&data_packet(me, dst, format!("ping {sent}").as_bytes()));
                sent += 1;
                next_ping = Instant::now() + Duration::from_millis(50);
            }
            if sent == a.count && received == a.count {
                break;
            }
        }
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let Ok(p) = w3ip::Packet::new_checked(&buf[..n]) else { continue };
        let payload = p.payload();
        if let Some(n) = payload.strip_prefix(b"ping ") {
            let mut reply = b"pong ".to_vec();
            reply.extend_from_slice(n);
            let _ = sock.send(&data_packet(me, p.src_addr(), &reply));
            answered += 1;
        } else if payload.starts_with(b"pong ") {
            received += 1;
        }
    }
    println!("{{\"wallet\":\"{}\",\"unicast\":\"{me}\",\"sent\":{sent},\"received\":{received},\"answered\":{answered}}}", a.wallet);
    if a.ping.is_some() && received < a.count {
        std::process::exit(1);
    }
}
