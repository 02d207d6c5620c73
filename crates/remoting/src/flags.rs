//! Bit sets carried in request headers, defined once for every peer that sets or reads them.
//!
//! The frame's own flag bits (response, oneway) are in [`crate::command`], and a message's
//! sysFlag bits in `apogee_common::message::sysflag`.

/// PullSysFlag bits of the pull header's `sysFlag` (Java `PullSysFlag`), read by the broker and
/// set by every consumer.
pub mod pull {
    /// Commit the header's `commitOffset` as the group's offset.
    pub const COMMIT_OFFSET: i32 = 0x1;
    /// The broker may hold the pull until messages arrive (long polling).
    pub const SUSPEND: i32 = 0x2;
    /// The header carries the subscription expression.
    pub const SUBSCRIPTION: i32 = 0x4;
    /// Retired class filter.
    pub const CLASS_FILTER: i32 = 0x8;
    /// Sent by lite pull consumers.
    pub const LITE_PULL: i32 = 0x10;
}

#[cfg(test)]
mod tests {
    use super::pull;

    #[test]
    fn pull_bits_are_javas_and_distinct() {
        let bits =
            [pull::COMMIT_OFFSET, pull::SUSPEND, pull::SUBSCRIPTION, pull::CLASS_FILTER, pull::LITE_PULL];
        assert_eq!(bits, [1, 2, 4, 8, 16]);
    }
}
