//! The pages for people: QA staff (call search, the call page with the recording,
//! waveform, ring timeline, flags, scoring), supervisors (dashboard, live wallboard,
//! shift report). Server-rendered HTML with a little inline JavaScript where live data
//! needs it; no build step. Every page needs a signed-in session (else a redirect to
//! `/login`); forms carry the session's CSRF token.

pub mod board;
pub mod calls;
pub mod wallboard;

use axum::response::Html;

use crate::http::ApiCaller;
use crate::qa::svg::esc;

/// What a page handler knows about who is looking.
#[derive(Debug, Clone)]
pub struct PageSession {
    pub caller: ApiCaller,
    /// The session's CSRF token, put into every form.
    pub csrf: String,
}

const STYLE: &str = r#"
body{font-family:system-ui,"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#203a5c;color:#fff;padding:.5rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
header a{color:#fff;text-decoration:none}header .me{margin-left:auto;font-size:.9rem}
header form{display:inline}header button{background:none;border:1px solid #fff;color:#fff;border-radius:3px;cursor:pointer}
main{padding:1rem;max-width:1200px}
table{border-collapse:collapse;width:100%;background:#fff}th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;font-size:.9rem}
th{background:#eef2f7}.bad{color:#c0392b;font-weight:bold}.ok{color:#2e8b57}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin-bottom:1rem}
form.filters label{display:flex;flex-direction:column;font-size:.8rem}
section{margin:1rem 0;padding:.5rem 1rem;background:#fff;border:1px solid #e3e3e3;border-radius:4px}
h1{font-size:1.3rem}h2{font-size:1.1rem}.muted{color:#777;font-size:.85rem}
.flag{display:inline-block;margin:.15rem;padding:.15rem .4rem;border-radius:3px;background:#fdebd0}
audio{width:100%}
"#;

/// A whole page: the header with navigation and who is signed in, then `body`.
pub fn page(title: &str, session: &PageSession, body: &str) -> Html<String> {
    let caller = &session.caller;
    Html(format!(
        r#"<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{title} · threering</title><style>{STYLE}</style></head><body><header><strong>threering</strong><a href="/ui/calls">通话 Calls</a><a href="/ui/dashboard">看板 Dashboard</a><a href="/ui/wallboard">大屏 Wallboard</a><a href="/ui/shift">交接班 Shift report</a><span class="me">{name} ({role})</span><form method="post" action="/logout"><input type="hidden" name="csrf" value="{csrf}"><button>退出 Sign out</button></form></header><main>{body}</main></body></html>"#,
        title = esc(title),
        name = esc(&caller.name),
        role = caller.role.as_str(),
        csrf = esc(&session.csrf),
    ))
}

/// Epoch ms as local `YYYY-MM-DD HH:MM:SS` on the calendar's offset.
pub fn local_time(ms: i64, offset: chrono::FixedOffset) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&offset)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// `Some(v)` as text, `None` as a dash.
pub fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| esc(&v.to_string()))
}

/// The pages' guard: a signed-in session, or a redirect to the login form that comes
/// back here afterwards.
pub async fn require_session(
    axum::extract::State(state): axum::extract::State<crate::http::AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let secret = crate::http::auth::cookie(request.headers(), crate::http::auth::SESSION_COOKIE)
        .map(str::to_owned);
    let found = match secret {
        Some(secret) => state.users.session(&secret).await.ok().flatten(),
        None => None,
    };
    let Some((user, session)) = found else {
        // Inside the nested router the URI lacks its `/ui` prefix: the original has it.
        let wanted = request
            .extensions()
            .get::<axum::extract::OriginalUri>()
            .map(|o| &o.0)
            .unwrap_or(request.uri())
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/ui/calls".into());
        let location = format!("/login?next={}", percent_encode(&wanted));
        return (
            axum::http::StatusCode::SEE_OTHER,
            [(axum::http::header::LOCATION, location)],
        )
            .into_response();
    };
    request.extensions_mut().insert(PageSession {
        caller: ApiCaller {
            agent: user.agent_scope(),
            name: user.name,
            role: user.role,
        },
        csrf: session.csrf_token,
    });
    let mut response = next.run(request).await;
    // Pages show customer data: never cached.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// Percent-encodes a query value.
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The page routes, behind [`require_session`].
pub fn routes(state: crate::http::AppState) -> axum::Router<crate::http::AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/calls", get(calls::search))
        .route("/calls/{id}", get(calls::call_page))
        .route("/calls/{id}/score", post(calls::post_score))
        .route("/calls/{id}/annotate", post(calls::post_annotation))
        .route("/dashboard", get(board::dashboard))
        .route("/shift", get(board::shift))
        .route("/wallboard", get(wallboard::page_handler))
        .route("/wallboard/stream", get(wallboard::stream))
        .layer(axum::middleware::from_fn_with_state(state, require_session))
}
