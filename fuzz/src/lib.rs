//! What several fuzz targets share.
#![forbid(unsafe_code)]

pub mod grammar;
pub mod oracle;
pub mod postfix;

/// `data` cut into the read sizes `cuts` gives (cycled; 0 is read as 1), or one piece when
/// `cuts` is empty: streaming parsers must give the same answer however their input arrives.
pub fn chunks<'a>(data: &'a [u8], cuts: &[u8]) -> Vec<&'a [u8]> {
    if cuts.is_empty() {
        return if data.is_empty() { vec![] } else { vec![data] };
    }
    let mut sizes = cuts.iter().map(|c| usize::from(*c).max(1)).cycle();
    let mut rest = data;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(1);
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}
