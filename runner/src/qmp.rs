//! A client of QEMU's machine protocol (QMP) on a Unix socket: enough to read guest
//! physical memory from outside the guest, which needs nothing of the guest's cooperation
//! (it works on a replica that has stopped).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The QEMU arguments that open a QMP server on the Unix socket `path` without waiting for
/// a client.
#[must_use]
pub fn server_args(path: &Path) -> Vec<String> {
    vec![
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", path.display()),
    ]
}

/// A QMP connection, past the capabilities negotiation.
pub struct Qmp {
    stream: BufReader<UnixStream>,
}

impl Qmp {
    /// Connects to the socket at `path`, retrying for up to `wait` while QEMU starts.
    ///
    /// # Errors
    /// No socket within `wait`, or a greeting or negotiation QEMU did not answer.
    pub fn connect(path: &Path, wait: Duration) -> Result<Qmp, String> {
        let until = Instant::now() + wait;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= until => {
                    return Err(format!(
                        "no QEMU answers on {} ({e}): is the system running (`cargo xtask run`)?",
                        path.display()
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(|e| format!("QMP socket: {e}"))?;
        let mut qmp = Qmp {
            stream: BufReader::new(stream),
        };
        let greeting = qmp.reply()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("{} is no QMP server: {greeting}", path.display()));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// The next message that is not an event.
    fn reply(&mut self) -> Result<Value, String> {
        loop {
            let mut line = String::new();
            let n = self
                .stream
                .read_line(&mut line)
                .map_err(|e| format!("reading from QMP: {e}"))?;
            if n == 0 {
                return Err("QEMU closed the QMP connection".into());
            }
            let v: Value = serde_json::from_str(&line)
                .map_err(|e| format!("QMP sent no JSON ({e}): {line}"))?;
            if v.get("event").is_none() {
                return Ok(v);
            }
        }
    }

    /// Runs `command` with `arguments`; returns its `return` value.
    ///
    /// # Errors
    /// The connection failed, or QEMU answered with an error.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, String> {
        let mut message = serde_json::json!({ "execute": command });
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        let s = self.stream.get_mut();
        let mut line = message.to_string();
        line.push('\n');
        s.write_all(line.as_bytes())
            .map_err(|e| format!("writing to QMP: {e}"))?;
        let reply = self.reply()?;
        if let Some(error) = reply.get("error") {
            return Err(format!("QMP {command}: {error}"));
        }
        Ok(reply.get("return").cloned().unwrap_or(Value::Null))
    }

    /// `size` bytes of guest physical memory at `address`, through the host file `scratch`
    /// (QEMU's `pmemsave` writes a file; the file is removed after).
    ///
    /// # Errors
    /// QEMU refused (an address outside the guest's memory), or the file could not be read.
    pub fn read_physical(
        &mut self,
        address: u64,
        size: u64,
        scratch: &Path,
    ) -> Result<Vec<u8>, String> {
        let _ = std::fs::remove_file(scratch);
        let filename = scratch
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", scratch.display()))?;
        self.execute(
            "pmemsave",
            Some(serde_json::json!({ "val": address, "size": size, "filename": filename })),
        )?;
        let bytes =
            std::fs::read(scratch).map_err(|e| format!("reading {}: {e}", scratch.display()))?;
        let _ = std::fs::remove_file(scratch);
        if bytes.len() as u64 != size {
            return Err(format!(
                "QEMU saved {} bytes of {size} at {address:#x}",
                bytes.len()
            ));
        }
        Ok(bytes)
    }
}
