//! Wallets, Ed25519 device keys, AUTH/BIND signatures, batch verification for the dataplane, and the session-key handshake.
