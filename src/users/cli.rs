//! `threering user …`: manage users from the command line (the first admin has to come
//! from somewhere). Every change is written to the audit log with actor `cli`.
//!
//! ```text
//! threering user add NAME --role ROLE [--agent-id ID] [--generate-password] [--config F]
//!     password: one line on stdin; generated and printed when stdin is a terminal or
//!     with --generate-password
//! threering user password NAME            new password, one line on stdin
//! threering user token NAME [--label L]   prints a new API token (shown only this once)
//! threering user list
//! threering user disable NAME | enable NAME
//! ```

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;

use super::{NewAudit, Users};
use crate::config::{Config, Role};

/// The actor the audit log names for command-line changes.
const CLI_ACTOR: &str = "cli";

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub action: UserAction,
    /// Config file (for the database location); the embedded default when absent.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum UserAction {
    /// Create a user. The password is read from stdin (one line); when stdin is a
    /// terminal, or with --generate-password, one is generated and printed.
    Add {
        name: String,
        /// agent | qa | supervisor | admin
        #[arg(long)]
        role: String,
        /// The agent id (工号) an agent's calls are matched by; defaults to NAME.
        #[arg(long)]
        agent_id: Option<String>,
        /// Generate a password and print it instead of reading one.
        #[arg(long)]
        generate_password: bool,
        /// Read the password from stdin (the default; accepted for scripts that say so).
        #[arg(long, conflicts_with = "generate_password")]
        password_stdin: bool,
    },
    /// Set a user's password from stdin (one line); signs the user out everywhere.
    Password { name: String },
    /// Print a new API token for the user (shown only this once).
    Token {
        name: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List the users.
    List,
    /// Disable a user: sign-in, sessions and tokens stop working.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
}

/// Runs one `threering user` command.
pub async fn run(args: UserArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        None => Config::embedded(),
    };
    let store = crate::store::Store::open_config(&config.store)
        .await
        .context("user: opening the store")?;
    let users = Users::new(&store, &config.auth);
    let result = action(&users, args.action).await;
    store.close().await;
    result
}

async fn action(users: &Users, action: UserAction) -> anyhow::Result<()> {
    match action {
        UserAction::Add {
            name,
            role,
            agent_id,
            generate_password,
            password_stdin,
        } => {
            let role = Role::parse(&role).with_context(|| {
                format!("--role {role:?}: expected agent, qa, supervisor or admin")
            })?;
            let stdin_password = password_stdin || !std::io::stdin().is_terminal();
            let (password, generated) = if generate_password || !stdin_password {
                (super::password::generate(), true)
            } else {
                (read_password_line()?, false)
            };
            let user = users
                .create_user(&name, role, agent_id.as_deref(), &password)
                .await?;
            audit(
                users,
                NewAudit::new(CLI_ACTOR, None, "user.create")
                    .target(&user.name)
                    .detail(format!(
                        "role {}, agent id {}",
                        user.role.as_str(),
                        user.agent_id
                    )),
            )
            .await?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "user {} created (role {}, agent id {})",
                user.name,
                user.role.as_str(),
                user.agent_id
            )?;
            if generated {
                writeln!(out, "password: {password}")?;
            }
        }
        UserAction::Password { name } => {
            let password = read_password_line()?;
            users.set_password(&name, &password).await?;
            audit(
                users,
                NewAudit::new(CLI_ACTOR, None, "user.update")
                    .target(&name)
                    .detail("password"),
            )
            .await?;
            println!("password of {name} changed");
        }
        UserAction::Token { name, label } => {
            let (token, stored) = users.create_token(&name, &label).await?;
            audit(
                users,
                NewAudit::new(CLI_ACTOR, None, "token.create")
                    .target(&name)
                    .detail(format!("token {} {:?}", stored.id, stored.label)),
            )
            .await?;
            eprintln!(
                "token {} for {name}; it is shown only this once (send it as Authorization: Bearer)",
                stored.id
            );
            println!("{token}");
        }
        UserAction::List => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<24} {:<11} {:<16} {:<9} created",
                "name", "role", "agent_id", "status"
            )?;
            for user in users.list_users().await? {
                let created = chrono::DateTime::from_timestamp_millis(user.created_at)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{:<24} {:<11} {:<16} {:<9} {created}",
                    user.name,
                    user.role.as_str(),
                    user.agent_id,
                    if user.disabled { "disabled" } else { "active" }
                )?;
            }
        }
        UserAction::Disable { name } => {
            users.set_disabled(&name, true).await?;
            audit(
                users,
                NewAudit::new(CLI_ACTOR, None, "user.update")
                    .target(&name)
                    .detail("disabled"),
            )
            .await?;
            println!("user {name} disabled");
        }
        UserAction::Enable { name } => {
            users.set_disabled(&name, false).await?;
            audit(
                users,
                NewAudit::new(CLI_ACTOR, None, "user.update")
                    .target(&name)
                    .detail("enabled"),
            )
            .await?;
            println!("user {name} enabled");
        }
    }
    Ok(())
}

async fn audit(users: &Users, entry: NewAudit) -> anyhow::Result<()> {
    users.audit(entry).await.context("writing the audit log")?;
    Ok(())
}

/// One line from stdin, without its line end; empty is refused.
fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!("no password on stdin (give one line, or use --generate-password)");
    }
    Ok(password.to_owned())
}
