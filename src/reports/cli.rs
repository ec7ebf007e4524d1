//! `threering report …`: reports from the command line, read straight from the store.
//!
//! ```text
//! threering report shift [--from T] [--to T] [--config F] [--format text|html|json]
//! ```
//! Times: a local date (`2025-03-01`, midnight), a local time (`2025-03-01 08:00`,
//! `2025-03-01T08:00`), RFC 3339 or epoch ms; local means `[calendar] utc_offset`.
//! Default: the last 24 hours (`--to` now, `--from` 24 h before `--to`). The report goes
//! to stdout: text (the default) for people, `html` for a browser or printer, `json`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::{parse_cli_time, shift, Range, ReportSettings};
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub report: ReportCommand,
    /// Config file (database, calendar, ring rule); the embedded default when absent.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ReportCommand {
    /// The shift handover report (交接班): calls, three-ring compliance, tickets opened,
    /// open and overdue, complaints, low survey scores, incidents.
    Shift {
        /// Start of the shift: YYYY-MM-DD, "YYYY-MM-DD HH:MM" (local), RFC 3339 or
        /// epoch ms. Default: 24 hours before --to.
        #[arg(long)]
        from: Option<String>,
        /// End of the shift (not included). Default: now.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Html,
    Json,
}

/// Runs one `threering report` command, writing the report to stdout.
pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        None => Config::embedded(),
    };
    let settings = ReportSettings::from_config(&config);
    let ReportCommand::Shift { from, to, format } = args.report;
    let time = |name: &str, text: Option<String>| -> anyhow::Result<Option<i64>> {
        text.map(|t| {
            parse_cli_time(&t, settings.offset).with_context(|| {
                format!(
                    "--{name} {t:?}: expected YYYY-MM-DD, \"YYYY-MM-DD HH:MM\", RFC 3339 or epoch ms"
                )
            })
        })
        .transpose()
    };
    let (from, to) = (time("from", from)?, time("to", to)?);
    let now = chrono::Utc::now().timestamp_millis();
    let range = Range::resolve(from, to, now)
        .map_err(|(name, message)| anyhow::anyhow!("--{name}: {message}"))?;
    let store = crate::store::Store::open_config(&config.store)
        .await
        .context("report: opening the store")?;
    let report = shift::build(&store, &settings, range, now).await;
    store.close().await;
    let report = report.context("report: reading the store")?;
    let text = match format {
        Format::Text => shift::render_text(&report),
        Format::Html => shift::render_html(&report),
        Format::Json => {
            let mut json = serde_json::to_string_pretty(&report)?;
            json.push('\n');
            json
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
