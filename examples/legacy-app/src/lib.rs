//! A small password-only web app, the kind Portvakt is put in front of: its own login
//! form (with a CSRF token), a session cookie on success, a 302 to its home page, an
//! error message on failure, a logout link, an admin area, a public health URL, and a
//! page that echoes the request it received so one can see what the gateway forwards.
//!
//! Behind [`Quirks`], the ways real apps sign people in that a gateway must not be
//! walked around: a field read last-wins, multipart logins, one script serving every
//! page, credentials in the query of any GET, and a second login endpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
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

/// Sign-in habits of real apps, each off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quirks {
    /// A field given twice is read last-wins, as PHP and Django do (by default a
    /// repeated field is refused, as serde's form reader does).
    pub last_value_wins: bool,
    /// The login form is also accepted as `multipart/form-data`, as Django, PHP,
    /// Rails and Flask accept it.
    pub multipart: bool,
    /// One script serves every page, as in many PHP apps: `/index.php?page=admin`,
    /// the login form at `/index.php?do=login`, the logout at `?do=logout`.
    pub front_controller: bool,
    /// `?u=NAME&p=PASSWORD` on any GET signs in.
    pub query_login: bool,
    /// A second login endpoint, `POST /api/login` (JSON or a form), answered 200
    /// with a JSON body and the session cookie; and `/app`, a single-page app whose
    /// script signs in there with `fetch`, keeps the token from the body in
    /// `localStorage` and sends it as `Authorization: Bearer` to `/api/me`
    /// (`/app?keep=cookie`: the same app keeping nothing but the cookie the login
    /// sets; `/app?via=xhr`: signing in with XMLHttpRequest).
    pub api_login: bool,
    /// HTTP Basic, as admin consoles and appliances do: every page but `/healthz`
    /// asks for `Authorization: Basic` (401 with `WWW-Authenticate`); the first
    /// request that passes also gets a session cookie, which — as in many such
    /// apps — is then accepted whatever credentials come with it.
    pub basic: bool,
    /// A JSON API's login, `POST /api/session` with `{"credentials": {"username",
    /// "password"}}`, answered 200 whatever happens: the body alone says whether
    /// it worked (`session.token`, or `"session": null` and an error).
    pub session_api: bool,
}

impl Quirks {
    /// From the names `--quirk` takes.
    pub fn parse(names: &[String]) -> Result<Quirks, String> {
        let mut quirks = Quirks::default();
        for name in names {
            let flag = match name.as_str() {
                "last-value-wins" => &mut quirks.last_value_wins,
                "multipart" => &mut quirks.multipart,
                "front-controller" => &mut quirks.front_controller,
                "query-login" => &mut quirks.query_login,
                "api-login" => &mut quirks.api_login,
                "basic" => &mut quirks.basic,
                "session-api" => &mut quirks.session_api,
                other => {
                    return Err(format!(
                        "unknown quirk `{other}`: last-value-wins, multipart, front-controller, query-login, api-login, basic, session-api"
                    ))
                }
            };
            *flag = true;
        }
        Ok(quirks)
    }
}

#[derive(Clone)]
struct AppState {
    quirks: Quirks,
    accounts: Arc<HashMap<String, Account>>,
    /// Session id → user name.
    sessions: Arc<Mutex<HashMap<String, String>>>,
    /// The address this instance listens on, echoed by `/whoami`.
    served_by: Arc<str>,
    /// Requests for pages other than `/` and `/healthz` the app has handled, told
    /// by `/healthz` (in `x-requests-seen`): tests see what reached the app.
    seen: Arc<std::sync::atomic::AtomicU64>,
}

pub fn router(accounts: HashMap<String, Account>, served_by: &str, quirks: Quirks) -> Router {
    let state = AppState {
        quirks,
        accounts: Arc::new(accounts),
        sessions: Arc::default(),
        served_by: served_by.into(),
        seen: Arc::default(),
    };
    let mut router = Router::new();
    if quirks.api_login {
        router = router
            .route("/api/login", post(api_login))
            .route("/app", get(single_page_app));
    }
    if quirks.session_api {
        router = router.route("/api/session", post(session_login));
    }
    if quirks.front_controller {
        router = router.route("/index.php", get(front_controller).post(front_controller));
    }
    router
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", get(logout))
        .route("/admin", get(admin))
        .route("/admin/", get(admin))
        .route("/admin/{*rest}", get(admin))
        .route("/healthz", get(healthz))
        .route("/download", get(download))
        .route("/api/me", get(me))
        .route("/whoami", get(whoami).post(whoami).put(whoami).delete(whoami))
        .layer(axum::middleware::from_fn_with_state(state.clone(), query_login))
        .layer(axum::middleware::from_fn_with_state(state.clone(), basic_auth))
        .with_state(state)
}

/// Serves the app on an already bound listener until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    accounts: HashMap<String, Account>,
    quirks: Quirks,
) -> std::io::Result<()> {
    let served_by = listener.local_addr()?.to_string();
    let app = router(accounts, &served_by, quirks).into_make_service_with_connect_info::<SocketAddr>();
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
    /// The session's user, by its cookie or its token (`Authorization: Bearer`).
    fn user(&self, headers: &HeaderMap) -> Option<String> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let id = bearer.or_else(|| cookie(headers, "sessionid"))?;
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

fn login_page(action: &str, csrf: &str, next: &str, error: Option<&str>) -> Html<String> {
    let error = error.map_or(String::new(), |e| {
        format!("<p role=\"alert\" style=\"color: #b00\">{e}</p>")
    });
    let next = escape(next);
    page(
        "Sign in",
        &format!(
            "{error}<form method=\"post\" action=\"{action}\">\
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
    form_response("/login", query.next.as_deref(), None)
}

fn form_response(action: &str, next: Option<&str>, error: Option<&str>) -> Response {
    let csrf = token();
    (
        [(
            header::SET_COOKIE,
            format!("csrftoken={csrf}; Path=/; HttpOnly; SameSite=Lax"),
        )],
        login_page(action, &csrf, next_path(next), error),
    )
        .into_response()
}

/// A request body's fields, read by content type as the app's framework would.
struct Fields(Vec<(String, String)>);

impl Fields {
    async fn read(quirks: Quirks, headers: &HeaderMap, body: Bytes) -> Result<Fields, Response> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let refuse = |why: &str| (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
        let pairs: Vec<(String, String)> = if content_type.starts_with("application/x-www-form-urlencoded") {
            url::form_urlencoded::parse(&body).into_owned().collect()
        } else if content_type.starts_with("application/json") {
            let value: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&body).map_err(|_| refuse("not a JSON object"))?;
            value
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
                .collect()
        } else if quirks.multipart && content_type.starts_with("multipart/form-data") {
            let boundary = multer::parse_boundary(content_type).map_err(|_| refuse("no boundary"))?;
            let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
            let mut form = multer::Multipart::new(stream, boundary);
            let mut pairs = Vec::new();
            while let Some(field) = form.next_field().await.map_err(|_| refuse("bad multipart"))? {
                let name = field.name().unwrap_or_default().to_owned();
                let text = field.text().await.map_err(|_| refuse("bad multipart"))?;
                pairs.push((name, text));
            }
            pairs
        } else {
            return Err(refuse("unsupported content type"));
        };
        let mut fields = Fields(Vec::new());
        for (name, value) in pairs {
            match fields.0.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) if quirks.last_value_wins => slot.1 = value,
                Some(_) => return Err(refuse("a field is given twice")),
                None => fields.0.push((name, value)),
            }
        }
        Ok(fields)
    }

    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

impl AppState {
    /// The account these credentials open, by its (case-folded) name.
    fn check(&self, username: &str, password: &str) -> Option<(String, &Account)> {
        let name = username.trim().to_lowercase();
        let account = self.accounts.get(&name).filter(|a| a.password == password)?;
        Some((name, account))
    }

    /// A new app session for `user`; its Set-Cookie value.
    fn open_session(&self, user: &str) -> String {
        let session = token();
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.insert(session.clone(), user.to_owned());
        }
        format!("sessionid={session}; Path=/; HttpOnly; SameSite=Lax")
    }
}

async fn login(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    sign_in(&state, &headers, body, "/login").await
}

/// The login form's POST: a 302 with a short body (as many frameworks send), the
/// session cookie and a rotated CSRF cookie; the form again with an error otherwise.
async fn sign_in(state: &AppState, headers: &HeaderMap, body: Bytes, action: &str) -> Response {
    let form = match Fields::read(state.quirks, headers, body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let csrf = form.get("csrf_token");
    if csrf.is_empty() || cookie(headers, "csrftoken") != Some(csrf) {
        return (
            StatusCode::FORBIDDEN,
            page("Forbidden", "<p>CSRF check failed. Reload the login page.</p>"),
        )
            .into_response();
    }
    let next = Some(form.get("next")).filter(|n| !n.is_empty());
    // Like many apps, user names are not case-sensitive here: `ALICE` is alice.
    let Some((username, account)) = state.check(form.get("username"), form.get("password")) else {
        return form_response(action, next, Some("Invalid username or password."));
    };
    let target = next_path(next);
    let mut response = (
        StatusCode::FOUND,
        [(header::LOCATION, target.to_owned())],
        Html(format!("<a href=\"{}\">Signed in; continue</a>", escape(target))),
    )
        .into_response();
    let headers = response.headers_mut();
    // Like many frameworks, rotate the CSRF cookie beside setting the session.
    for value in [
        state.open_session(&username),
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

/// A second way in, as API clients and single-page apps use: `{"username", "password"}`
/// (or a form) answered 200 with JSON and the session cookie.
async fn api_login(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match Fields::read(state.quirks, &headers, body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    match state.check(form.get("username"), form.get("password")) {
        Some((user, _)) => {
            // The session both ways a single-page app keeps one: a cookie, and a
            // token in the body for its script to keep.
            let cookie = state.open_session(&user);
            let token = cookie_value(&cookie);
            let mut answer = json(
                StatusCode::OK,
                serde_json::json!({ "ok": true, "user": user, "token": token }),
            );
            if let Ok(cookie) = cookie.parse() {
                answer.headers_mut().append(header::SET_COOKIE, cookie);
            }
            answer
        }
        None => json(StatusCode::UNAUTHORIZED, serde_json::json!({ "ok": false })),
    }
}

/// A single-page app: a dialog whose script signs in with `fetch`, keeps the token
/// the answer carries and shows who `/api/me` says it belongs to.
async fn single_page_app() -> Html<&'static str> {
    Html(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Reports · Legacy Intranet</title></head>
<body style="font-family: sans-serif; max-width: 40rem; margin: 2rem auto">
<h1>Reports</h1>
<form id="sign-in">
  <p><label>User name <input name="username" autocomplete="username"></label></p>
  <p><label>Password <input name="password" type="password" autocomplete="current-password"></label></p>
  <p><button type="submit">Sign in</button></p>
</form>
<p id="status">Not signed in.</p>
<script>
const status = document.getElementById("status");
const params = new URLSearchParams(location.search);
const byCookie = params.get("keep") === "cookie";
// `?via=xhr`: the same app on XMLHttpRequest, as older single-page apps are.
function post(url, body) {
  if (params.get("via") !== "xhr") {
    return fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body });
  }
  return new Promise((resolve) => {
    const call = new XMLHttpRequest();
    call.open("POST", url);
    call.setRequestHeader("Content-Type", "application/json");
    call.onload = () => resolve({
      ok: call.status >= 200 && call.status < 300,
      status: call.status,
      json: async () => JSON.parse(call.responseText),
    });
    call.send(body);
  });
}
async function whoAmI() {
  const headers = byCookie ? {} : { Authorization: "Bearer " + localStorage.getItem("token") };
  const answer = await fetch("/api/me", { headers });
  status.textContent = answer.ok ? "Signed in as " + (await answer.json()).user + "." : "Not signed in.";
}
document.getElementById("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const answer = await post("/api/login", JSON.stringify({ username: form.get("username"), password: form.get("password") }));
  if (!answer.ok) { status.textContent = "Sign-in failed (" + answer.status + ")."; return; }
  if (!byCookie) localStorage.setItem("token", (await answer.json()).token);
  await whoAmI();
});
if (byCookie || localStorage.getItem("token")) whoAmI();
</script>
</body></html>"#,
    )
}

/// The `session-api` quirk's login: 200 for right and wrong passwords alike.
async fn session_login(State(state): State<AppState>, body: Bytes) -> Response {
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let given = |name: &str| {
        request["credentials"][name]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    match state.check(&given("username"), &given("password")) {
        Some((user, _)) => {
            let cookie = state.open_session(&user);
            let token = cookie_value(&cookie);
            let mut answer = json(
                StatusCode::OK,
                serde_json::json!({ "session": { "user": user, "token": token } }),
            );
            if let Ok(cookie) = cookie.parse() {
                answer.headers_mut().append(header::SET_COOKIE, cookie);
            }
            answer
        }
        None => json(
            StatusCode::OK,
            serde_json::json!({ "session": null, "error": "Invalid credentials" }),
        ),
    }
}

/// The value a Set-Cookie line sets.
fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|c| c.split_once('='))
        .map_or("", |(_, v)| v)
        .to_owned()
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// HTTP Basic on every page but `/healthz` (the `basic` quirk), read as a typical
/// app reads it: base64, the name before the first `:`. A request it accepts is
/// handled as its user (with a session cookie set on the way, if it had none).
async fn basic_auth(
    State(state): State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !matches!(request.uri().path(), "/" | "/healthz") {
        state.seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    if !state.quirks.basic || request.uri().path() == "/healthz" || state.user(request.headers()).is_some() {
        return next.run(request).await;
    }
    let credentials = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| data_encoding::BASE64.decode(b64.trim().as_bytes()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let accepted = credentials.as_deref().and_then(|c| {
        let (user, password) = c.split_once(':')?;
        state.check(user, password)
    });
    let Some((user, _)) = accepted else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"Legacy console\"")],
            "401 Unauthorized\n",
        )
            .into_response();
    };
    let set_cookie = state.open_session(&user);
    // Handled as the user from here on, as the session cookie would make it.
    if let Some(id) = set_cookie.split(';').next().and_then(|c| c.parse().ok()) {
        request.headers_mut().insert(header::COOKIE, id);
    }
    let mut response = next.run(request).await;
    if let Ok(value) = set_cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn healthz(State(state): State<AppState>) -> Response {
    let seen = state.seen.load(std::sync::atomic::Ordering::Relaxed);
    ([("x-requests-seen", seen.to_string())], "ok\n").into_response()
}

/// Signs in whoever `?u=…&p=…` names, on any GET, as some PHP apps do.
async fn query_login(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let opened = state
        .quirks
        .query_login
        .then(|| {
            let query = request.uri().query()?;
            let fields: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            let (user, _) = state.check(fields.get("u")?, fields.get("p")?)?;
            Some(state.open_session(&user))
        })
        .flatten();
    let mut response = next.run(request).await;
    if let Some(cookie) = opened.and_then(|c| c.parse().ok()) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize)]
struct FrontQuery {
    #[serde(rename = "do")]
    action: Option<String>,
    page: Option<String>,
}

/// One script for every page: `?do=login` and `?do=logout`, `?page=admin`, else home.
async fn front_controller(
    State(state): State<AppState>,
    Query(query): Query<FrontQuery>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const LOGIN: &str = "/index.php?do=login";
    match (query.action.as_deref(), query.page.as_deref(), method) {
        (Some("login"), _, Method::POST) => {
            // As PHP's `header('Location: …'); exit;`: the redirect has no body.
            let mut answer = sign_in(&state, &headers, body, LOGIN).await;
            if answer.status() == StatusCode::FOUND {
                *answer.body_mut() = axum::body::Body::empty();
                answer.headers_mut().remove(header::CONTENT_TYPE);
            }
            answer
        }
        (Some("login"), _, _) => form_response(LOGIN, None, None),
        (Some("logout"), _, _) => logout(State(state), headers).await,
        (_, Some("admin"), _) => admin(State(state), headers).await,
        _ => home(State(state), headers).await,
    }
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

/// Who the session cookie signs in, as JSON (what a gateway's `login.confirm` asks).
async fn me(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.user(&headers) {
        Some(user) => json(StatusCode::OK, serde_json::json!({ "user": user })),
        None => json(StatusCode::UNAUTHORIZED, serde_json::json!({})),
    }
}

/// A file whose name an old app writes in Latin-1, as many do (`résumé.txt`, with
/// the bytes 0xE9): not UTF-8, yet a valid header value.
async fn download() -> impl IntoResponse {
    let disposition = HeaderValue::from_bytes(b"attachment; filename=\"r\xe9sum\xe9.txt\"")
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    ([(header::CONTENT_DISPOSITION, disposition)], "a file\n")
}

/// Echoes the request as the app received it, as JSON.
async fn whoami(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
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
        "body": String::from_utf8_lossy(&body),
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
