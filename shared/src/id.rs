//! Container ids: 12 lowercase hex digits, like docker's short ids.
//!
//! Everything a container owns on the host (its cgroup, layer, record,
//! lock, addresses) is named by its id, and cleanup only ever removes
//! things whose name passes [`is_valid`]: nothing else under a parent is
//! ours to remove.

use crate::error::{Error, Result};
use std::io::Read;

/// A random id, also the default host name.
pub fn generate() -> Result<String> {
    let mut bytes = [0u8; 6];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("read /dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Is `name` a container id (and so possibly ours)?
pub fn is_valid(name: &str) -> bool {
    name.len() == 12
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_others_are_not() {
        assert!(is_valid(&generate().unwrap()));
        for bad in ["", "abc", "ABCDEF012345", "abcdef01234g", "abcdef0123456"] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
