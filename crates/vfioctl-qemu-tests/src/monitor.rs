//! The host side of a case: QMP commands the guest asks for on its serial console.
//!
//! Every VM gets a QMP socket (`-qmp unix:<run dir>/qmp.sock,server=on,wait=off`). A case script
//! that needs the host to act (hot-add a device with `device_add`, say) prints
//! `VFIOTEST-QMP: <one QMP command as JSON>` and then waits for the effect in the guest (the new
//! device in sysfs); the runner, which follows the serial log while the VM runs, sends each such
//! command once, in order, and writes the exchange to `qmp.log` beside `serial.log`. The guest
//! cannot read the reply, so a command QEMU rejects shows up as the guest's step failing and as
//! the error in `qmp.log`.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// The prefix of a line asking the host for a QMP command.
pub const QMP_REQUEST: &str = "VFIOTEST-QMP:";

/// `sun_path` holds 108 bytes with the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// The QEMU arguments for the VM's QMP socket at `socket`; none when the path is too long for
/// a unix socket, which QEMU would refuse to start with (a request then fails, with the reason
/// in `qmp.log`).
pub fn qmp_args(socket: &Path) -> Vec<String> {
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Vec::new();
    }
    vec![
        "-qmp".to_owned(),
        format!("unix:{},server=on,wait=off", socket.display()),
    ]
}

/// Follows a serial log and runs the QMP commands it asks for.
#[derive(Debug)]
pub struct Monitor {
    socket: PathBuf,
    log: PathBuf,
    /// Bytes of the serial log already looked at (up to the last complete line).
    seen: usize,
    conn: Option<BufReader<UnixStream>>,
}

impl Monitor {
    /// A monitor for the QMP socket `socket`, logging to `log`.
    pub fn new(socket: PathBuf, log: PathBuf) -> Self {
        Self {
            socket,
            log,
            seen: 0,
            conn: None,
        }
    }

    /// Looks at the lines of `serial` completed since the last call and sends the commands they
    /// ask for.
    pub fn follow(&mut self, serial: &[u8]) {
        let Some(end) = serial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        if end < self.seen {
            return;
        }
        let new = String::from_utf8_lossy(&serial[self.seen..=end]).into_owned();
        self.seen = end + 1;
        for command in requests(&new) {
            let line = match self.send(&command) {
                Ok(reply) => format!("-> {command}\n<- {reply}\n"),
                Err(e) => format!("-> {command}\n!! {e}\n"),
            };
            let mut all = fs::read_to_string(&self.log).unwrap_or_default();
            all.push_str(&line);
            let _ = fs::write(&self.log, all);
        }
    }

    fn send(&mut self, command: &str) -> Result<String, String> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let conn = self.conn.as_mut().ok_or("no QMP connection")?;
        exchange(conn, command)
    }

    /// Connects, reads the greeting and leaves capabilities negotiation mode.
    fn connect(&self) -> Result<BufReader<UnixStream>, String> {
        if self.socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(format!(
                "QMP socket path {} is longer than a unix socket allows: use a shorter \
                 VFIOCTL_QEMU_CACHE",
                self.socket.display()
            ));
        }
        let stream = UnixStream::connect(&self.socket)
            .map_err(|e| format!("cannot connect to {}: {e}", self.socket.display()))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut conn = BufReader::new(stream);
        let greeting = read_message(&mut conn)?;
        if greeting.get("QMP").is_none() {
            return Err(format!("not a QMP greeting: {greeting}"));
        }
        exchange(&mut conn, r#"{"execute":"qmp_capabilities"}"#)?;
        Ok(conn)
    }
}

/// The commands asked for in `text`, each line's JSON after the prefix, in order. A line the
/// kernel's messages broke (no valid JSON after the prefix) is skipped; the guest's wait for the
/// effect then fails the case with the reason.
fn requests(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let rest = line[line.find(QMP_REQUEST)? + QMP_REQUEST.len()..].trim();
            serde_json::from_str::<Value>(rest)
                .ok()
                .filter(|v| v.get("execute").is_some())
                .map(|v| v.to_string())
        })
        .collect()
}

/// Sends one command and returns its reply, skipping the events QEMU sends meanwhile.
fn exchange(conn: &mut BufReader<UnixStream>, command: &str) -> Result<String, String> {
    let stream = conn.get_mut();
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(|e| format!("cannot send to QMP: {e}"))?;
    loop {
        let message = read_message(conn)?;
        if message.get("return").is_some() || message.get("error").is_some() {
            return Ok(message.to_string());
        }
    }
}

fn read_message(conn: &mut BufReader<UnixStream>) -> Result<Value, String> {
    let mut line = String::new();
    match conn.read_line(&mut line) {
        Ok(0) => Err("QMP closed the connection".to_owned()),
        Ok(_) => serde_json::from_str(&line).map_err(|e| format!("QMP sent {line:?}: {e}")),
        Err(e) => Err(format!("cannot read from QMP: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn a_socket_path_too_long_for_unix_gets_no_monitor() {
        assert_eq!(qmp_args(Path::new("/c/qmp.sock"))[0], "-qmp");
        let long = PathBuf::from(format!("/{}/qmp.sock", "d".repeat(120)));
        assert!(qmp_args(&long).is_empty());
    }

    #[test]
    fn requests_are_read_from_complete_lines_and_broken_ones_skipped() {
        let text = "[ 1.2] x\r\nVFIOTEST-QMP: {\"execute\":\"device_add\",\"arguments\":{\"driver\":\"e1000e\"}}\r\n\
                    VFIOTEST-QMP: {\"execute\":\"device_[ 3.4] pcieport\n\
                    VFIOTEST-QMP: {\"not\":\"a command\"}\n";
        assert_eq!(
            requests(text),
            [r#"{"arguments":{"driver":"e1000e"},"execute":"device_add"}"#]
        );
    }

    /// A stand-in QMP server: greeting, capabilities, an event before the reply.
    #[test]
    fn each_request_is_sent_once_and_logged_with_its_reply() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut out = stream;
            writeln!(out, r#"{{"QMP":{{"version":{{}},"capabilities":[]}}}}"#).unwrap();
            let mut got = Vec::new();
            for reply in [
                r#"{"return":{}}"#,
                r#"{"event":"DEVICE_ADDED"}
{"return":{}}"#,
            ] {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                got.push(line.trim().to_owned());
                writeln!(out, "{reply}").unwrap();
            }
            got
        });
        let log = dir.path().join("qmp.log");
        let mut m = Monitor::new(socket, log.clone());
        let mut serial = b"boot\nVFIOTEST-QMP: {\"execute\":\"device_add\"}\npartial".to_vec();
        m.follow(&serial);
        serial.extend_from_slice(b" line\nmore\n");
        m.follow(&serial);
        let got = server.join().unwrap();
        assert_eq!(
            got,
            [
                r#"{"execute":"qmp_capabilities"}"#,
                r#"{"execute":"device_add"}"#
            ]
        );
        assert_eq!(
            fs::read_to_string(&log).unwrap(),
            "-> {\"execute\":\"device_add\"}\n<- {\"return\":{}}\n"
        );
    }
}
