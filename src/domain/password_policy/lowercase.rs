//! Lowercasing as `char::to_lowercase` does, character by character, from a
//! table build.rs derives from it: runs of mappings instead of core's
//! per-character tables, which would cost the component 13 KB or more.
//! Character by character, so a final Σ is σ (Python's `lower()` and
//! `str::to_lowercase` make it ς): the policy compares, it does not display.

include!(concat!(env!("OUT_DIR"), "/lowercase.rs"));

pub fn lowercase(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_lowercase(c, &mut out);
    }
    out
}

fn push_lowercase(c: char, out: &mut String) {
    if c.is_ascii() {
        return out.push(c.to_ascii_lowercase());
    }
    if let Ok(i) = MULTI.binary_search_by_key(&c, |&(from, _)| from) {
        return out.push_str(MULTI[i].1);
    }
    // Runs are sorted and hold no other run's characters, so only the last
    // one starting at or before `c` can map it.
    let code = u32::from(c);
    let i = RUNS.partition_point(|&(start, ..)| start <= code);
    if let Some(&(start, count, stride, delta)) = i.checked_sub(1).map(|i| &RUNS[i]) {
        let (offset, stride) = (code - start, u32::from(stride));
        if offset % stride == 0 && offset / stride < u32::from(count) {
            if let Some(lower) = code.checked_add_signed(delta).and_then(char::from_u32) {
                return out.push(lower);
            }
        }
    }
    out.push(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_character_lowercases_as_char_to_lowercase_does() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let mut ours = String::new();
            push_lowercase(c, &mut ours);
            assert_eq!(ours, c.to_lowercase().collect::<String>(), "{c:?}");
        }
    }

    #[test]
    fn strings_lowercase_character_by_character() {
        assert_eq!(lowercase("PassWORD1"), "password1");
        assert_eq!(lowercase("ÉTÉ ПАРОЛЬ İ"), "été пароль i\u{307}");
        assert_eq!(lowercase("ΣΑΣ"), "σασ");
    }
}
