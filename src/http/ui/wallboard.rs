//! The live wallboard: calls waiting and ringing now (the ring count the caller has
//! heard ticks up), calls talking, and every agent's state, updated once a second over
//! SSE without a reload. The page is a table skeleton and a small script; the data is
//! call control's own snapshot (`Control::Snapshot`).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::{page, PageSession};
use crate::call::Control;
use crate::http::AppState;

/// How often the board is refreshed.
const EVERY: Duration = Duration::from_secs(1);

const SCRIPT: &str = r#"
const esc = (t) => String(t ?? '').replace(/[&<>"']/g, (c) => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
const secs = (ms) => ms == null ? '—' : (ms / 1000).toFixed(0) + 's';
const label = {available:'空闲 available', ringing:'振铃 ringing', on_call:'通话 on call', wrap_up:'整理 wrap-up', paused:'暂停 paused', backoff:'暂缓 back-off'};
function render(s) {
  const waiting = s.calls.filter((c) => c.phase === 'waiting' || c.phase === 'ringing');
  document.getElementById('ringing').tBodies[0].innerHTML = waiting.map((c) =>
    `<tr class="call ${c.rings > s.target ? 'late' : ''}" data-call="${esc(c.id)}"><td>${esc(c.queue)}</td><td>${esc(c.caller)}</td><td class="rings">${c.rings ?? 0}</td><td>${secs(c.waited_ms)}</td><td>${esc(c.ringing.join(', ') || '等待 waiting')}</td></tr>`).join('');
  const talking = s.calls.filter((c) => c.phase !== 'waiting' && c.phase !== 'ringing');
  document.getElementById('talking').tBodies[0].innerHTML = talking.map((c) =>
    `<tr class="call"><td>${esc(c.queue)}</td><td>${esc(c.caller)}</td><td>${esc(c.agent ?? '')}</td><td>${esc(c.phase)}</td><td>${c.rings ?? '—'}</td></tr>`).join('');
  document.getElementById('agents').tBodies[0].innerHTML = s.agents.map((a) =>
    `<tr class="agent ${a.state}" data-agent="${esc(a.id)}"><td>${esc(a.id)}</td><td>${esc(a.name)}</td><td class="state">${label[a.state] ?? a.state}${a.pause_reason ? ' · ' + esc(a.pause_reason) : ''}</td><td>${a.calls_answered}</td></tr>`).join('');
  document.getElementById('counts').textContent = `等待/振铃 waiting ${waiting.length} · 通话 talking ${talking.length} · ` + new Date(s.at).toLocaleTimeString();
}
const source = new EventSource('/ui/wallboard/stream');
source.addEventListener('snapshot', (e) => render(JSON.parse(e.data)));
source.onerror = () => { document.getElementById('counts').textContent = '连接中断,重试中 · reconnecting…'; };
"#;

/// `GET /ui/wallboard`.
pub async fn page_handler(Extension(session): Extension<PageSession>) -> Response {
    if let Some(refusal) = super::board::refused(&session) {
        return refusal;
    }
    let body = format!(
        r#"<h1>实时大屏 · Live wallboard</h1><p id="counts" class="muted">连接中 · connecting…</p>
<style>tr.late td.rings{{color:#c0392b;font-weight:bold}} td.rings{{font-size:1.6rem}} tr.agent.available td.state{{color:#2e8b57}} tr.agent.paused td.state{{color:#c0392b}}</style>
<section><h2>排队与振铃 Waiting and ringing</h2><table id="ringing"><thead><tr><th>队列 Queue</th><th>来电 Caller</th><th>响铃声数 Rings</th><th>等待 Waited</th><th>振铃坐席 Ringing</th></tr></thead><tbody></tbody></table></section>
<section><h2>通话中 Talking</h2><table id="talking"><thead><tr><th>队列 Queue</th><th>来电 Caller</th><th>坐席 Agent</th><th>状态 Phase</th><th>响铃 Rings</th></tr></thead><tbody></tbody></table></section>
<section><h2>坐席状态 Agents</h2><table id="agents"><thead><tr><th>工号 Id</th><th>姓名 Name</th><th>状态 State</th><th>接听 Answered</th></tr></thead><tbody></tbody></table></section>
<script>{SCRIPT}</script>"#
    );
    page("大屏 Wallboard", &session, &body).into_response()
}

/// `GET /ui/wallboard/stream`: a snapshot every second as SSE `snapshot` events.
pub async fn stream(
    State(state): State<AppState>,
    Extension(session): Extension<PageSession>,
) -> Response {
    if let Some(refusal) = super::board::refused(&session) {
        return refusal;
    }
    let stream = futures_util::stream::unfold((state, true), |(state, first)| async move {
        if !first {
            tokio::time::sleep(EVERY).await;
        }
        let snapshot = crate::http::ask_control(&state, |reply| Control::Snapshot { reply }).await;
        let event = match snapshot {
            Ok(snapshot) => Event::default()
                .event("snapshot")
                .json_data(&snapshot)
                .unwrap_or_else(|_| Event::default().comment("snapshot failed")),
            // Call control is not running (tests of the pages alone, or shutdown).
            Err(_) => Event::default().event("unavailable").data("{}"),
        };
        Some((Ok::<_, Infallible>(event), (state, false)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
