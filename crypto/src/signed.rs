//! Signing and verifying AUTH and BIND exactly over the bytes the wire crate names:
//! [`BindRepr::signed_message`] / [`BindHeader::signed_message`] for BIND, and
//! [`auth_message`] for AUTH (the packet with hop limit, destination locator and
//! the signature field zeroed, after the `W3IP-AUTH-v1` context).

use chainroute_wire::ext::{auth_message, next_header, AuthHeader, AuthRepr, BindHeader, BindRepr, Extensions, AUTH_LEN};
use chainroute_wire::w3ip::{self, Packet};

use crate::ed25519::{DeviceKey, PublicKey};
use crate::error::{Error, Result};

/// Sets the device key and signature of `bind` (every other field is signed as is).
pub fn sign_bind(key: &DeviceKey, bind: &mut BindRepr) {
    bind.device_key = key.public().to_bytes();
    bind.signature = key.sign(&bind.signed_message());
}

/// Signs `bind` with `key` and writes the 168-byte header into `buf`.
pub fn emit_signed_bind(key: &DeviceKey, mut bind: BindRepr, buf: &mut [u8]) -> Result<BindRepr> {
    sign_bind(key, &mut bind);
    bind.emit(buf)?;
    Ok(bind)
}

/// Verifies a BIND header's signature under `key`, which must be the header's
/// device key (the caller found it authorised for the header's wallet).
pub fn verify_bind<T: AsRef<[u8]>>(header: &BindHeader<T>, key: &PublicKey) -> Result<()> {
    if header.device_key() != key.as_bytes() {
        return Err(Error::KeyMismatch);
    }
    key.verify(&header.signed_message(), header.signature())
}

/// Checks an untrusted BIND header (`new_checked`) and its signature under the
/// key it names; returns the fields and the checked key. Whether the wallet
/// authorised that key is a separate question (see [`crate::registry`]).
pub fn verify_bind_bytes(data: &[u8]) -> Result<(BindRepr, PublicKey)> {
    let header = BindHeader::new_checked(data)?;
    let repr = BindRepr::parse(&header)?;
    let key = PublicKey::from_bytes(&repr.device_key)?;
    key.verify(&header.signed_message(), header.signature())?;
    Ok((repr, key))
}

/// Where the AUTH header of a packet is, and the key it names.
pub fn find_auth(packet: &[u8]) -> Result<(usize, [u8; 32])> {
    let p = Packet::new_checked(packet)?;
    let ext = Extensions::parse(&p)?;
    let off = ext.auth.ok_or(Error::MissingHeader)?;
    let auth = AuthHeader::new_checked(&packet[off..])?;
    Ok((off, *auth.signer_key()))
}

/// Writes the signed message of the AUTH at `auth_offset` into `msg` and returns
/// the header's signer key and signature.
pub(crate) fn auth_parts(packet: &[u8], auth_offset: usize, msg: &mut Vec<u8>) -> Result<([u8; 32], [u8; 64])> {
    auth_message(packet, auth_offset, msg)?;
    let auth = AuthHeader::new_checked(packet.get(auth_offset..).ok_or(Error::Wire(chainroute_wire::Error::Truncated))?)?;
    Ok((*auth.signer_key(), *auth.signature()))
}

/// Signs a packet that already holds an AUTH header (anywhere in its extension
/// chain): writes `key`'s public key into it, then the signature over
/// [`auth_message`]. `scratch` is reused for the message. Returns the AUTH offset.
pub fn sign_packet(key: &DeviceKey, packet: &mut [u8], scratch: &mut Vec<u8>) -> Result<usize> {
    let (off, _) = find_auth(packet)?;
    {
        let auth = &mut packet[off..off + AUTH_LEN];
        auth[8..40].copy_from_slice(key.public().as_bytes());
    }
    auth_message(packet, off, scratch)?;
    let sig = key.sign(scratch);
    AuthHeader::new_unchecked(&mut packet[off..off + AUTH_LEN]).set_signature(&sig);
    Ok(off)
}

/// Builds a signed W3IP packet in `buf`: the header of `repr` (its `payload_len`
/// and `next_header` are set here), an AUTH header whose next header is
/// `upper_protocol`, then `payload` (which may start with further extension
/// headers, e.g. a BIND). Returns the packet length.
pub fn build_signed_packet(
    key: &DeviceKey,
    repr: &w3ip::Repr,
    upper_protocol: u8,
    payload: &[u8],
    buf: &mut [u8],
    scratch: &mut Vec<u8>,
) -> Result<usize> {
    let payload_len = u16::try_from(AUTH_LEN + payload.len()).map_err(|_| Error::BadLength)?;
    let total = w3ip::HEADER_LEN + payload_len as usize;
    let buf = buf.get_mut(..total).ok_or(Error::Wire(chainroute_wire::Error::BufferTooSmall))?;
    let header = w3ip::Repr { payload_len, next_header: next_header::AUTH, ..*repr };
    header.emit(&mut Packet::new_unchecked(&mut buf[..]))?;
    let auth = AuthRepr { next_header: upper_protocol, signer_key: key.public().to_bytes(), signature: [0; 64] };
    auth.emit(&mut buf[w3ip::HEADER_LEN..])?;
    buf[w3ip::HEADER_LEN + AUTH_LEN..].copy_from_slice(payload);
    sign_packet(key, buf, scratch)?;
    Ok(total)
}

/// Verifies the AUTH signature of an untrusted packet under `key`, which must be
/// the AUTH header's signer key. Returns the AUTH offset.
pub fn verify_packet(packet: &[u8], key: &PublicKey, scratch: &mut Vec<u8>) -> Result<usize> {
    let (off, signer) = find_auth(packet)?;
    if signer != *key.as_bytes() {
        return Err(Error::KeyMismatch);
    }
    let (_, sig) = auth_parts(packet, off, scratch)?;
    key.verify(scratch, &sig)?;
    Ok(off)
}

/// Verifies the AUTH signature of an untrusted packet under the key it names
/// (checked by the key rules); returns the AUTH offset and that key.
pub fn verify_packet_self(packet: &[u8], scratch: &mut Vec<u8>) -> Result<(usize, PublicKey)> {
    let (off, signer) = find_auth(packet)?;
    let key = PublicKey::from_bytes(&signer)?;
    let (_, sig) = auth_parts(packet, off, scratch)?;
    key.verify(scratch, &sig)?;
    Ok((off, key))
}
