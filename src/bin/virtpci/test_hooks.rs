//! The CLI's crash hooks, compiled only with the `test-hooks` feature (never in a release
//! build) and used only with `--simulate`.
//!
//! `VIRTPCI_TEST_ABORT_AFTER_WRITES=K` aborts the process
//! (as `kill -9` would: no cleanup) right after the K-th sysfs write, or before the first one
//! when K is 0; `VIRTPCI_TEST_ABORT_AFTER_STEPS=S` aborts right after the S-th change the
//! simulated kernel makes to the tree (a write takes several: links, files, its record), so in
//! the middle of a write; `VIRTPCI_TEST_WRITE_DELAY_US=N` sleeps N µs before each write, so that
//! a harness can kill the process at random points.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use virtpci::host::{Environment, Host, SimulatedKernel, Sysfs, SysfsWrite, SysfsWriter};
use virtpci::Result;

/// The simulated kernel behind the test hooks.
#[derive(Debug)]
struct HookedKernel {
    kernel: SimulatedKernel,
    done: AtomicU64,
    abort_after: Option<u64>,
    delay: Duration,
}

impl SysfsWriter for HookedKernel {
    fn keeps_vf_net(&self) -> bool {
        self.kernel.keeps_vf_net()
    }

    fn load_module(&self, sysfs: &Sysfs, modules_dir: &Path, module: &str) -> io::Result<()> {
        self.kernel.load_module(sysfs, modules_dir, module)
    }

    fn environment(&self, sysfs: &Sysfs) -> Environment {
        self.kernel.environment(sysfs)
    }

    fn write(&self, sysfs: &Sysfs, write: &SysfsWrite<'_>) -> io::Result<()> {
        if self.abort_after == Some(0) {
            std::process::abort();
        }
        std::thread::sleep(self.delay);
        let result = self.kernel.write(sysfs, write);
        let n = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if self.abort_after == Some(n) {
            std::process::abort();
        }
        result
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The simulated host at `root`, with the crash hooks the environment asks for.
pub fn simulated_host(root: &Path) -> Result<Host> {
    let sysfs = Sysfs::open(root)?;
    let kernel = match env_u64("VIRTPCI_TEST_ABORT_AFTER_STEPS") {
        Some(limit) => {
            let steps = AtomicU64::new(0);
            let hook = move |_: &str| {
                if steps.fetch_add(1, Ordering::SeqCst) + 1 == limit {
                    std::process::abort();
                }
            };
            SimulatedKernel::attach_with_step_hook(&sysfs, Arc::new(hook))?
        }
        None => SimulatedKernel::attach(&sysfs)?,
    };
    let hooked = HookedKernel {
        kernel,
        done: AtomicU64::new(0),
        abort_after: env_u64("VIRTPCI_TEST_ABORT_AFTER_WRITES"),
        delay: Duration::from_micros(env_u64("VIRTPCI_TEST_WRITE_DELAY_US").unwrap_or(0)),
    };
    let host = Host::with_writer(Some(root), Arc::new(hooked))?;
    Ok(host)
}
