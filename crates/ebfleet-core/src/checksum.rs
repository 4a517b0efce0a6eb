//! Content checksums, as recorded per built module and easyconfig.

use sha2::{Digest, Sha256};

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A sink that hashes what is written to it: the sha256 and size of a
/// stream too big for memory (a tarball read back from S3).
#[derive(Default)]
pub struct Sha256Writer {
    hasher: Sha256,
    size: u64,
}

impl Sha256Writer {
    /// The bytes written so far and their lowercase hex sha256.
    pub fn finish(self) -> (u64, String) {
        (self.size, hex(&self.hasher.finalize()))
    }
}

impl std::io::Write for Sha256Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hex(digest: &[u8]) -> String {
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    s
}

/// Whether `s` is a sha256 as [`sha256_hex`] writes it: 64 lowercase hex
/// digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digest() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(super::is_sha256_hex(&super::sha256_hex(b"")));
        assert!(!super::is_sha256_hex(&"A".repeat(64)));
        assert!(!super::is_sha256_hex("abc"));
    }

    #[test]
    fn the_writer_hashes_what_it_is_given_in_pieces() {
        use std::io::Write;
        let mut w = super::Sha256Writer::default();
        for piece in [&b"a"[..], b"", b"bc"] {
            w.write_all(piece).unwrap();
        }
        assert_eq!(w.finish(), (3, super::sha256_hex(b"abc")));
    }
}
