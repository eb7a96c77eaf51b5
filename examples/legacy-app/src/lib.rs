//! A small password-only web app, the kind Portvakt is put in front of: its own login
//! form (with a CSRF token), a session cookie on success, a 302 to its home page, an
//! error message on failure, a logout link, an admin area, a public health URL, and a
//! page that echoes the request it received so one can see what the gateway forwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

/// One account of the app's own user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub password: String,
    pub admin: bool,
    /// Sent back in `X-Account-Email` when the user signs in, as apps that expose
    /// the signed-in user's profile to a front proxy do.
    pub email: Option<String>,
}

/// Parses `name:password`, `name:password:admin`, or either with `:address` after
/// the role (empty for none): `bob:builder::bob@example.com`.
pub fn parse_account(spec: &str) -> Result<(String, Account), String> {
    let mut parts = spec.splitn(4, ':');
    let name = parts.next().unwrap_or_default();
    let password = parts
        .next()
        .ok_or_else(|| format!("`{spec}`: write name:password[:admin][:address]"))?;
    let admin = match parts.next() {
        None | Some("") => false,
        Some("admin") => true,
        Some(other) => {
            return Err(format!(
                "`{spec}`: unknown role `{other}`; the only role is admin"
            ))
        }
    };
    let email = parts.next().filter(|e| !e.is_empty()).map(str::to_owned);
    if name.is_empty() || password.is_empty() {
        return Err(format!("`{spec}`: the name and the password must not be empty"));
    }
    Ok((
        name.to_owned(),
        Account {
            password: password.to_owned(),
            admin,
            email,
        },
    ))
}

/// Reads accounts from a file: one `name:password[:admin][:address]` a line, `#` comments.
pub fn read_accounts(text: &str) -> Result<HashMap<String, Account>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(parse_account)
        .collect()
}

#[derive(Clone)]
struct AppState {
    accounts: Arc<HashMap<String, Account>>,
    /// Session id → user name.
    sessions: Arc<Mutex<HashMap<String, String>>>,
    /// The address this instance listens on, echoed by `/whoami`.
    served_by: Arc<str>,
}

pub fn router(accounts: HashMap<String, Account>, served_by: &str) -> Router {
    let state = AppState {
        accounts: Arc::new(accounts),
        sessions: Arc::default(),
        served_by: served_by.into(),
    };
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", get(logout))
        .route("/admin", get(admin))
        .route("/admin/", get(admin))
        .route("/admin/{*rest}", get(admin))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/whoami", get(whoami).post(whoami).put(whoami).delete(whoami))
        .with_state(state)
}

/// Serves the app on an already bound listener until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    accounts: HashMap<String, Account>,
) -> std::io::Result<()> {
    let served_by = listener.local_addr()?.to_string();
    let app = router(accounts, &served_by).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await
}

fn token() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl AppState {
    fn user(&self, headers: &HeaderMap) -> Option<String> {
        let id = cookie(headers, "sessionid")?;
        self.sessions.lock().ok()?.get(id).cloned()
    }
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Legacy Intranet</title></head>\
         <body style=\"font-family: sans-serif; max-width: 40rem; margin: 2rem auto\"><h1>{title}</h1>{body}</body></html>"
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.user(&headers) {
        Some(user) => page(
            "Legacy Intranet",
            &format!(
                "<p>Welcome, <strong>{}</strong>.</p><ul><li><a href=\"/admin/\">Admin area</a></li>\
                 <li><a href=\"/whoami\">What the app received</a></li><li><a href=\"/logout\">Log out</a></li></ul>",
                escape(&user)
            ),
        )
        .into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

/// Where to go after signing in: a same-site path, or home.
fn next_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => "/",
    }
}

fn login_page(csrf: &str, next: &str, error: Option<&str>) -> Html<String> {
    let error = error.map_or(String::new(), |e| {
        format!("<p role=\"alert\" style=\"color: #b00\">{e}</p>")
    });
    let next = escape(next);
    page(
        "Sign in",
        &format!(
            "{error}<form method=\"post\" action=\"/login\">\
             <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"next\" value=\"{next}\">\
             <p><label>Username <input name=\"username\" autocomplete=\"username\"></label></p>\
             <p><label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\"></label></p>\
             <p><button type=\"submit\">Sign in</button></p></form>"
        ),
    )
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// The login form, with a fresh CSRF token in a cookie and in the form (double submit).
async fn login_form(Query(query): Query<NextQuery>) -> Response {
    let csrf = token();
    (
        [(
            header::SET_COOKIE,
            format!("csrftoken={csrf}; Path=/; HttpOnly; SameSite=Lax"),
        )],
        login_page(&csrf, next_path(query.next.as_deref()), None),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

async fn login(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    if form.csrf_token.is_empty() || cookie(&headers, "csrftoken") != Some(form.csrf_token.as_str()) {
        return (
            StatusCode::FORBIDDEN,
            page("Forbidden", "<p>CSRF check failed. Reload the login page.</p>"),
        )
            .into_response();
    }
    // Like many apps, user names are not case-sensitive here: `ALICE` is alice.
    let username = form.username.trim().to_lowercase();
    let account = state
        .accounts
        .get(&username)
        .filter(|a| a.password == form.password);
    let Some(account) = account else {
        let csrf = token();
        return (
            [(
                header::SET_COOKIE,
                format!("csrftoken={csrf}; Path=/; HttpOnly; SameSite=Lax"),
            )],
            login_page(
                &csrf,
                next_path(form.next.as_deref()),
                Some("Invalid username or password."),
            ),
        )
            .into_response();
    };
    let session = token();
    if let Ok(mut sessions) = state.sessions.lock() {
        sessions.insert(session.clone(), username.clone());
    }
    // Like many frameworks, rotate the CSRF cookie beside setting the session.
    let mut response = Redirect::to(next_path(form.next.as_deref())).into_response();
    *response.status_mut() = StatusCode::FOUND;
    let headers = response.headers_mut();
    for value in [
        format!("sessionid={session}; Path=/; HttpOnly; SameSite=Lax"),
        format!("csrftoken={}; Path=/; HttpOnly; SameSite=Lax", token()),
    ] {
        if let Ok(v) = value.parse() {
            headers.append(header::SET_COOKIE, v);
        }
    }
    if let Some(address) = account.email.as_deref().and_then(|e| e.parse().ok()) {
        headers.insert("x-account-email", address);
    }
    response
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let (Some(id), Ok(mut sessions)) = (cookie(&headers, "sessionid"), state.sessions.lock()) {
        sessions.remove(id);
    }
    (
        [(header::SET_COOKIE, "sessionid=; Path=/; Max-Age=0".to_owned())],
        Redirect::to("/login"),
    )
        .into_response()
}

async fn admin(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(user) = state.user(&headers) else {
        return Redirect::to("/login").into_response();
    };
    if !state.accounts.get(&user).is_some_and(|a| a.admin) {
        return (
            StatusCode::FORBIDDEN,
            page("Forbidden", "<p>Administrators only.</p>"),
        )
            .into_response();
    }
    page(
        "Admin area",
        &format!("<p>Hello {}, you administer this intranet.</p>", escape(&user)),
    )
    .into_response()
}

/// Echoes the request as the app received it, as JSON.
async fn whoami(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut received: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    received.sort();
    let body = serde_json::json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": received,
        "served_by": &*state.served_by,
        // The connection this request came on: one gateway connection reused shows
        // the same peer for several requests.
        "peer": peer.to_string(),
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_parse_with_roles_and_comments() {
        let accounts = read_accounts("# users\nalice:wonderland:admin\n\nbob:builder\n").unwrap();
        assert!(accounts["alice"].admin);
        assert!(!accounts["bob"].admin);
        assert!(read_accounts("carol").is_err());
        assert!(read_accounts("dave:x:root").is_err());
    }
}
