//! What the fuzz targets share: the service set up as `tests/common` sets it
//! up ([`fixture`]), the text form of requests the router target reads
//! ([`request`]), and the contract every response is held to ([`contract`]).
//!
//! Every input runs against a fresh copy of one prepared store and a clock
//! at the same instant, so a crash reproduces from its input alone.

pub mod contract;
pub mod fixture;
pub mod request;

/// `needle` replaced by `with` in `hay`, at most `limit` times.
pub fn replace(hay: &[u8], needle: &[u8], with: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    let mut done = 0;
    while done < limit {
        let Some(at) = rest.windows(needle.len()).position(|w| w == needle) else {
            break;
        };
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
        done += 1;
    }
    out.extend_from_slice(rest);
    out
}

/// Bytes for a panic message: printable, and short enough to read.
pub fn shown(bytes: &[u8]) -> String {
    let mut s = String::new();
    for chunk in bytes
        .iter()
        .take(600)
        .flat_map(|b| std::ascii::escape_default(*b))
    {
        s.push(chunk as char);
    }
    if bytes.len() > 600 {
        s.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    s
}
