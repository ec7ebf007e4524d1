//! The TLS keys: `[sip] tls_cert`, `tls_key`, `tls_ca` and `[http] tls_cert`, `tls_key`.
//! Checking them reads the files (so `check-config` finds a missing or broken
//! certificate before the daemon does), and the daemon builds its rustls configurations
//! from them here.

use std::path::Path;
use std::sync::Arc;

use super::{Config, ConfigProblem};
use crate::sip::transport::{ListenSpec, Protocol, TlsSettings};
use crate::tls::{self, TlsError};

impl Config {
    /// Does `[sip] listen` have a `tls:` entry?
    pub fn sip_tls_listen(&self) -> bool {
        self.sip
            .listen
            .iter()
            .filter_map(|l| l.parse::<ListenSpec>().ok())
            .any(|l| l.protocol == Protocol::Tls)
    }

    /// Does `[http]` serve HTTPS?
    pub fn https(&self) -> bool {
        self.http.tls_cert.is_some() || self.http.tls_key.is_some()
    }

    /// TLS for the SIP transports: our certificate when a `tls:` listener needs it, and
    /// the roots outbound TLS verifies servers against (system roots + `[sip] tls_ca`).
    pub fn sip_tls(&self) -> Result<TlsSettings, TlsError> {
        let server = match (&self.sip.tls_cert, &self.sip.tls_key) {
            (Some(cert), Some(key)) if self.sip_tls_listen() => {
                Some(tls::server_config(cert, key, &[])?)
            }
            _ => None,
        };
        let client = tls::client_config(self.sip.tls_ca.as_deref())?;
        Ok(TlsSettings { server, client })
    }

    /// The HTTPS server configuration, when `[http]` has a certificate and key.
    pub fn http_tls(&self) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
        match (&self.http.tls_cert, &self.http.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(tls::server_config(cert, key, &[b"http/1.1"])?)),
            _ => Ok(None),
        }
    }

    pub(super) fn check_tls(&self, problems: &mut Vec<ConfigProblem>) {
        let sip = &self.sip;
        let listen = self.sip_tls_listen();
        if listen {
            for (key, value) in [
                ("sip.tls_cert", &sip.tls_cert),
                ("sip.tls_key", &sip.tls_key),
            ] {
                if value.is_none() {
                    problems.push(ConfigProblem::new(
                        key,
                        "required by the tls: entry in sip.listen (a PEM file path)",
                    ));
                }
            }
        } else if sip.tls_cert.is_some() || sip.tls_key.is_some() {
            problems.push(ConfigProblem::new(
                "sip.tls_cert",
                "set, but sip.listen has no tls: entry to present it (add e.g. \
                 \"tls:0.0.0.0:5061\", or remove tls_cert and tls_key)",
            ));
        }
        if let (true, Some(cert), Some(key)) = (listen, &sip.tls_cert, &sip.tls_key) {
            if let Err(e) = tls::server_config(cert, key, &[]) {
                problems.push(file_problem("sip", key, e));
            }
        }
        if let Some(ca) = &sip.tls_ca {
            if let Err(e) = tls::load_certificates(ca) {
                problems.push(ConfigProblem::new("sip.tls_ca", e.to_string()));
            }
        }
        let http = &self.http;
        match (&http.tls_cert, &http.tls_key) {
            (Some(cert), Some(key)) => {
                if let Err(e) = tls::server_config(cert, key, &[]) {
                    problems.push(file_problem("http", key, e));
                }
            }
            (Some(_), None) => problems.push(ConfigProblem::new(
                "http.tls_key",
                "required with http.tls_cert (both or none)",
            )),
            (None, Some(_)) => problems.push(ConfigProblem::new(
                "http.tls_cert",
                "required with http.tls_key (both or none)",
            )),
            (None, None) => {}
        }
    }
}

/// A certificate or key that does not load, under the key that names the culprit.
fn file_problem(section: &str, key_path: &Path, error: TlsError) -> ConfigProblem {
    let about_key = match &error {
        TlsError::NoKey { .. } => true,
        TlsError::Read { path, .. } => path == key_path,
        _ => false,
    };
    let key = if about_key { "tls_key" } else { "tls_cert" };
    ConfigProblem::new(format!("{section}.{key}"), error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(config: &Config) -> Vec<String> {
        config.validate().into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn a_tls_listener_needs_a_certificate_and_a_key() {
        let mut config = Config::embedded();
        config.sip.listen.push("tls:127.0.0.1:5061".into());
        assert!(config.sip_tls_listen());
        assert_eq!(keys(&config), ["sip.tls_cert", "sip.tls_key"]);
        let problems = config.validate();
        assert!(problems[0].message.contains("tls: entry"), "{problems:?}");
    }

    #[test]
    fn unreadable_files_are_named_under_their_key() {
        let mut config = Config::embedded();
        config.sip.listen.push("TLS:[::1]:5061".into());
        config.sip.tls_cert = Some("/nonexistent/sip-cert.pem".into());
        config.sip.tls_key = Some("/nonexistent/sip-key.pem".into());
        let problems = config.validate();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "sip.tls_cert");
        assert!(problems[0].message.contains("/nonexistent/sip-cert.pem"));

        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "no PEM here\n").unwrap();
        let mut config = Config::embedded();
        config.http.tls_cert = Some(junk.clone());
        config.http.tls_key = Some(junk.clone());
        config.sip.tls_ca = Some(junk);
        assert_eq!(keys(&config), ["sip.tls_ca", "http.tls_cert"]);
    }

    #[test]
    fn http_certificate_and_key_go_together() {
        let mut config = Config::embedded();
        config.http.tls_cert = Some("/nonexistent/cert.pem".into());
        assert_eq!(keys(&config), ["http.tls_key"]);
        let mut config = Config::embedded();
        config.http.tls_key = Some("/nonexistent/key.pem".into());
        assert_eq!(keys(&config), ["http.tls_cert"]);
    }

    #[test]
    fn a_certificate_without_a_tls_listener_is_pointed_out() {
        let mut config = Config::embedded();
        config.sip.tls_cert = Some("/nonexistent/cert.pem".into());
        config.sip.tls_key = Some("/nonexistent/key.pem".into());
        assert_eq!(keys(&config), ["sip.tls_cert"]);
    }

    #[test]
    fn the_session_cookie_is_secure_by_default_over_https_only() {
        let mut config = Config::embedded();
        assert_eq!(config.auth.cookie_secure, Some(false));
        config.auth.cookie_secure = None;
        config.http.tls_cert = Some("cert.pem".into());
        config.http.tls_key = Some("key.pem".into());
        config.apply_defaults();
        assert_eq!(config.auth.cookie_secure, Some(true));
        // Said in the file, it stays as said.
        config.auth.cookie_secure = Some(false);
        config.apply_defaults();
        assert_eq!(config.auth.cookie_secure, Some(false));
    }
}
