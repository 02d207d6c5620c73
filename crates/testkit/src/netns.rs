//! Network namespaces a test makes for itself, joined by a veth link it can cut and heal:
//! partitions as Jepsen makes them, without touching any network outside the test.
//!
//! A process or a thread is put in a namespace with [`Netns::run`]: the closure runs on a
//! thread that joined the namespace, and every socket it opens, every thread it starts and
//! every child it spawns (an [`crate::ApogeeProcess`]) lives there. Needs root and iproute2's
//! `ip`; [`available`] says whether this machine has them.

use std::io;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Subnets handed out to links: `10.251.N.0/30`, N counting up per process.
static NEXT_SUBNET: AtomicU32 = AtomicU32::new(0);
/// Most links one test process makes (N above stays a byte).
const MAX_LINKS: u32 = 250;

/// Whether namespaces can be made here: `Err` says why not (the test then skips).
pub fn available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("network namespaces need root".to_owned());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("`ip -V` failed: {}", String::from_utf8_lossy(&output.stderr))),
        Err(error) => Err(format!("iproute2's `ip` is missing: {error}")),
    }
}

fn ip(args: &[&str]) -> io::Result<()> {
    let output = Command::new("ip").args(args).output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Makes namespace `apogee-<pid>-<label>` with its loopback up.
    pub fn create(label: &str) -> io::Result<Self> {
        let name = format!("apogee-{}-{label}", std::process::id());
        // A namespace of a killed earlier run of this pid would be in the way.
        let _ = ip(&["netns", "delete", &name]);
        ip(&["netns", "add", &name])?;
        let netns = Self { name };
        ip(&["-n", &netns.name, "link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// The namespace's name (for `ip -n`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `work` on a thread inside this namespace and returns what it returns. Sockets,
    /// threads and child processes made by `work` belong to the namespace.
    pub fn run<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = std::fs::File::open(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
                    use std::os::fd::AsRawFd;
                    // SAFETY: setns on a descriptor of a namespace file we opened; it changes
                    // only this thread's network namespace.
                    let joined = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(joined, 0, "setns {path}: {}", io::Error::last_os_error());
                    work()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(error) = ip(&["netns", "delete", &self.name]) {
            eprintln!("namespace {} not deleted: {error}", self.name);
        }
    }
}

/// A veth link between two namespaces, `10.251.N.1` on the first side and `10.251.N.2` on the
/// second.
#[derive(Debug)]
pub struct Link {
    first: (String, String),
    second: (String, String),
    subnet: u32,
}

impl Link {
    /// Joins `first` and `second` with a veth pair and brings it up.
    pub fn connect(first: &Netns, second: &Netns) -> io::Result<Self> {
        let subnet = NEXT_SUBNET.fetch_add(1, Ordering::Relaxed);
        assert!(subnet < MAX_LINKS, "too many links in one test process");
        let tag = std::process::id() % 100_000;
        let (first_dev, second_dev) = (format!("ap{tag}x{subnet}"), format!("ap{tag}y{subnet}"));
        ip(&[
            "link",
            "add",
            &first_dev,
            "netns",
            first.name(),
            "type",
            "veth",
            "peer",
            "name",
            &second_dev,
            "netns",
            second.name(),
        ])?;
        let link = Self {
            first: (first.name().to_owned(), first_dev),
            second: (second.name().to_owned(), second_dev),
            subnet,
        };
        ip(&["-n", &link.first.0, "addr", "add", &format!("{}/30", link.first_ip()), "dev", &link.first.1])?;
        ip(&[
            "-n",
            &link.second.0,
            "addr",
            "add",
            &format!("{}/30", link.second_ip()),
            "dev",
            &link.second.1,
        ])?;
        link.heal()?;
        Ok(link)
    }

    /// The first side's address.
    pub fn first_ip(&self) -> String {
        format!("10.251.{}.1", self.subnet)
    }

    /// The second side's address.
    pub fn second_ip(&self) -> String {
        format!("10.251.{}.2", self.subnet)
    }

    /// Cuts the link: packets between the two sides are lost (no reset is sent, as with a
    /// pulled cable).
    pub fn cut(&self) -> io::Result<()> {
        ip(&["-n", &self.first.0, "link", "set", &self.first.1, "down"])?;
        ip(&["-n", &self.second.0, "link", "set", &self.second.1, "down"])
    }

    /// Brings the link (back) up.
    pub fn heal(&self) -> io::Result<()> {
        ip(&["-n", &self.first.0, "link", "set", &self.first.1, "up"])?;
        ip(&["-n", &self.second.0, "link", "set", &self.second.1, "up"])
    }
}
