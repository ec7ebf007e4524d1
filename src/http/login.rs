//! Signing in and out: a small server-rendered form (no JavaScript) and a JSON login for
//! scripts and tests.
//!
//! ```text
//! GET  /login          the form (用户名 / name, 密码 / password); ?next=/path
//! POST /login          form-urlencoded name, password, csrf, next: 303 to next (or /)
//!                      with the session cookie; 401 page for a wrong name or password,
//!                      429 (Retry-After) after too many failures, 403 for a stale form
//! POST /logout         ends the session (CSRF: form field csrf or X-CSRF-Token); 303 /login
//! GET  /               who is signed in, with a sign-out button (303 /login if nobody)
//! POST /api/login      {"name","password"}: 200 {"user","role","agent_id","csrf_token",
//!                      "expires_at"} and the session cookie
//! ```
//!
//! The form is protected against login CSRF by the double-submit pattern: `GET /login`
//! sets a random value in the cookie [`LOGIN_CSRF_COOKIE`] (HttpOnly, SameSite=Strict,
//! Path=/login) and in the form's hidden `csrf` field; `POST /login` needs both, equal.
//! Another site can make a browser post the form, but cannot read or set the cookie.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::json;

use super::auth::{constant_time_eq, cookie, csrf_matches, ClientIp, SESSION_COOKIE};
use super::{ApiError, AppState};
use crate::users::{LoginRefused, NewAudit, NewSession, User};

/// The pre-login cookie of the double-submit CSRF check.
pub const LOGIN_CSRF_COOKIE: &str = "threering_login_csrf";

/// How long a login form stays usable, in seconds.
const LOGIN_FORM_MAX_AGE: u32 = 3600;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct LoginForm {
    name: String,
    password: String,
    csrf: String,
    next: String,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct LogoutForm {
    csrf: String,
}

/// `GET /login`.
pub async fn page(
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let next = query
        .ok()
        .and_then(|Query(q)| q.get("next").cloned())
        .unwrap_or_default();
    let csrf = login_csrf_value(&headers);
    form_page(StatusCode::OK, None, "", &safe_next(&next), &csrf)
}

/// `POST /login`.
pub async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        let csrf = login_csrf_value(&headers);
        return form_page(
            StatusCode::BAD_REQUEST,
            Some("请填写用户名和密码 / please give your name and password"),
            "",
            "/",
            &csrf,
        );
    };
    let next = safe_next(&form.next);
    let cookie_csrf = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    let form_ok =
        !cookie_csrf.is_empty() && constant_time_eq(cookie_csrf.as_bytes(), form.csrf.as_bytes());
    if !form_ok {
        return form_page(
            StatusCode::FORBIDDEN,
            Some("表单已过期，请重新登录 / the form expired; please sign in again"),
            &form.name,
            &next,
            &crate::users::random_hex(),
        );
    }
    let name = form.name.trim();
    match login(&state, name, &form.password, ip, "form").await {
        Ok((_, session)) => {
            let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
            set_cookie(&mut response, &session_cookie(&state, &session.secret));
            set_cookie(
                &mut response,
                &format!("{LOGIN_CSRF_COOKIE}=; Path=/login; HttpOnly; SameSite=Strict; Max-Age=0"),
            );
            no_store(&mut response);
            response
        }
        Err(ApiError::LoginFailed) => form_page(
            StatusCode::UNAUTHORIZED,
            Some("用户名或密码错误 / wrong name or password"),
            name,
            &next,
            cookie_csrf,
        ),
        Err(ApiError::TooManyAttempts { retry_after_secs }) => {
            let message = format!(
                "登录失败次数过多，请 {retry_after_secs} 秒后再试 / too many failed logins; \
                 try again in {retry_after_secs} s"
            );
            let mut response = form_page(
                StatusCode::TOO_MANY_REQUESTS,
                Some(&message),
                name,
                &next,
                cookie_csrf,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Err(_) => form_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("服务器内部错误，请稍后再试 / internal error; please try again later"),
            name,
            &next,
            cookie_csrf,
        ),
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginBody {
    name: String,
    password: String,
}

/// `POST /api/login`: JSON in and out; JSON errors (401, 429).
pub async fn api_login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    // JSON only: a page on another site can post a form whose text/plain body happens
    // to be JSON, but cannot send this content type without the browser asking first.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::Invalid {
            problems: vec!["Content-Type: must be application/json".into()],
        });
    }
    let body: LoginBody = serde_json::from_slice(&bytes).map_err(|e| ApiError::Invalid {
        problems: vec![format!("request body: {e}")],
    })?;
    let (user, new) = login(&state, body.name.trim(), &body.password, ip, "api").await?;
    let session = &new.session;
    let mut response = Json(json!({
        "user": user.name,
        "role": user.role.as_str(),
        "agent_id": user.agent_scope(),
        "csrf_token": session.csrf_token,
        "expires_at": session.expires_at,
    }))
    .into_response();
    set_cookie(&mut response, &session_cookie(&state, &new.secret));
    no_store(&mut response);
    Ok(response)
}

/// Checks the password, opens a session and writes the audit log (`login.ok` or
/// `login.failed`, `how` in the detail); the user and the new session.
async fn login(
    state: &AppState,
    name: &str,
    password: &str,
    ip: Option<std::net::IpAddr>,
    how: &str,
) -> Result<(User, NewSession), ApiError> {
    match state.users.login(name, password, ip).await {
        Ok(user) => {
            let session = state.users.create_session(&user.name).await?;
            super::users::record(
                state,
                NewAudit::new(&user.name, Some(user.role), "login.ok")
                    .target(&user.name)
                    .detail(how)
                    .source_ip(ip),
            )
            .await;
            tracing::info!(user = %user.name, ?ip, how, "signed in");
            Ok((user, session))
        }
        Err(LoginRefused::Wrong) => {
            super::users::record(
                state,
                NewAudit::new(name, None, "login.failed")
                    .target(name)
                    .detail(how)
                    .source_ip(ip),
            )
            .await;
            tracing::warn!(user = %name, ?ip, "login failed");
            Err(ApiError::LoginFailed)
        }
        Err(LoginRefused::Throttled { retry_after_secs }) => {
            // Not audited: these never reach a password check, and an attacker could
            // otherwise fill the log at will.
            tracing::warn!(user = %name, ?ip, retry_after_secs, "login refused: too many failures");
            Err(ApiError::TooManyAttempts { retry_after_secs })
        }
        Err(LoginRefused::Failed(e)) => Err(e.into()),
    }
}

/// `POST /logout`: needs the session's CSRF token (form field `csrf` or the header).
pub async fn logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let secret = cookie(&headers, SESSION_COOKIE).map(str::to_owned);
    let found = match &secret {
        Some(secret) => state.users.session(secret).await,
        None => Ok(None),
    };
    let found = match found {
        Ok(found) => found,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let (Some(secret), Some((user, session))) = (&secret, found) {
        let csrf_ok = csrf_matches(&headers, &session.csrf_token)
            || (!form.csrf.is_empty()
                && constant_time_eq(form.csrf.as_bytes(), session.csrf_token.as_bytes()));
        if !csrf_ok {
            return ApiError::Forbidden {
                message: "signing out needs the session's CSRF token (form field csrf or \
                          X-CSRF-Token)"
                    .into(),
            }
            .into_response();
        }
        if let Err(e) = state.users.end_session(secret).await {
            return ApiError::from(e).into_response();
        }
        super::users::record(
            &state,
            NewAudit::new(&user.name, Some(user.role), "logout")
                .target(&user.name)
                .source_ip(ip),
        )
        .await;
    }
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    set_cookie(&mut response, &clear_session_cookie(&state));
    no_store(&mut response);
    response
}

/// `GET /`: who is signed in (no data), or off to the login form.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let found = match cookie(&headers, SESSION_COOKIE) {
        Some(secret) => state.users.session(secret).await.ok().flatten(),
        None => None,
    };
    let Some((user, session)) = found else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    };
    let agent = match user.agent_scope() {
        Some(id) => format!(" · 工号 / agent id {}", escape(&id)),
        None => String::new(),
    };
    let body = format!(
        "<h1>threering</h1>\n<p>已登录 / signed in as <strong>{name}</strong> ({role}{agent})</p>\n\
         <p><a href=\"/ui/calls\">通话 / Calls</a> · <a href=\"/ui/dashboard\">看板 / Dashboard</a> · \
         <a href=\"/ui/wallboard\">大屏 / Wallboard</a> · <a href=\"/ui/shift\">交接班 / Shift report</a></p>\n\
         <p><a href=\"/api/me\">/api/me</a> · <a href=\"/api/calls\">/api/calls</a> · \
         <a href=\"/api/tickets\">/api/tickets</a></p>\n\
         <form method=\"post\" action=\"/logout\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <button type=\"submit\">退出登录 / Sign out</button>\n</form>",
        name = escape(&user.name),
        role = escape(user.role.as_str()),
        csrf = escape(&session.csrf_token),
    );
    html(StatusCode::OK, "threering", &body)
}

/// The login form page, setting the form's CSRF cookie to `csrf`.
fn form_page(
    status: StatusCode,
    message: Option<&str>,
    name: &str,
    next: &str,
    csrf: &str,
) -> Response {
    let alert = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(m)))
        .unwrap_or_default();
    let body = format!(
        "<h1>threering 登录 / Sign in</h1>\n{alert}\
         <form method=\"post\" action=\"/login\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\n\
         <label for=\"name\">用户名 / Name</label>\n\
         <input id=\"name\" name=\"name\" autocomplete=\"username\" required value=\"{name}\"{focus_name}>\n\
         <label for=\"password\">密码 / Password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required{focus_password}>\n\
         <button type=\"submit\">登录 / Sign in</button>\n</form>",
        csrf = escape(csrf),
        next = escape(next),
        name = escape(name),
        focus_name = if name.is_empty() { " autofocus" } else { "" },
        focus_password = if name.is_empty() { "" } else { " autofocus" },
    );
    let mut response = html(status, "登录 / Sign in · threering", &body);
    set_cookie(
        &mut response,
        &format!(
            "{LOGIN_CSRF_COOKIE}={csrf}; Path=/login; HttpOnly; SameSite=Strict; Max-Age={LOGIN_FORM_MAX_AGE}"
        ),
    );
    response
}

/// A whole page around `body`, with headers that keep it out of caches and frames.
fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        title = escape(title),
    );
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    no_store(&mut response);
    response
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0}\
main{max-width:22rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:8px;\
box-shadow:0 1px 4px rgba(0,0,0,.15)}h1{font-size:1.3rem;margin-top:0}\
label{display:block;margin:.8rem 0 .2rem}input{width:100%;box-sizing:border-box;padding:.4rem}\
button{margin-top:1.2rem;padding:.5rem 1rem}.error{color:#b00020}";

fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn set_cookie(response: &mut Response, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The session cookie for `secret`. No Max-Age: the browser drops it when it closes,
/// and the server ends the session after `[auth] session_ttl_minutes` without use.
fn session_cookie(state: &AppState, secret: &str) -> String {
    let secure = if state.users.config().secure_cookie() {
        "; Secure"
    } else {
        ""
    };
    format!("{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

fn clear_session_cookie(state: &AppState) -> String {
    let secure = if state.users.config().secure_cookie() {
        "; Secure"
    } else {
        ""
    };
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// The form's CSRF value: the browser's current one if it has a well-formed one (so two
/// open login tabs both work), else a new one.
fn login_csrf_value(headers: &HeaderMap) -> String {
    match cookie(headers, LOGIN_CSRF_COOKIE) {
        Some(v) if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => v.to_owned(),
        _ => crate::users::random_hex(),
    }
}

/// Where to go after signing in: `next` if it is a path on this site, else `/`. Refuses
/// `//host` and `/\host` (other sites to browsers), schemes, and anything but visible
/// ASCII.
pub fn safe_next(next: &str) -> String {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 2048
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if local {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

use crate::html::esc as escape;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_be_a_path_on_this_site() {
        assert_eq!(safe_next("/api/calls?agent=1001"), "/api/calls?agent=1001");
        for bad in [
            "",
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/a b",
            "/\u{7f}",
            "/路径",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
