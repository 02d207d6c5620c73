//! A timer with microsecond precision on the bench's own async runtime.
//!
//! tokio's timers round to milliseconds, which would add up to a millisecond of lateness to
//! every request of an open loop. A pacer on its own OS thread is precise but cost the bench a
//! quarter of a core at 144 K/s: every release woke the runtime's thread from another thread.
//! A Linux `timerfd` is precise and is just one more readiness event for the runtime's poller,
//! so the pacer runs as a task beside the connections it feeds.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A one-shot timer, re-armed by each [`PreciseTimer::sleep_until`].
#[derive(Debug)]
pub struct PreciseTimer {
    fd: AsyncFd<OwnedFd>,
}

impl PreciseTimer {
    /// A disarmed timer on the monotonic clock (the clock of [`Instant`]).
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before it is used as a descriptor.
        let raw =
            unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor this function just opened and owns nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an `OwnedFd` is open until dropped, which happens only with the `AsyncFd`, and
        // always returns the same descriptor.
        let fd =
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(io::Error::from)?;
        Ok(Self { fd })
    }

    /// Returns at `deadline` or soon after (at once if it has passed).
    pub async fn sleep_until(&self, deadline: Instant) -> io::Result<()> {
        let Some(wait) = deadline.checked_duration_since(Instant::now()).filter(|wait| !wait.is_zero())
        else {
            return Ok(());
        };
        self.arm(wait)?;
        loop {
            let mut ready = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            // SAFETY: reads at most 8 bytes into a buffer of 8 from a descriptor we own.
            let read = ready.try_io(|fd| {
                let count =
                    unsafe { libc::read(fd.as_raw_fd(), expirations.as_mut_ptr().cast(), expirations.len()) };
                if count < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match read {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(error)) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Ok(Err(error)) => return Err(error),
                // Not readable after all: wait for the next readiness.
                Err(_would_block) => continue,
            }
        }
    }

    /// Arms the timer to fire once, `wait` from now.
    fn arm(&self, wait: Duration) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: wait.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: libc::c_long::from(wait.subsec_nanos() as i32),
            },
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
        let result = unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeps_until_the_deadline_and_not_before() {
        // Far above a timerfd's lateness on a loaded machine (tens of µs to a few ms), far
        // below what a wrongly armed timer (seconds for micros, the next tick) would add.
        let allowed_late = Duration::from_millis(100);
        let timer = PreciseTimer::new().unwrap();
        for wait_us in [300u64, 1_500, 20_000] {
            let deadline = Instant::now() + Duration::from_micros(wait_us);
            timer.sleep_until(deadline).await.unwrap();
            let woke = Instant::now();
            assert!(woke >= deadline, "woke before the deadline ({wait_us} µs)");
            let late = woke - deadline;
            assert!(late <= allowed_late, "woke {late:?} after the deadline ({wait_us} µs)");
        }
        // A deadline that has passed returns at once, without arming the timer.
        timer.sleep_until(Instant::now() - Duration::from_millis(1)).await.unwrap();
    }
}
