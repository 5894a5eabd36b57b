//! The common-password list as build.rs embeds it, and its lookup. The
//! entries (lowercased, at least 8 characters, sorted by bytes) are
//! front-coded in blocks of 16: a block's first entry whole, each other as
//! the length of the prefix it shares with the one before, then its
//! suffix. Every such number and byte is Huffman-coded, which halves the
//! list (about 30 KB where the text is 82).
//!
//! Layout, integers little-endian:
//! - `u32` block count, then one `u32` per block, where its bits start,
//!   and one more, where the last ends;
//! - three canonical Huffman tables, for the suffix bytes, the shared
//!   lengths and the suffix lengths: each the longest code length `L` (`u8`),
//!   the number of codes of each length 1 to `L` (`u16`s), then the symbols
//!   (`u8`s) by code;
//! - the bits, most significant first: per entry its shared length (not for
//!   a block's first), its suffix length, the suffix's bytes.
//!
//! A lookup binary-searches the blocks by their first entries and decodes
//! one block: some ten comparisons and at most 16 entries, never a scan.

static EMBEDDED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/common-passwords.bin"));

pub struct CommonList<'a> {
    offsets: &'a [u8],
    bytes: Huffman<'a>,
    shared: Huffman<'a>,
    suffix_length: Huffman<'a>,
    bits: &'a [u8],
}

impl CommonList<'static> {
    pub fn embedded() -> Self {
        Self::new(EMBEDDED)
    }
}

impl<'a> CommonList<'a> {
    fn new(data: &'a [u8]) -> Self {
        let (count, rest) = data.split_at(4);
        let (offsets, rest) = rest.split_at(4 * (u32_at(count, 0) as usize + 1));
        let (bytes, rest) = Huffman::read(rest);
        let (shared, rest) = Huffman::read(rest);
        let (suffix_length, bits) = Huffman::read(rest);
        Self {
            offsets,
            bytes,
            shared,
            suffix_length,
            bits,
        }
    }

    /// Whether `needle` (already lowercased) is on the list.
    pub fn contains(&self, needle: &[u8]) -> bool {
        // The last block whose first entry is at most `needle`.
        let (mut low, mut high) = (0, self.blocks());
        while low < high {
            let mid = low + (high - low) / 2;
            if self.block(mid).next().is_some_and(|first| first <= needle) {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        let Some(i) = low.checked_sub(1) else {
            return false;
        };
        // Sorted: past `needle`, it is not there.
        let mut entries = self.block(i);
        while let Some(entry) = entries.next() {
            match entry.cmp(needle) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return true,
                std::cmp::Ordering::Greater => return false,
            }
        }
        false
    }

    fn blocks(&self) -> usize {
        self.offsets.len() / 4 - 1
    }

    fn block(&self, i: usize) -> Block<'_, 'a> {
        Block {
            list: self,
            bits: Bits {
                data: self.bits,
                at: u32_at(self.offsets, i) as usize,
            },
            end: u32_at(self.offsets, i + 1) as usize,
            entry: Vec::new(),
            first: true,
        }
    }

    #[cfg(test)]
    pub fn entries(&self) -> Vec<Vec<Vec<u8>>> {
        (0..self.blocks())
            .map(|i| {
                let mut block = self.block(i);
                let mut entries = Vec::new();
                while let Some(entry) = block.next() {
                    entries.push(entry.to_vec());
                }
                entries
            })
            .collect()
    }
}

fn u32_at(data: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(data[4 * i..4 * i + 4].try_into().expect("4 bytes"))
}

/// One block's entries, decoded in turn into one buffer.
struct Block<'l, 'a> {
    list: &'l CommonList<'a>,
    bits: Bits<'a>,
    end: usize,
    entry: Vec<u8>,
    first: bool,
}

impl Block<'_, '_> {
    fn next(&mut self) -> Option<&[u8]> {
        if self.bits.at >= self.end {
            return None;
        }
        let shared = if self.first {
            0
        } else {
            self.list.shared.decode(&mut self.bits)
        };
        self.first = false;
        let suffix = self.list.suffix_length.decode(&mut self.bits);
        self.entry.truncate(usize::from(shared));
        for _ in 0..suffix {
            self.entry.push(self.list.bytes.decode(&mut self.bits));
        }
        Some(&self.entry)
    }
}

/// A canonical Huffman code, decoded as zlib's `puff` does: codes of one
/// length are consecutive numbers, so a count per length finds the symbol.
struct Huffman<'a> {
    counts: &'a [u8],
    symbols: &'a [u8],
}

impl<'a> Huffman<'a> {
    fn read(data: &'a [u8]) -> (Self, &'a [u8]) {
        let longest = usize::from(data[0]);
        let counts = &data[1..1 + 2 * longest];
        let total: usize = counts
            .chunks_exact(2)
            .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])))
            .sum();
        let (symbols, rest) = data[1 + 2 * longest..].split_at(total);
        (Self { counts, symbols }, rest)
    }

    fn decode(&self, bits: &mut Bits) -> u8 {
        // `code` is read so far; `first` is the first code of this length,
        // `index` the number of symbols with shorter codes.
        let (mut code, mut first, mut index) = (0usize, 0usize, 0usize);
        for count in self.counts.chunks_exact(2) {
            let count = usize::from(u16::from_le_bytes([count[0], count[1]]));
            code |= bits.next();
            if code < first + count {
                return self.symbols[index + code - first];
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        unreachable!("build.rs wrote only complete codes")
    }
}

/// Reads bits, most significant first.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn next(&mut self) -> usize {
        let bit = self.data[self.at / 8] >> (7 - self.at % 8) & 1;
        self.at += 1;
        usize::from(bit)
    }
}
