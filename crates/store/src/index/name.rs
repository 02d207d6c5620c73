//! Index file names: the creation time as `yyyyMMddHHmmssSSS` in local time (storage spec §0/§3.1,
//! Java `UtilAll.timeMillisToHumanString`).
//!
//! The names only order the files: the loader sorts them as strings, so a new name must sort after
//! every existing one even if the clock went back (daylight saving, NTP step) or two files are
//! created within one millisecond.

use std::mem::MaybeUninit;

/// Length of an index file name in characters (`yyyyMMddHHmmssSSS`).
pub(crate) const FILE_NAME_LEN: usize = 17;

/// Whether `name` looks like an index file name (17 ASCII digits); other files in `index/` are
/// left alone.
pub(crate) fn is_index_file_name(name: &str) -> bool {
    name.len() == FILE_NAME_LEN && name.bytes().all(|b| b.is_ascii_digit())
}

/// Name for a file created at `epoch_ms` that sorts after `last` (the newest existing name): the
/// formatted time, or `last` + 1 read as a number when the clock has not moved past it.
pub(crate) fn next_file_name(epoch_ms: i64, last: Option<&str>) -> String {
    let candidate = format_local_millis(epoch_ms);
    match last {
        Some(last) if candidate.as_str() <= last => successor(last).unwrap_or(candidate),
        _ => candidate,
    }
}

/// The name that sorts right after `name`, when `name` is an index file name below all nines.
pub(crate) fn successor(name: &str) -> Option<String> {
    if !is_index_file_name(name) {
        return None;
    }
    let next = name.parse::<u64>().ok()?.checked_add(1)?;
    let text = format!("{next:0width$}", width = FILE_NAME_LEN);
    (text.len() == FILE_NAME_LEN).then_some(text)
}

/// Broken-down calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// `yyyyMMddHHmmssSSS` of `epoch_ms` in the local time zone (UTC if the C library cannot convert).
pub(crate) fn format_local_millis(epoch_ms: i64) -> String {
    let seconds = epoch_ms.div_euclid(1000);
    let millis = epoch_ms.rem_euclid(1000);
    let civil = local_civil(seconds).unwrap_or_else(|| utc_civil(seconds));
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}{:03}",
        civil.year, civil.month, civil.day, civil.hour, civil.minute, civil.second, millis
    )
}

/// Local calendar time through the C library, which knows the system time zone database.
fn local_civil(seconds: i64) -> Option<Civil> {
    // `time_t` is 32 bits on some targets, so the conversion is not useless everywhere.
    #[allow(clippy::useless_conversion)]
    let time: libc::time_t = seconds.try_into().ok()?;
    let mut tm = MaybeUninit::<libc::tm>::uninit();
    // SAFETY: `localtime_r` is the re-entrant variant: it reads `time` and writes only into the
    // caller's buffer, which is valid for one `tm`. A non-null return means it filled the buffer,
    // so reading it afterwards reads initialised memory.
    let tm = unsafe {
        if libc::localtime_r(&time, tm.as_mut_ptr()).is_null() {
            return None;
        }
        tm.assume_init()
    };
    Some(Civil {
        year: i64::from(tm.tm_year) + 1900,
        month: u32::try_from(tm.tm_mon + 1).ok()?,
        day: u32::try_from(tm.tm_mday).ok()?,
        hour: u32::try_from(tm.tm_hour).ok()?,
        minute: u32::try_from(tm.tm_min).ok()?,
        // A leap second (60) is written as 59 so the name keeps its shape.
        second: u32::try_from(tm.tm_sec.min(59)).ok()?,
    })
}

/// UTC calendar time from seconds since the epoch (days-to-civil on the proleptic Gregorian
/// calendar, in 400-year eras).
fn utc_civil(seconds: i64) -> Civil {
    const SECONDS_PER_DAY: i64 = 86_400;
    const DAYS_PER_ERA: i64 = 146_097;
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(DAYS_PER_ERA);
    let day_of_era = shifted.rem_euclid(DAYS_PER_ERA);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        // All of these are small and non-negative by construction.
        month: month as u32,
        day: day as u32,
        hour: (of_day / 3600) as u32,
        minute: (of_day % 3600 / 60) as u32,
        second: (of_day % 60) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_conversion_matches_known_dates() {
        let civil = |y, mo, d, h, mi, s| Civil { year: y, month: mo, day: d, hour: h, minute: mi, second: s };
        assert_eq!(utc_civil(0), civil(1970, 1, 1, 0, 0, 0));
        // 2000-02-29T12:34:56Z, a leap day in a century leap year.
        assert_eq!(utc_civil(951_827_696), civil(2000, 2, 29, 12, 34, 56));
        // 2024-12-31T23:59:59Z
        assert_eq!(utc_civil(1_735_689_599), civil(2024, 12, 31, 23, 59, 59));
        // 1969-12-31T23:59:59Z
        assert_eq!(utc_civil(-1), civil(1969, 12, 31, 23, 59, 59));
    }

    #[test]
    fn formatted_names_are_index_names() {
        let name = format_local_millis(1_700_000_000_123);
        assert!(is_index_file_name(&name), "{name}");
        assert!(name.ends_with("123"));
        assert!(!is_index_file_name("2024010100000000"));
        assert!(!is_index_file_name("2024010100000000x"));
    }

    #[test]
    fn new_names_sort_after_the_last_one() {
        let now = 1_700_000_000_000;
        let first = next_file_name(now, None);
        let same_millisecond = next_file_name(now, Some(&first));
        assert!(same_millisecond > first);
        let clock_went_back = next_file_name(now - 3_600_000, Some(&same_millisecond));
        assert!(clock_went_back > same_millisecond);
        assert_eq!(successor("20240101000000999").as_deref(), Some("20240101000001000"));
        assert_eq!(successor("99999999999999999"), None);
    }
}
