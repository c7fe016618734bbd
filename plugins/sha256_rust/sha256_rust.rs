//! sha256 in Rust: the same plugin as `plugins/sha256/sha256.c`, answer for answer. The SHA-256
//! digest (FIPS 180-4) of a byte string as 64 lowercase hexadecimal characters, once for an
//! input that fits the buffer and as a stream for an input of any length (up to 2^61 - 1
//! bytes). Buffers: 64 KiB of input, 64 bytes of output.
//!
//!   fn_sha256(n)              the digest of the n input bytes: 64 bytes out
//!   stream_sha256sum_begin()  starts a digest: 0; a stream already begun starts over
//!   stream_sha256sum_feed(n)  adds the next n bytes: 0 output bytes; -1 without a begin first;
//!                             -3 past SHA-256's length limit
//!   stream_sha256sum_end()    the digest of everything fed since begin: 64 bytes out, and the
//!                             stream is over (a feed or end after it is -1 until the next begin)

#![no_std]

use wasm_plugin::{Error, State};

wasm_plugin::plugin_v2!(buffers(65536, 64), init = init, cleanup = cleanup);
wasm_plugin::function!(sha256, sha256);
wasm_plugin::stream!(sha256sum, sha256sum_begin, sha256sum_feed, sha256sum_end);

fn init() -> Result<(), Error> {
    Ok(())
}

fn cleanup() -> Result<(), Error> {
    Ok(())
}

/// The state of one digest: the chaining value, the bytes not yet hashed (less than a block)
/// and how many bytes were added in all.
#[derive(Clone, Copy)]
struct Sha256 {
    h: [u32; 8],
    block: [u8; 64],
    pending: usize,
    length: u64,
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The longest message SHA-256 defines, in bytes: its length in bits must fit 64 bits.
const MAX_BYTES: u64 = (1 << 61) - 1;

impl Sha256 {
    const fn new() -> Self {
        Sha256 {
            h: [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19],
            block: [0; 64],
            pending: 0,
            length: 0,
        }
    }

    fn compress(h: &mut [u32; 8], block: &[u8]) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut k] = *h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let t1 = k.wrapping_add(s1).wrapping_add((e & f) ^ (!e & g)).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let t2 = s0.wrapping_add((a & b) ^ (a & c) ^ (b & c));
            k = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (h, v) in h.iter_mut().zip([a, b, c, d, e, f, g, k]) {
            *h = h.wrapping_add(v);
        }
    }

    /// Adds `data`; fails if the message would exceed SHA-256's limit.
    fn add(&mut self, mut data: &[u8]) -> Result<(), Error> {
        if data.len() as u64 > MAX_BYTES - self.length {
            return Err(Error::InvalidArgument);
        }
        self.length += data.len() as u64;
        if self.pending > 0 {
            let take = (64 - self.pending).min(data.len());
            self.block[self.pending..self.pending + take].copy_from_slice(&data[..take]);
            self.pending += take;
            data = &data[take..];
            if self.pending < 64 {
                return Ok(());
            }
            Self::compress(&mut self.h, &self.block);
            self.pending = 0;
        }
        // Whole blocks straight from the input, without copying them.
        let mut blocks = data.chunks_exact(64);
        for block in &mut blocks {
            Self::compress(&mut self.h, block);
        }
        let rest = blocks.remainder();
        self.block[..rest.len()].copy_from_slice(rest);
        self.pending = rest.len();
        Ok(())
    }

    /// Pads, finishes and writes the digest as 64 hex characters at the start of `out`.
    fn finish_hex(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let out = out.get_mut(..64).ok_or(Error::Internal)?;
        let bits = self.length.wrapping_mul(8);
        self.block[self.pending] = 0x80;
        self.pending += 1;
        if self.pending > 56 {
            self.block[self.pending..].fill(0);
            Self::compress(&mut self.h, &self.block);
            self.pending = 0;
        }
        self.block[self.pending..56].fill(0);
        self.block[56..].copy_from_slice(&bits.to_be_bytes());
        Self::compress(&mut self.h, &self.block);
        for (i, byte) in self.h.iter().flat_map(|word| word.to_be_bytes()).enumerate() {
            out[2 * i] = HEX[usize::from(byte >> 4)];
            out[2 * i + 1] = HEX[usize::from(byte & 15)];
        }
        Ok(64)
    }
}

fn sha256(input: &[u8], output: &mut [u8]) -> Result<usize, Error> {
    let mut digest = Sha256::new();
    digest.add(input)?;
    digest.finish_hex(output)
}

/// The stream's digest, while a stream is under way.
static STREAM: State<Option<Sha256>> = State::new(None);

fn sha256sum_begin() -> Result<(), Error> {
    STREAM.set(Some(Sha256::new()));
    Ok(())
}

fn sha256sum_feed(input: &[u8], _output: &mut [u8]) -> Result<usize, Error> {
    let mut digest = STREAM.get().ok_or(Error::NotInitialized)?;
    digest.add(input)?;
    STREAM.set(Some(digest));
    Ok(0)
}

fn sha256sum_end(output: &mut [u8]) -> Result<usize, Error> {
    let mut digest = STREAM.get().ok_or(Error::NotInitialized)?;
    STREAM.set(None);
    digest.finish_hex(output)
}
