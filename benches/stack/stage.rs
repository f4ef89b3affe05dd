//! A process the benchmark starts (a `userstream` stage or the Debezium worker): its output in a
//! log file, its peak resident set read from `/proc/<pid>/status` before it is stopped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// How long a stopped process may drain before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(45);

pub struct Stage {
    name: String,
    log: PathBuf,
    child: Child,
    pid: u32,
}

impl Stage {
    /// Starts `command`, stdout and stderr appended to `log`. A stage left behind by a failing
    /// run is killed when its value is dropped.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child
            .id()
            .with_context(|| format!("{name} exited at once; see {}", log.display()))?;
        Ok(Self {
            name: name.to_owned(),
            log: log.to_owned(),
            child,
            pid,
        })
    }

    /// An error if the process has exited (a stage runs until it is stopped).
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited by itself ({status}); see {}",
                self.name,
                self.log.display()
            );
        }
        Ok(())
    }

    /// Waits for a process that ends by itself (`userstream migrate`).
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// The peak resident set so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .with_context(|| format!("no VmHWM in {path}"))?;
        Ok(kib * 1024)
    }

    /// Reads the peak resident set, then stops the process with SIGTERM (SIGKILL after
    /// [`STOP_DEADLINE`]) and returns that peak, in bytes.
    pub async fn stop(mut self) -> anyhow::Result<u64> {
        self.ensure_running()?;
        let peak = self.peak_rss()?;
        let signalled = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .context("running kill")?;
        if !signalled.success() {
            bail!("kill -TERM {} ({}) failed", self.pid, self.name);
        }
        if tokio::time::timeout(STOP_DEADLINE, self.child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "bench: {} did not stop within {STOP_DEADLINE:?} of SIGTERM; killing it",
                self.name
            );
            self.child.kill().await?;
        }
        Ok(peak)
    }
}
