//! Prepares what the component embeds, so it parses nothing at run time:
//! - `openapi.yaml` as minified JSON for `GET /openapi.json`, compressed
//!   (LZ4) to a third of the room and without a YAML parser;
//! - `data/common-passwords.txt` as the sorted, front-coded, Huffman-coded
//!   list that `src/domain/password_policy/common_list.rs` searches (its
//!   module doc describes the layout; the two must agree);
//! - the table of Unicode lowercase mappings that
//!   `src/domain/password_policy/lowercase.rs` reads: a few KB where core's
//!   `to_lowercase` tables take 13 to 18 KB of the component.

use std::{env, fs, path::Path};

fn main() {
    let out_dir = env::var("OUT_DIR").expect("OUT_DIR");
    openapi(Path::new(&out_dir));
    common_passwords(Path::new(&out_dir));
    lowercase_table(Path::new(&out_dir));
}

fn openapi(out_dir: &Path) {
    println!("cargo:rerun-if-changed=openapi.yaml");
    let yaml = fs::read_to_string("openapi.yaml").expect("openapi.yaml at the repository root");
    let spec: serde_json::Value = yaml_serde::from_str(&yaml)
        .expect("openapi.yaml is valid YAML with JSON-compatible values");
    let compressed = lz4_flex::compress_prepend_size(spec.to_string().as_bytes());
    fs::write(out_dir.join("openapi.json.lz4"), compressed).expect("write openapi.json.lz4");
}

/// Entries per front-coded block: a lookup decodes at most this many.
const BLOCK: usize = 16;

/// Lowercase as the component compares: char by char, as `char::to_lowercase`.
fn lowercase(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

fn common_passwords(out_dir: &Path) {
    println!("cargo:rerun-if-changed=data/common-passwords.txt");
    let text = fs::read_to_string("data/common-passwords.txt")
        .expect("data/common-passwords.txt (UTF-8, one password a line)");
    // Lowercased as the lookup lowercases the password (Django lowercased
    // its list with Python's lower(); this keeps any other list honest).
    // Only entries the length rule of `Password::parse` accepts are kept
    // (8 characters, 71 bytes): that rule runs first, and lowercasing never
    // removes characters, so a shorter entry could never match. No entry of
    // Django's list is over 66 bytes, so the byte cap drops none today.
    let mut entries: Vec<Vec<u8>> = text
        .lines()
        .map(lowercase)
        .filter(|e| e.chars().count() >= 8 && e.len() <= 71)
        .map(String::into_bytes)
        .collect();
    // Byte order, as `str`'s `Ord`, which the lookup's binary search uses.
    entries.sort_unstable();
    entries.dedup();

    // Each entry as symbols: the prefix it shares with the one before (not
    // for a block's first), its suffix's length, the suffix's bytes.
    let mut blocks: Vec<Vec<(Table, u8)>> = Vec::new();
    for block in entries.chunks(BLOCK) {
        let mut symbols = Vec::new();
        let mut previous: &[u8] = &[];
        for (i, entry) in block.iter().enumerate() {
            let shared = if i == 0 {
                0
            } else {
                let shared = previous
                    .iter()
                    .zip(entry)
                    .take_while(|(a, b)| a == b)
                    .count();
                symbols.push((Table::Shared, small(shared)));
                shared
            };
            symbols.push((Table::SuffixLength, small(entry.len() - shared)));
            symbols.extend(entry[shared..].iter().map(|&b| (Table::Byte, b)));
            previous = entry;
        }
        blocks.push(symbols);
    }

    let mut frequencies = [[0u64; 256]; 3];
    for &(table, symbol) in blocks.iter().flatten() {
        frequencies[table as usize][usize::from(symbol)] += 1;
    }
    let lengths = frequencies.map(|f| code_lengths(&f));
    let codes = lengths.map(|l| canonical_codes(&l));

    let mut bits = BitWriter::default();
    let mut offsets = Vec::new();
    for block in &blocks {
        offsets.push(u32::try_from(bits.len).expect("under 4 Gbit"));
        for &(table, symbol) in block {
            let (code, length) = codes[table as usize][usize::from(symbol)];
            bits.push(code, length);
        }
    }
    // Where the last block ends: the final byte's padding is no entry.
    offsets.push(u32::try_from(bits.len).expect("under 4 Gbit"));

    let mut out = Vec::new();
    out.extend_from_slice(&u32::try_from(blocks.len()).unwrap().to_le_bytes());
    for offset in offsets {
        out.extend_from_slice(&offset.to_le_bytes());
    }
    for table in &lengths {
        write_table(&mut out, table);
    }
    out.extend_from_slice(&bits.bytes);
    fs::write(out_dir.join("common-passwords.bin"), out).expect("write common-passwords.bin");
}

/// The three Huffman codes of the list, in their order in the file.
#[derive(Clone, Copy)]
enum Table {
    Byte = 0,
    Shared = 1,
    SuffixLength = 2,
}

fn small(n: usize) -> u8 {
    u8::try_from(n).expect("entries are at most 71 bytes")
}

/// Huffman code lengths for `frequencies` (0 for an absent symbol).
fn code_lengths(frequencies: &[u64; 256]) -> [u8; 256] {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut lengths = [0u8; 256];
    // Each node: the symbols under it; merging two deepens all of them.
    let mut heap: BinaryHeap<Reverse<(u64, Vec<u8>)>> = (0..=255u8)
        .filter(|&s| frequencies[usize::from(s)] > 0)
        .map(|s| Reverse((frequencies[usize::from(s)], vec![s])))
        .collect();
    if heap.len() == 1 {
        let Reverse((_, symbols)) = heap.pop().unwrap();
        lengths[usize::from(symbols[0])] = 1;
        return lengths;
    }
    while heap.len() > 1 {
        let Reverse((f1, mut s1)) = heap.pop().unwrap();
        let Reverse((f2, s2)) = heap.pop().unwrap();
        s1.extend(s2);
        for &s in &s1 {
            lengths[usize::from(s)] += 1;
        }
        heap.push(Reverse((f1 + f2, s1)));
    }
    assert!(lengths.iter().all(|&l| l <= 31), "a code fits a u32");
    lengths
}

/// Canonical codes: by length, then symbol; what the reader rebuilds from
/// the counts per length and the symbols in that order.
fn canonical_codes(lengths: &[u8; 256]) -> [(u32, u8); 256] {
    let mut codes = [(0, 0); 256];
    let mut code = 0u32;
    for length in 1..=31 {
        for symbol in 0..256 {
            if lengths[symbol] == length {
                codes[symbol] = (code, length);
                code += 1;
            }
        }
        code <<= 1;
    }
    codes
}

/// A table: its longest code length, the number of codes of each length
/// from 1 (`u16` each), then the symbols in canonical order.
fn write_table(out: &mut Vec<u8>, lengths: &[u8; 256]) {
    let longest = *lengths.iter().max().unwrap();
    out.push(longest);
    for length in 1..=longest {
        let count = lengths.iter().filter(|&&l| l == length).count();
        out.extend_from_slice(&u16::try_from(count).unwrap().to_le_bytes());
    }
    for length in 1..=longest {
        out.extend((0..=255u8).filter(|&s| lengths[usize::from(s)] == length));
    }
}

/// Bits, most significant first within each byte.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    len: usize,
}

impl BitWriter {
    fn push(&mut self, code: u32, length: u8) {
        for i in (0..length).rev() {
            if self.len % 8 == 0 {
                self.bytes.push(0);
            }
            if code >> i & 1 == 1 {
                *self.bytes.last_mut().unwrap() |= 0x80 >> (self.len % 8);
            }
            self.len += 1;
        }
    }
}

/// `lowercase.rs`: `char::to_lowercase` as data. Most mappings come in runs
/// (every character, or every other, moved by one distance), so a run
/// stands for up to a few dozen of the ~1,400 mappings; the few characters
/// that lowercase to more than one are listed whole.
fn lowercase_table(out_dir: &Path) {
    let mut runs: Vec<(u32, u32, u32, i64)> = Vec::new(); // start, count, stride, delta
    let mut multi = Vec::new();
    for c in (0..=0x10FFFF)
        .filter_map(char::from_u32)
        .filter(|c| !c.is_ascii())
    {
        let lower: Vec<char> = c.to_lowercase().collect();
        match lower[..] {
            [l] if l == c => {}
            [l] => {
                let (code, delta) = (
                    u32::from(c),
                    i64::from(u32::from(l)) - i64::from(u32::from(c)),
                );
                match runs.last_mut() {
                    // The next of the run: same distance, same step.
                    Some((start, count, stride, d))
                        if *d == delta
                            && (*count == 1 && code - *start <= 2
                                || code == *start + *count * *stride) =>
                    {
                        if *count == 1 {
                            *stride = code - *start;
                        }
                        *count += 1;
                    }
                    _ => runs.push((code, 1, 1, delta)),
                }
            }
            _ => multi.push((c, lower.into_iter().collect::<String>())),
        }
    }
    let mut source = String::from("// Generated by build.rs from `char::to_lowercase`.\n");
    source += &format!("static RUNS: [(u32, u8, u8, i32); {}] = [\n", runs.len());
    for (start, count, stride, delta) in runs {
        source += &format!("    ({start:#x}, {count}, {stride}, {delta}),\n");
    }
    source += "];\n";
    source += &format!("static MULTI: [(char, &str); {}] = [\n", multi.len());
    for (c, lower) in multi {
        source += &format!("    ({c:?}, {lower:?}),\n");
    }
    source += "];\n";
    fs::write(out_dir.join("lowercase.rs"), source).expect("write lowercase.rs");
}
