//! The process's own figures under the names every Prometheus client library uses, so the
//! standard "process" panels work: CPU seconds, resident and virtual memory, threads, open
//! file descriptors and the start time. Read from `/proc` when scraped; on a system without
//! `/proc` the samples are left out rather than reported as zero.

use std::fs;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Collects the process metrics of the current process.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// What `/proc/self` tells, each figure absent when it could not be read.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct ProcessFigures {
    cpu_seconds: Option<f64>,
    start_time_seconds: Option<f64>,
    resident_bytes: Option<i64>,
    virtual_bytes: Option<i64>,
    threads: Option<i64>,
    open_fds: Option<i64>,
}

impl ProcessFigures {
    fn read() -> Self {
        let ticks_per_second = clock_ticks_per_second();
        let stat = fs::read_to_string("/proc/self/stat").ok();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .as_deref()
            .and_then(|stat| stat.rsplit_once(')'))
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // proc(5): utime is field 14, stime 15, num_threads 20, starttime 22, vsize 23, rss 24;
        // `fields` starts at field 3.
        let field = |number: usize| fields.get(number - 3).and_then(|value| value.parse::<u64>().ok());
        let cpu_seconds = match (field(14), field(15)) {
            (Some(user), Some(system)) => Some((user + system) as f64 / ticks_per_second),
            _ => None,
        };
        let boot_time_seconds = fs::read_to_string("/proc/stat").ok().and_then(|stat| {
            stat.lines().find_map(|line| line.strip_prefix("btime ")?.trim().parse::<u64>().ok())
        });
        let start_time_seconds = match (boot_time_seconds, field(22)) {
            (Some(boot), Some(start_ticks)) => Some(boot as f64 + start_ticks as f64 / ticks_per_second),
            _ => None,
        };
        let page_bytes = page_size_bytes();
        Self {
            cpu_seconds,
            start_time_seconds,
            resident_bytes: field(24).map(|pages| (pages * page_bytes) as i64),
            virtual_bytes: field(23).map(|bytes| bytes as i64),
            threads: field(20).map(|threads| threads as i64),
            open_fds: fs::read_dir("/proc/self/fd").ok().map(|entries| entries.count() as i64),
        }
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn page_size_bytes() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(bytes).ok().filter(|bytes| *bytes > 0).unwrap_or(4096)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let figures = ProcessFigures::read();
        if let Some(seconds) = figures.cpu_seconds {
            let counter = ConstCounter::new(seconds);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        let gauges_f64 = [(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            figures.start_time_seconds,
        )];
        for (name, help, value) in gauges_f64 {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
            }
        }
        let gauges_i64 = [
            ("process_resident_memory_bytes", "Resident memory size in bytes.", figures.resident_bytes),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes.", figures.virtual_bytes),
            ("process_threads", "Number of OS threads in the process.", figures.threads),
            ("process_open_fds", "Number of open file descriptors.", figures.open_fds),
        ];
        for (name, help, value) in gauges_i64 {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_threads_and_descriptors() {
        let figures = ProcessFigures::read();
        assert!(figures.resident_bytes.unwrap() > 1 << 20, "{figures:?}");
        assert!(figures.threads.unwrap() >= 1);
        assert!(figures.open_fds.unwrap() >= 3);
        let now_seconds =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let started = figures.start_time_seconds.unwrap();
        assert!(started <= now_seconds + 1.0 && started > now_seconds - 86_400.0, "{figures:?}");
    }
}
