//! The `threering` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;
use threering::sip::auth::Algorithm;
use threering::sip::echo::{self, EchoConfig};
use threering::sip::transaction::TimerConfig;
use threering::sip::transport::ListenSpec;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "threering", version, about = "SIP call-center daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the built-in test UAS: answers INVITEs after --ring-ms, echoes RTP, and
    /// registers the --user accounts with digest authentication.
    SipEcho {
        /// Listen entries, e.g. udp:127.0.0.1:5070 (repeatable).
        #[arg(long = "listen", default_values_t = vec!["udp:127.0.0.1:5070".to_string(), "tcp:127.0.0.1:5070".to_string()])]
        listen: Vec<String>,
        /// Milliseconds between 180 Ringing and 200 OK.
        #[arg(long, default_value_t = 0)]
        ring_ms: u64,
        /// A REGISTER account as NAME:PASSWORD (repeatable).
        #[arg(long = "user")]
        users: Vec<String>,
        #[arg(long, default_value = "threering")]
        realm: String,
        /// SIP timer T1 in milliseconds (RFC 3261 §17).
        #[arg(long, default_value_t = 500)]
        t1_ms: u64,
        /// Digest algorithms offered, most preferred first: md5, sha-256.
        #[arg(long, value_delimiter = ',', default_values_t = vec!["md5".to_string(), "sha-256".to_string()])]
        digest: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("THREERING_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::SipEcho {
                listen,
                ring_ms,
                users,
                realm,
                t1_ms,
                digest,
            } => {
                let listen = listen
                    .iter()
                    .map(|l| l.parse::<ListenSpec>().map_err(anyhow::Error::msg))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let users = users
                    .iter()
                    .map(|u| {
                        u.split_once(':')
                            .map(|(n, p)| (n.to_owned(), p.to_owned()))
                            .with_context(|| format!("--user {u:?}: expected NAME:PASSWORD"))
                    })
                    .collect::<anyhow::Result<HashMap<_, _>>>()?;
                let algorithms = digest
                    .iter()
                    .map(|a| {
                        a.parse::<Algorithm>()
                            .map_err(|e| anyhow::anyhow!("--digest {a:?}: {e}"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let timers = TimerConfig {
                    t1: Duration::from_millis(t1_ms),
                    ..TimerConfig::default()
                }
                .normalized();
                let config = EchoConfig {
                    listen,
                    ring: Duration::from_millis(ring_ms),
                    users,
                    realm,
                    timers,
                    algorithms,
                };
                let cancel = CancellationToken::new();
                let stopper = cancel.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    stopper.cancel();
                });
                echo::run(config, cancel, |bound| {
                    let mut out = std::io::stdout().lock();
                    for spec in bound {
                        let _ = writeln!(out, "listening {spec}");
                    }
                    let _ = out.flush();
                })
                .await
                .context("sip-echo")?;
            }
        }
        Ok(())
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
