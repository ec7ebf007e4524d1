//! The `threering` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use threering::config::Config;
use threering::daemon::{self, Stop};
use threering::sip::auth::Algorithm;
use threering::sip::echo::{self, EchoConfig};
use threering::sip::transaction::TimerConfig;
use threering::sip::transport::ListenSpec;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// mimalloc rather than glibc malloc: call setup allocates and frees many small blocks
/// across threads, where glibc spent a quarter of the daemon's CPU (bench/run profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "threering",
    version,
    about = "SIP call-center daemon: answers and routes calls, times ring-to-answer against the three-ring rule"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon. Without --config it runs on the embedded defaults
    /// (config/threering.toml as built in).
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a config file; prints every problem with the key that has it.
    CheckConfig { file: PathBuf },
    /// Archive tickets: check each for completeness (listing what is missing), then
    /// write one bundle per ticket under [archive] root. `archive verify PATH` re-checks
    /// a bundle.
    #[command(args_conflicts_with_subcommands = true)]
    Archive {
        #[arg(long)]
        config: Option<PathBuf>,
        /// One ticket, by id (T-YYYYMMDD-NNNN).
        #[arg(long, conflicts_with = "closed_before")]
        ticket: Option<String>,
        /// Every closed, unarchived ticket closed before this local date (YYYY-MM-DD)
        /// or time (RFC 3339).
        #[arg(long)]
        closed_before: Option<String>,
        #[command(subcommand)]
        action: Option<ArchiveAction>,
    },
    /// Manage users: add, password, token, list, disable, enable.
    User(threering::users::cli::UserArgs),
    /// Reports: `report shift [--from T] [--to T] [--format text|html|json]`, the
    /// shift handover report.
    Report(threering::reports::cli::ReportArgs),
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

#[derive(Subcommand)]
enum ArchiveAction {
    /// Re-check a bundle: every member against manifest.json and SHA256SUMS.
    Verify { path: PathBuf },
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display())),
        None => Ok(Config::embedded()),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::CheckConfig { file } = &cli.command {
        return check_config(file);
    }
    if let Command::Archive {
        action: Some(ArchiveAction::Verify { path }),
        ..
    } = &cli.command
    {
        return verify_bundle(path);
    }
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
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { config } => {
                let config = load_config(config.as_ref())?;
                let scheme = if config.https() { "https" } else { "http" };
                let (stop_tx, stop_rx) = mpsc::channel(2);
                tokio::spawn(forward_signals(stop_tx));
                daemon::run(config, stop_rx, |sip, http| {
                    let mut out = std::io::stdout().lock();
                    for spec in sip {
                        let _ = writeln!(out, "listening {spec}");
                    }
                    let _ = writeln!(out, "listening {scheme}:{http}");
                    let _ = out.flush();
                })
                .await
                .context("serve")?;
            }
            Command::Migrate { config } => {
                let config = load_config(config.as_ref())?;
                threering::store::Store::open_config(&config.store)
                    .await
                    .context("migrate")?;
                println!(
                    "database {} is up to date",
                    threering::store::redact_url(&config.store.database)
                );
            }
            Command::CheckConfig { .. } => unreachable!("handled before the runtime starts"),
            Command::User(args) => threering::users::cli::run(args).await?,
            Command::Report(args) => threering::reports::cli::run(args).await?,
            Command::Archive {
                config,
                ticket,
                closed_before,
                action: _,
            } => {
                let config = load_config(config.as_ref())?;
                let failed = archive(config, ticket, closed_before).await?;
                if failed > 0 {
                    std::process::exit(1);
                }
            }
            Command::SipEcho {
                listen,
                ring_ms,
                users,
                realm,
                t1_ms,
                digest,
            } => {
                sip_echo(listen, ring_ms, users, realm, t1_ms, digest).await?;
            }
        }
        Ok(())
    });
    // Tasks still parked (idle connections, timers) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

/// `threering archive verify PATH`: exit 0 if the bundle is whole, 1 (listing every
/// problem) if not.
fn verify_bundle(path: &std::path::Path) -> anyhow::Result<()> {
    match threering::archive::verify(path) {
        Ok(verified) => {
            println!(
                "{}: ok, ticket {}, {} members, sha256 {}",
                path.display(),
                verified.ticket_id,
                verified.members.len(),
                verified.sha256
            );
            for (name, sha) in &verified.members {
                println!("  {sha}  {name}");
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("archive verify: {e}");
            std::process::exit(1);
        }
    }
}

/// Archives one ticket or a batch; returns how many were refused or failed.
async fn archive(
    config: Config,
    ticket: Option<String>,
    closed_before: Option<String>,
) -> anyhow::Result<usize> {
    use std::sync::{Arc, Mutex};
    use threering::archive::ProgressBar;
    use threering::tickets::archiving::{archive_ticket, ArchiveRefused};
    use threering::tickets::ticket::Rules;
    use threering::tickets::Tickets;

    let store = threering::store::Store::open_config(&config.store)
        .await
        .context("archive: opening the store")?;
    let rules = Rules::from_config(&config);
    let ids: Vec<String> = match (ticket, closed_before) {
        (Some(id), _) => vec![id],
        (None, Some(before)) => {
            let before_ms = parse_local_time(&before, &rules)?;
            let filter = threering::store::TicketFilter {
                closed_before: Some(before_ms),
                archived: Some(false),
                limit: Some(10_000),
                ..Default::default()
            };
            store
                .list_tickets(&filter, chrono::Utc::now().timestamp_millis())
                .await?
                .into_iter()
                .map(|t| t.id)
                .collect()
        }
        (None, None) => anyhow::bail!(
            "archive: give --ticket ID or --closed-before DATE (or `archive verify PATH`)"
        ),
    };
    let tickets = Tickets::new(store, rules);
    let bar = Arc::new(Mutex::new(ProgressBar::new(ids.len() as u64)));
    let mut failed = 0;
    for id in &ids {
        bar.lock().expect("progress").item_started(id);
        let progress_bar = bar.clone();
        let progress: threering::tickets::archiving::Progress = Arc::new(move |done, total| {
            if let Ok(mut bar) = progress_bar.lock() {
                bar.bytes(done, total);
            }
        });
        let result = archive_ticket(
            &tickets,
            &config.store.recordings,
            &config.archive.root,
            id,
            "archive-cli",
            Some(progress),
        )
        .await;
        let mut bar = bar.lock().expect("progress");
        match result {
            Ok(done) => bar.message(&format!(
                "{id}: archived to {} (sha256 {})",
                config.archive.root.join(&done.path).display(),
                done.sha256
            )),
            Err(ArchiveRefused::Incomplete { missing }) => {
                failed += 1;
                let mut text = format!("{id}: not archived, incomplete:");
                for item in missing {
                    text.push_str(&format!("\n  - {item}"));
                }
                bar.message(&text);
            }
            Err(e) => {
                failed += 1;
                bar.message(&format!("{id}: not archived: {e}"));
            }
        }
        bar.item_done();
    }
    if let Ok(bar) = Arc::try_unwrap(bar) {
        bar.into_inner().expect("progress").finish();
    }
    if ids.is_empty() {
        println!("no closed, unarchived tickets to archive");
    }
    Ok(failed)
}

/// A local date (midnight on the calendar's offset) or an RFC 3339 time, as epoch ms.
fn parse_local_time(text: &str, rules: &threering::tickets::ticket::Rules) -> anyhow::Result<i64> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_millis());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .with_context(|| format!("--closed-before {text:?}: expected YYYY-MM-DD or RFC 3339"))?;
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    let local = midnight
        .and_local_timezone(rules.calendar.offset())
        .single()
        .context("--closed-before: not a valid local time")?;
    Ok(local.timestamp_millis())
}

fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    match Config::load(file) {
        Ok(_) => {
            println!("{}: ok", file.display());
            Ok(())
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            std::process::exit(1);
        }
    }
}

/// SIGTERM drains, SIGINT (Ctrl-C) stops now; a second signal of either kind also
/// stops now.
async fn forward_signals(stop: mpsc::Sender<Stop>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    let mut first = true;
    loop {
        let how = tokio::select! {
            _ = tokio::signal::ctrl_c() => Stop::Now,
            _ = term.recv() => if first { Stop::Drain } else { Stop::Now },
        };
        first = false;
        if stop.send(how).await.is_err() {
            return;
        }
    }
}

async fn sip_echo(
    listen: Vec<String>,
    ring_ms: u64,
    users: Vec<String>,
    realm: String,
    t1_ms: u64,
    digest: Vec<String>,
) -> anyhow::Result<()> {
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
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
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
    .context("sip-echo")
}
