//! Kamailio (Debian `kamailio` + `kamailio-tls-modules`) as a real TLS-speaking SIP
//! proxy in front of the daemon: requests that arrive over UDP go to the daemon over TLS,
//! requests that arrive over TLS (the daemon ringing an agent) go to the agent over UDP,
//! and in-dialog requests follow the route set. It record-routes, so with the transport
//! change it inserts two Record-Route values (one per side).
//!
//! It runs in the foreground (`-DD`) in its own temp dir, logs to a file, and is stopped
//! by its own PID (SIGTERM, then SIGKILL); it ends its worker processes itself.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::base::{read_lossy, tail};
use super::tls::TestCerts;

/// Where Debian puts the modules.
const MODULES: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules/";

/// How long Kamailio may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running Kamailio.
pub struct Kamailio {
    child: Option<Child>,
    pub udp: SocketAddr,
    pub tls: SocketAddr,
    log: PathBuf,
}

impl Kamailio {
    /// Starts Kamailio on `udp` and `tls` (127.0.0.1 ports), relaying new requests
    /// from UDP to `daemon_tls` over TLS (verifying the daemon's certificate against the
    /// test CA) and new requests from TLS to `agent` over UDP. It presents the test
    /// certificate on its own TLS port.
    pub fn start(
        udp: u16,
        tls: u16,
        daemon_tls: SocketAddr,
        agent: SocketAddr,
        certs: &TestCerts,
    ) -> Kamailio {
        assert!(
            PathBuf::from(MODULES).join("tls.so").exists(),
            "Kamailio's TLS module is missing: apt-get install kamailio kamailio-tls-modules"
        );
        let dir = certs.dir().join(format!("kamailio-{udp}"));
        fs::create_dir_all(&dir).expect("Kamailio's dir");
        let tls_cfg = dir.join("tls.cfg");
        fs::write(
            &tls_cfg,
            format!(
                "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\n\
                 require_certificate = no\ncertificate = {}\nprivate_key = {}\n\n\
                 [client:default]\nmethod = TLSv1.2+\nverify_certificate = yes\n\
                 require_certificate = yes\nca_list = {}\n",
                certs.cert().display(),
                certs.key().display(),
                certs.ca().display()
            ),
        )
        .expect("write tls.cfg");
        let cfg = dir.join("kamailio.cfg");
        fs::write(
            &cfg,
            config(udp, tls, daemon_tls, agent, &tls_cfg.display().to_string()),
        )
        .expect("write kamailio.cfg");
        let log = dir.join("kamailio.log");
        let out = File::create(&log).expect("Kamailio's log");
        let err = out.try_clone().expect("clone the log handle");
        let child = Command::new("kamailio")
            .arg("-DD")
            .arg("-E")
            .args(["-f", &cfg.display().to_string()])
            .args(["-Y", &dir.display().to_string()])
            .args(["-P", &dir.join("kamailio.pid").display().to_string()])
            .args(["-m", "32", "-M", "8"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start kamailio (apt-get install kamailio): {e}"));
        let mut kamailio = Kamailio {
            child: Some(child),
            udp: SocketAddr::from(([127, 0, 0, 1], udp)),
            tls: SocketAddr::from(([127, 0, 0, 1], tls)),
            log,
        };
        kamailio.wait_listening();
        kamailio
    }

    /// Waits until the TLS port accepts and the UDP port is taken.
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("kamailio exited ({status}) at start:\n{}", self.log_tail());
            }
            let tls_up = TcpStream::connect_timeout(&self.tls, Duration::from_millis(200)).is_ok();
            let udp_taken = UdpSocket::bind(self.udp).is_err();
            if tls_up && udp_taken {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "kamailio did not listen within {START_TIMEOUT:?}:\n{}",
                    self.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The end of Kamailio's log.
    pub fn log_tail(&self) -> String {
        tail(&read_lossy(&self.log), 8 * 1024).to_owned()
    }

    /// SIGTERM to its own PID, SIGKILL if it has not ended within 5 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- kamailio log (tail):\n{}\n---", self.log_tail());
        }
        self.stop();
    }
}

/// The routing script.
fn config(udp: u16, tls: u16, daemon_tls: SocketAddr, agent: SocketAddr, tls_cfg: &str) -> String {
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
auto_aliases=no
listen=udp:127.0.0.1:{udp}
listen=tls:127.0.0.1:{tls}
enable_tls=yes
mpath="{MODULES}"
loadmodule "tls.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "xlog.so"
modparam("tls", "config", "{tls_cfg}")

request_route {{
    xlog("L_INFO", "in: $rm $ru over $pr from $si:$sp\n");
    if (has_totag()) {{
        # In-dialog: the Route set when there is one, else the Request-URI.
        loose_route();
        if (!t_relay()) {{
            sl_reply_error();
        }}
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    record_route();
    if ($pr == "tls") {{
        $du = "sip:{agent_ip}:{agent_port}";
    }} else {{
        $du = "sip:{daemon_ip}:{daemon_port};transport=tls";
    }}
    if (!t_relay()) {{
        sl_reply_error();
    }}
}}
"#,
        agent_ip = agent.ip(),
        agent_port = agent.port(),
        daemon_ip = daemon_tls.ip(),
        daemon_port = daemon_tls.port(),
    )
}
