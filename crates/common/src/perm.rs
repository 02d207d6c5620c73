//! Permission bits of topics and brokers (Java `PermName`).

/// Marker bit; valid permissions are 0..=7, admin tools reject this one.
pub const PRIORITY: i32 = 8;
/// Consumers may pull.
pub const READ: i32 = 4;
/// Producers may send.
pub const WRITE: i32 = 2;
/// The topic may serve as a template for auto-creation (TBW102).
pub const INHERIT: i32 = 1;
/// What a normal topic gets: read and write.
pub const READ_WRITE: i32 = READ | WRITE;

/// True when `perm` allows pulls.
pub fn is_readable(perm: i32) -> bool {
    perm & READ == READ
}

/// True when `perm` allows sends.
pub fn is_writeable(perm: i32) -> bool {
    perm & WRITE == WRITE
}

/// True when `perm` allows use as an auto-create template.
pub fn is_inherited(perm: i32) -> bool {
    perm & INHERIT == INHERIT
}

/// The `RWX` form admin tools print: `-` for a missing bit.
pub fn to_rwx(perm: i32) -> String {
    let mut out = String::with_capacity(3);
    out.push(if is_readable(perm) { 'R' } else { '-' });
    out.push(if is_writeable(perm) { 'W' } else { '-' });
    out.push(if is_inherited(perm) { 'X' } else { '-' });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rwx_form() {
        assert_eq!(to_rwx(READ_WRITE), "RW-");
        assert_eq!(to_rwx(7), "RWX");
        assert_eq!(to_rwx(0), "---");
    }
}
