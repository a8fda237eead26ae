//! SHA-256 digests as the lower-case hex text that manifests, markers and `run.json` record.

use sha2::{Digest, Sha256};

/// The SHA-256 of `bytes`, as hex.
pub fn sha256_hex(bytes: impl AsRef<[u8]>) -> String {
    hex(&Sha256::digest(bytes))
}

/// Bytes as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
