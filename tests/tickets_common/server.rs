//! The in-process API server the ticket tests talk to (`tickets_api`,
//! `tickets_archive_api`): a real socket over a temporary store, recordings and archive
//! root, an admin and an agent config token, and the JSON helpers those tests share (a
//! full ticket form, typed field access, the actions of a history).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use threering::config::{Config, Role, TokenConfig};
use threering::http::{serve, AppState};
use threering::store::testing::TestDb;
use threering::store::Store;

use super::{request, Reply};

/// An admin token, named `crm` in the config.
pub const ADMIN: &str = "admin-token-1";
pub const ADMIN_NAME: &str = "crm";
/// An agent-role token, named `agent-1001`.
pub const AGENT: &str = "agent-token-1";
pub const AGENT_NAME: &str = "agent-1001";

pub struct Server {
    pub addr: SocketAddr,
    pub store: Store,
    pub recordings: PathBuf,
    pub archive_root: PathBuf,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
    _db: TestDb,
}

impl Server {
    pub async fn shut_down(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        request(self.addr, method, path, Some(ADMIN), body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send("POST", path, Some(&body.to_string())).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send("PATCH", path, Some(&body.to_string())).await
    }

    /// POST /api/tickets, which must answer 201; the ticket.
    pub async fn create(&self, body: Value) -> Value {
        let reply = self.post("/api/tickets", body).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.json()
    }

    /// GET /api/tickets/{id}, which must answer 200.
    pub async fn ticket(&self, id: &str) -> Value {
        let reply = self.get(&format!("/api/tickets/{id}")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    /// The ids GET /api/tickets{query} lists, in order.
    pub async fn listed(&self, query: &str) -> Vec<String> {
        let reply = self.get(&format!("/api/tickets{query}")).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
        reply.json()["tickets"]
            .as_array()
            .unwrap_or_else(|| panic!("{query}: {}", reply.body))
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

pub fn token(name: &str, role: Role, text: &str) -> TokenConfig {
    TokenConfig {
        name: name.to_owned(),
        role,
        token_sha256: hex::encode(Sha256::digest(text.as_bytes())),
    }
}

pub async fn start() -> Server {
    start_with(Config::embedded()).await
}

pub async fn start_with(mut config: Config) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::from_env().await;
    let store = db.open().await;
    let recordings = dir.path().join("recordings");
    let archive_root = dir.path().join("archive");
    std::fs::create_dir_all(&recordings).unwrap();
    config.store.recordings = recordings.clone();
    config.archive.root = archive_root.clone();
    let mut state = AppState::new(&config, store.clone());
    state.tokens = vec![
        token(ADMIN_NAME, Role::Admin, ADMIN),
        token(AGENT_NAME, Role::Agent, AGENT),
    ];
    state.ready = Arc::new(AtomicBool::new(true));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let shutdown = stop.clone().cancelled_owned();
    let task = tokio::spawn(serve(listener, state, shutdown));
    Server {
        addr,
        store,
        recordings,
        archive_root,
        stop,
        task,
        _dir: dir,
        _db: db,
    }
}

/// Every contract key of the form, filled in.
pub fn full_form(kind: &str) -> Value {
    json!({
        "kind": kind,
        "customer": "张三",
        "phone": "13800138000",
        "area": "华东",
        "inquiry_type": "查单",
        "waybill": "SF1234567890",
        "content": "包裹三天未更新物流信息",
    })
}

pub fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {value}"))
}

pub fn int_of(value: &Value, key: &str) -> i64 {
    value[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} is not an integer in {value}"))
}

/// The `action`s of a history, in order.
pub fn actions(history: &Value) -> Vec<String> {
    history
        .as_array()
        .unwrap_or_else(|| panic!("history is not a list: {history}"))
        .iter()
        .map(|h| str_of(h, "action").to_owned())
        .collect()
}
