//! mqadmin's output shapes: tables printed as `%-Ns` columns under `#Header` names, the
//! `%-50s=  %s` config listing, Java's version names and date formats, so that an operator's
//! scripts that read mqadmin output read ours.

use std::fmt::Write as _;

/// A table with fixed column widths, printed a row at a time as mqadmin's `printf` does:
/// each cell left-aligned and padded to its column's width (never cut), columns two spaces
/// apart, trailing blanks dropped.
#[derive(Debug, Clone)]
pub struct Table {
    widths: Vec<usize>,
}

impl Table {
    /// A table of columns `(header, width)`; prints the header row. A column is at least as
    /// wide as its header, so rows line up under the headers.
    pub fn start(columns: &[(&str, usize)]) -> Self {
        let table =
            Table { widths: columns.iter().map(|(header, width)| (*width).max(header.len())).collect() };
        let headers: Vec<String> = columns.iter().map(|(header, _)| (*header).to_owned()).collect();
        table.row(&headers);
        table
    }

    /// Prints one row; missing cells are blank, extra cells are printed after the last column.
    pub fn row<S: AsRef<str>>(&self, cells: &[S]) {
        println!("{}", self.format(cells));
    }

    /// The text of one row (see [`Table::row`]).
    pub fn format<S: AsRef<str>>(&self, cells: &[S]) -> String {
        let mut line = String::new();
        for (index, cell) in cells.iter().enumerate() {
            let width = self.widths.get(index).copied().unwrap_or(0);
            if index > 0 {
                line.push_str("  ");
            }
            let _ = write!(line, "{:<width$}", cell.as_ref());
        }
        line.truncate(line.trim_end().len());
        line
    }
}

/// Prints a config as mqadmin's getBrokerConfig and getNamesrvConfig do: `%-50s=  %s`.
pub fn print_config<'a>(entries: impl IntoIterator<Item = (&'a String, &'a String)>) {
    for (key, value) in entries {
        println!("{key:<50}=  {value}");
    }
}

/// Java's `MQVersion.getVersionDesc`: the name of a client or broker version ordinal.
/// From `V4_0_0_SNAPSHOT` (212) on, every patch release has a snapshot and a release
/// ordinal in turn up to `V9_9_9` (479 is `V5_3_3`); older ordinals (3.x) are shown as numbers.
pub fn version_desc(ordinal: i32) -> String {
    const V4_0_0_SNAPSHOT: i32 = 212;
    const LAST: i32 = V4_0_0_SNAPSHOT + 2 * 600 - 1;
    if ordinal > LAST {
        return "HIGHER_VERSION".to_owned();
    }
    if ordinal < V4_0_0_SNAPSHOT {
        return format!("V3({ordinal})");
    }
    let step = ordinal - V4_0_0_SNAPSHOT;
    let release = step / 2;
    let (major, minor, patch) = (4 + release / 100, release / 10 % 10, release % 10);
    let snapshot = if step % 2 == 0 { "_SNAPSHOT" } else { "" };
    format!("V{major}_{minor}_{patch}{snapshot}")
}

/// Broken-down local time of an epoch-millisecond instant.
struct LocalTime {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
}

fn local_time(epoch_ms: i64) -> Option<LocalTime> {
    let seconds = libc::time_t::try_from(epoch_ms.div_euclid(1000)).ok()?;
    // SAFETY: `tm` is plain data; all-zero is a valid value for localtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the thread-safe variant.
    let result = unsafe { libc::localtime_r(&seconds, &mut tm) };
    if result.is_null() {
        return None;
    }
    Some(LocalTime {
        year: tm.tm_year + 1900,
        month: u32::try_from(tm.tm_mon + 1).ok()?,
        day: u32::try_from(tm.tm_mday).ok()?,
        hour: u32::try_from(tm.tm_hour).ok()?,
        minute: u32::try_from(tm.tm_min).ok()?,
        second: u32::try_from(tm.tm_sec).ok()?,
        millis: u32::try_from(epoch_ms.rem_euclid(1000)).ok()?,
    })
}

/// `yyyy-MM-dd HH:mm:ss` in local time (consumerProgress's `#LastTime`); the number itself
/// when it is no representable time.
pub fn format_seconds(epoch_ms: i64) -> String {
    match local_time(epoch_ms) {
        Some(t) => {
            format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", t.year, t.month, t.day, t.hour, t.minute, t.second)
        }
        None => epoch_ms.to_string(),
    }
}

/// `yyyy-MM-dd HH:mm:ss,SSS` in local time (Java `UtilAll.formatDate` with
/// `YYYY_MM_DD_HH_MM_SS_SSS`, topicStatus's `#Last Updated`).
pub fn format_millis(epoch_ms: i64) -> String {
    match local_time(epoch_ms) {
        Some(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
            t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
        ),
        None => epoch_ms.to_string(),
    }
}

/// Reads a time as mqadmin accepts it: `now`, epoch milliseconds, or local
/// `yyyy-MM-dd#HH:mm:ss:SSS`.
pub fn parse_time_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(apogee_common::time::now_ms());
    }
    if let Ok(epoch_ms) = text.parse::<i64>() {
        return Ok(epoch_ms);
    }
    let invalid = || format!("{text:?} is not `now`, epoch milliseconds or yyyy-MM-dd#HH:mm:ss:SSS");
    let (date, time) = text.split_once('#').ok_or_else(invalid)?;
    let date: Vec<i32> = date.split('-').map(str::parse).collect::<Result<_, _>>().map_err(|_| invalid())?;
    let time: Vec<i32> = time.split(':').map(str::parse).collect::<Result<_, _>>().map_err(|_| invalid())?;
    let ([year, month, day], [hour, minute, second, millis]) = (date.as_slice(), time.as_slice()) else {
        return Err(invalid());
    };
    let in_range = (1..=12).contains(month)
        && (1..=31).contains(day)
        && (0..24).contains(hour)
        && (0..60).contains(minute)
        && (0..62).contains(second)
        && (0..1000).contains(millis);
    if !in_range || *year < 1900 {
        return Err(invalid());
    }
    // SAFETY: `tm` is plain data; all-zero is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = *day;
    tm.tm_hour = *hour;
    tm.tm_min = *minute;
    tm.tm_sec = *second;
    tm.tm_isdst = -1;
    // SAFETY: `tm` is a valid, initialised struct that mktime may normalise in place.
    let seconds = unsafe { libc::mktime(&mut tm) };
    if seconds == -1 {
        return Err(invalid());
    }
    seconds.checked_mul(1000).and_then(|ms| ms.checked_add(i64::from(*millis))).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_pad_every_column_but_the_last() {
        let table = Table { widths: vec![6, 4, 3] };
        assert_eq!(table.format(&["#Topic", "#QID", "#X"]), "#Topic  #QID  #X");
        assert_eq!(table.format(&["T", "1", ""]), "T       1");
        assert_eq!(table.format(&["a-long-cell", "7"]), "a-long-cell  7");
    }

    #[test]
    fn version_names_follow_java_ordinals() {
        assert_eq!(version_desc(479), "V5_3_3");
        assert_eq!(version_desc(401), "V4_9_4");
        assert_eq!(version_desc(212), "V4_0_0_SNAPSHOT");
        assert_eq!(version_desc(213), "V4_0_0");
        assert_eq!(version_desc(5000), "HIGHER_VERSION");
        assert_eq!(version_desc(-1), "V3(-1)");
    }

    #[test]
    fn times_parse_in_every_mqadmin_form() {
        assert_eq!(parse_time_ms("1700000000123"), Ok(1_700_000_000_123));
        let parsed = parse_time_ms("2024-03-05#06:07:08:009").unwrap();
        assert_eq!(format_millis(parsed), "2024-03-05 06:07:08,009");
        assert_eq!(format_seconds(parsed), "2024-03-05 06:07:08");
        let now = apogee_common::time::now_ms();
        assert!((parse_time_ms("now").unwrap() - now).abs() < 60_000);
        for bad in [
            "",
            "yesterday",
            "2024-13-01#00:00:00:000",
            "2024-01-01#00:00:00",
            "2024-01-01",
            "2147483647-01-01#00:00:00:000",
        ] {
            assert!(parse_time_ms(bad).is_err(), "{bad}");
        }
    }
}
