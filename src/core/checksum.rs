//! The record checksum: CRC32 (ISO-HDLC, as crc32fast) of the channel id, the record's
//! data-area offset, its `meta` word (all little-endian) and the payload (docs/FORMAT.md,
//! "Record header"), computed without feeding the 20 bytes in front of the payload to the CRC.

use std::sync::OnceLock;

use crc32fast::Hasher;

use super::frame::{kind_of, len_of, Kind};

/// The longest payload whose `meta` gets [`Fixed`] terms. Building them takes a shift of the
/// CRC register by the payload's length for each of 32 bits (about 25 µs at this length); and
/// past it the CRC of the payload itself outweighs what the terms save.
const FIXED_MAX_LEN: u32 = 1024;

/// Computes record checksums bound to one channel. A record copied to another channel or
/// position no longer verifies.
///
/// The 20 bytes in front of the payload are not fed to the CRC byte by byte. CRC32 without
/// its initial and final inversions is linear in the register and the bytes, so the register
/// they leave is also the one a fresh CRC (register all ones) leaves after the 4 bytes
/// `B = base ^ P(position) ^ meta` (little-endian), where `base` depends only on the channel
/// id and `P(position)` is the position bytes' own contribution, one lookup per byte in
/// [`POSITION_TERMS`]. The CRC state those 4 bytes leave takes four more lookups in the same
/// tables ([`crc_of_word`]), and crc32fast goes on from that state over the payload: one pass
/// of crc32fast per record.
///
/// For the records of one `meta` (one kind and length, as in a stream of equal records), even
/// that state is not needed up front: by the same linearity, the CRC from state `S` over a
/// payload of `n` bytes is the CRC from the fresh state over the same bytes, xor `S` shifted
/// by `n` zero bytes; and that shift of `S`, as a function of the position, is a constant
/// plus one lookup per position byte in tables built once for that `meta` ([`Fixed`]). Then a
/// record costs a clone of a fresh hasher, one pass of crc32fast, and four lookups that do not
/// delay the CRC: a hasher made for a given state (`Hasher::new_with_initial`) checks the
/// CPU's features each time, which cost as much as the rest together (docs/PERFORMANCE.md,
/// "Replay on ext4").
#[derive(Clone)]
pub(crate) struct Binder {
    /// crc32fast's state (the inverted register) after the channel id and eight zero bytes:
    /// `B` for position 0 and a zero `meta`; see the type's docs.
    base: u32,
    /// crc32fast's hasher in its initial state, cloned per checksum.
    fresh: Hasher,
    /// Decided at the first checksum of a data record: the terms for its `meta` if its
    /// payload is at most [`FIXED_MAX_LEN`] bytes, else none.
    fixed: OnceLock<Option<Box<Fixed>>>,
}

/// What the checksums of the records of one `meta` share (see [`Binder`]).
#[derive(Clone)]
struct Fixed {
    meta: u32,
    /// The checksum of a zero payload at position 0, xor that payload's CRC from the fresh
    /// state.
    constant: u32,
    /// `terms[i][b]`: what position byte `i` of value `b` adds.
    terms: [[u32; 256]; 8],
}

/// `POSITION_TERMS[k][b]`: the CRC register left by byte `b` followed by `k` zero bytes, from
/// a zero register (no inversion), i.e. the slicing-by-8 tables of CRC32 (reflected
/// polynomial `0xEDB88320`). A position's little-endian byte `i` contributes
/// `POSITION_TERMS[7 - i][byte]` to the register the 8 position bytes leave.
static POSITION_TERMS: [[u32; 256]; 8] = position_terms();

const fn position_terms() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut b = 0;
    while b < 256 {
        let mut c = b as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
            bit += 1;
        }
        t[0][b] = c;
        b += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut b = 0;
        while b < 256 {
            let c = t[k - 1][b];
            t[k][b] = (c >> 8) ^ t[0][(c & 0xff) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}

/// The position's contribution to the CRC register (see [`POSITION_TERMS`]).
#[inline(always)]
fn position_term(position: u64) -> u32 {
    let t = &POSITION_TERMS;
    let byte = |i: u32| (position >> (8 * i)) as u8 as usize;
    let low = t[7][byte(0)] ^ t[6][byte(1)] ^ t[5][byte(2)] ^ t[4][byte(3)];
    if position >> 32 == 0 {
        return low;
    }
    low ^ t[3][byte(4)] ^ t[2][byte(5)] ^ t[1][byte(6)] ^ t[0][byte(7)]
}

/// The register that 4 zero bytes leave from register `r`, or equally the register 4 bytes
/// leave when `r` xor those bytes is all they have to fold (slicing by 4). Linear in `r`.
#[inline(always)]
fn slice4(r: u32) -> u32 {
    let t = &POSITION_TERMS;
    let byte = |i: u32| (r >> (8 * i)) as u8 as usize;
    t[3][byte(0)] ^ t[2][byte(1)] ^ t[1][byte(2)] ^ t[0][byte(3)]
}

/// crc32fast's state after the 4 little-endian bytes of `word`, from a fresh state: the
/// register (all ones) takes the word, then each of its bytes is folded by the table of the
/// bytes that follow it.
#[inline(always)]
fn crc_of_word(word: u32) -> u32 {
    !slice4(!word)
}

/// The register `n` zero bytes leave from register `r`. Linear in `r`.
fn shift(mut r: u32, n: usize) -> u32 {
    for _ in 0..n / 4 {
        r = slice4(r);
    }
    for _ in 0..n % 4 {
        r = (r >> 8) ^ POSITION_TERMS[0][(r & 0xff) as usize];
    }
    r
}

impl Binder {
    pub(crate) fn new(channel_id: u64) -> Binder {
        let fresh = Hasher::new();
        let mut seeded = fresh.clone();
        seeded.update(&channel_id.to_le_bytes());
        seeded.update(&[0; 8]);
        Binder {
            base: seeded.finalize(),
            fresh,
            fixed: OnceLock::new(),
        }
    }

    /// The checksum of a record at data-area offset `position` with this `meta` word and
    /// payload (whose length is the one `meta` names).
    #[inline(always)]
    pub(crate) fn checksum(&self, position: u64, meta: u32, payload: &[u8]) -> u32 {
        match self.fixed.get() {
            Some(Some(fixed)) if fixed.meta == meta => {
                debug_assert_eq!(payload.len(), len_of(u64::from(meta)) as usize);
                let mut h = self.fresh.clone();
                h.update(payload);
                h.finalize() ^ fixed.term(position)
            }
            Some(_) => self.via_state(position, meta, payload),
            None => self.first(position, meta, payload),
        }
    }

    /// The checksum, crc32fast going on from the state the 20 bytes in front of the payload
    /// leave.
    #[inline(always)]
    fn via_state(&self, position: u64, meta: u32, payload: &[u8]) -> u32 {
        let prefix = self.base ^ position_term(position) ^ meta;
        let mut h = Hasher::new_with_initial(crc_of_word(prefix));
        h.update(payload);
        h.finalize()
    }

    /// A checksum before the first data record's: at a data record, builds the terms for its
    /// `meta` if its payload is at most [`FIXED_MAX_LEN`] bytes (else decides on none).
    #[cold]
    #[inline(never)]
    fn first(&self, position: u64, meta: u32, payload: &[u8]) -> u32 {
        let word = u64::from(meta);
        if kind_of(word) == Some(Kind::Data) {
            let short = len_of(word) <= FIXED_MAX_LEN;
            self.fixed
                .get_or_init(|| short.then(|| Box::new(self.fixed_terms(meta))));
        }
        self.via_state(position, meta, payload)
    }

    /// The terms of the records of `meta` (see the type's docs).
    fn fixed_terms(&self, meta: u32) -> Fixed {
        let n = len_of(u64::from(meta)) as usize;
        // What the position's contribution `v` to `B` adds to the checksum: the register `v`
        // leaves (slicing by 4), shifted by the payload. Linear in `v`: known from the 32
        // bits' images, then by byte of `v`.
        let bits: Vec<u32> = (0..32).map(|j| shift(slice4(1 << j), n)).collect();
        let mut by_byte = [[0u32; 256]; 4];
        for (k, table) in by_byte.iter_mut().enumerate() {
            for b in 1..256usize {
                let low = b & b.wrapping_neg();
                table[b] = table[b ^ low] ^ bits[8 * k + low.trailing_zeros() as usize];
            }
        }
        let image = |v: u32| {
            let byte = |i: u32| (v >> (8 * i)) as u8 as usize;
            by_byte[0][byte(0)] ^ by_byte[1][byte(1)] ^ by_byte[2][byte(2)] ^ by_byte[3][byte(3)]
        };
        let mut terms = [[0u32; 256]; 8];
        for (i, row) in terms.iter_mut().enumerate() {
            for (b, term) in row.iter_mut().enumerate() {
                *term = image(POSITION_TERMS[7 - i][b]);
            }
        }
        // At position 0 the position adds nothing: the rest is the constant.
        let zeros = vec![0u8; n];
        let mut h = self.fresh.clone();
        h.update(&zeros);
        Fixed {
            meta,
            constant: self.via_state(0, meta, &zeros) ^ h.finalize(),
            terms,
        }
    }
}

impl Fixed {
    /// What the checksum of a record of this `meta` at `position` adds to its payload's CRC
    /// from the fresh state.
    #[inline(always)]
    fn term(&self, position: u64) -> u32 {
        let t = &self.terms;
        let byte = |i: u32| (position >> (8 * i)) as u8 as usize;
        let low = self.constant ^ t[0][byte(0)] ^ t[1][byte(1)] ^ t[2][byte(2)] ^ t[3][byte(3)];
        if position >> 32 == 0 {
            return low;
        }
        low ^ t[4][byte(4)] ^ t[5][byte(5)] ^ t[6][byte(6)] ^ t[7][byte(7)]
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::meta;
    use super::*;

    #[test]
    fn checksum_binds_channel_position_and_meta() {
        let a = Binder::new(1);
        let m = meta(Kind::Data, 3);
        let base = a.checksum(64, m, b"abc");
        assert_ne!(base, Binder::new(2).checksum(64, m, b"abc"));
        assert_ne!(base, a.checksum(72, m, b"abc"));
        assert_ne!(base, a.checksum(64, meta(Kind::Closed, 3), b"abc"));
        assert_ne!(base, a.checksum(64, m, b"abd"));
        assert_eq!(base, a.checksum(64, m, b"abc"));
    }

    /// The checksum as the format defines it, fed byte by byte.
    fn reference(channel_id: u64, position: u64, meta: u32, payload: &[u8]) -> u32 {
        let mut h = Hasher::new();
        h.update(&channel_id.to_le_bytes());
        h.update(&position.to_le_bytes());
        h.update(&meta.to_le_bytes());
        h.update(payload);
        h.finalize()
    }

    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    const IDS: [u64; 5] = [0, 1, 7, u64::MAX, 0x0123_4567_89ab_cdef];
    const POSITIONS: [u64; 8] = [
        0,
        8,
        64,
        4096,
        1 << 26,
        (1 << 32) - 8,
        1 << 32,
        u64::MAX - 7,
    ];
    const LENS: [usize; 18] = [
        0, 1, 3, 4, 7, 8, 15, 16, 17, 63, 64, 127, 128, 129, 255, 256, 600, 1024,
    ];

    #[test]
    fn checksum_matches_the_format_definition() {
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        let payload: Vec<u8> = (0..1100).map(|_| next() as u8).collect();
        for &id in &IDS {
            // One binder for every length and kind: its fixed terms serve the first data
            // record's `meta`, the others go through the state.
            let binder = Binder::new(id);
            for &position in &POSITIONS {
                for len in LENS {
                    for kind in [Kind::Data, Kind::Closed] {
                        let m = meta(kind, len as u32);
                        let payload = &payload[..len];
                        assert_eq!(
                            binder.checksum(position, m, payload),
                            reference(id, position, m, payload),
                            "id {id:#x} position {position:#x} len {len}"
                        );
                    }
                }
            }
        }
        for _ in 0..10_000 {
            let (id, position, m) = (next(), next() & !7, next() as u32);
            let len = (next() % 300) as usize;
            let binder = Binder::new(id);
            assert_eq!(
                binder.checksum(position, m, &payload[..len]),
                reference(id, position, m, &payload[..len])
            );
        }
    }

    #[test]
    fn fixed_terms_give_the_format_definition_for_every_length_and_position() {
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        let payload: Vec<u8> = (0..1100).map(|_| next() as u8).collect();
        for &id in &IDS {
            for len in LENS.into_iter().chain([1023, 1025]) {
                // A binder whose first data record has this length: the terms serve it.
                let binder = Binder::new(id);
                let m = meta(Kind::Data, len as u32);
                let first = binder.checksum(8, m, &payload[..len]);
                assert_eq!(first, reference(id, 8, m, &payload[..len]));
                assert_eq!(
                    binder.fixed.get().and_then(Option::as_ref).map(|f| f.meta),
                    (len <= FIXED_MAX_LEN as usize).then_some(m),
                    "len {len}"
                );
                let random: Vec<u64> = (0..200).map(|_| next() & !7).collect();
                for position in POSITIONS.into_iter().chain(random) {
                    let start = (next() % 64) as usize;
                    let bytes = &payload[start..start + len];
                    assert_eq!(
                        binder.checksum(position, m, bytes),
                        reference(id, position, m, bytes),
                        "id {id:#x} position {position:#x} len {len}"
                    );
                }
            }
        }
    }
}
