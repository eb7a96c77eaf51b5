//! Apps that sign people in with HTTP Basic (`login: basic`). The app checks the
//! password, as it always did — but never on the browser's own request: a request
//! that no gateway session of its user covers does not reach the app at all. The
//! gateway charges the attempt, then asks the app with a GET of its own (`/`, with
//! the credentials alone: no cookie, no body), and answers itself: the app's 401
//! (wrong password, counted), or the second factor (right password), after which
//! the browser comes back to the URL it asked for.

use std::net::IpAddr;
use std::time::SystemTime;

use http::{HeaderValue, StatusCode};

use super::confirm;
use super::gateway::Gateway;
use crate::auth::challenge::Purpose;
use crate::auth::unusual::Gate;
use crate::auth::{cookies, Attempt, AuditKind};
use crate::config::{App, Config};
use crate::factors::SignInMethod;
use crate::policy::Authentication;
use crate::portal::answer::{Answer, Label};
use crate::portal::challenge;
use crate::portal::route::Route;

/// A request of a Basic app that no gateway session of its user covers.
pub struct BasicSignIn<'r> {
    /// Who the credentials name (canonical), or nobody (no credentials).
    pub user: Option<String>,
    /// The `Authorization` value as sent, to ask the app with.
    pub authorization: Option<&'r HeaderValue>,
    /// Where the browser goes back to after the second factor.
    pub return_to: String,
    /// A browser navigating (only a navigation is sent to the second factor: a
    /// background request gets a bare 401, never a new challenge over the one
    /// the user is passing).
    pub navigating: bool,
    pub host: &'r str,
    pub client: IpAddr,
    pub secure: bool,
    pub now: SystemTime,
    /// The cookie naming this browser (for unusual sign-ins), if it sent one.
    pub browser_cookie: Option<&'r str>,
}

impl Gateway {
    /// The gateway's answer to a Basic request that no session covers.
    pub(super) async fn basic_sign_in(&self, config: &Config, app: &App, s: BasicSignIn<'_>) -> Answer {
        let (Some(user), Some(authorization)) = (s.user.clone(), s.authorization) else {
            // No credentials: the app's own prompt (its realm), asked without them.
            return self.prompt(app, s.host).await;
        };
        // Charged before the app is asked: no burst of guesses gets more checked
        // than the limit allows, and a locked account is not asked at all.
        let charged = match self.auth.attempt(&config.lockout, &user, s.client, s.now).await {
            Ok(Attempt::Charged(charged)) => charged,
            Ok(Attempt::Locked(_)) => {
                self.auth
                    .audit(AuditKind::LockedOut, &user, &app.name, s.client, "refused", s.now)
                    .await;
                return Answer::redirect(Route::Locked.path(), Label::Locked);
            }
            Err(e) => {
                tracing::error!(error = %e, "could not count a Basic sign-in");
                return Answer::redirect(Route::Unavailable.path(), Label::Error);
            }
        };
        let authorization = authorization.to_str().unwrap_or_default();
        match self.ask_app(app, s.host, &user, authorization).await {
            Verdict::Accepted => {}
            Verdict::Refused(header) => {
                // A wrong password: the app's prompt again, and the attempt stays counted.
                self.auth
                    .audit(
                        AuditKind::LoginFailed,
                        &user,
                        &app.name,
                        s.client,
                        "refused",
                        s.now,
                    )
                    .await;
                return prompt_like(app, Some(&header), Label::LoginFailed);
            }
            Verdict::Unchecked => {
                if let Err(e) = self.auth.refund(&config.lockout, &user, s.client, charged).await {
                    tracing::error!(error = %e, "could not take back an unchecked attempt");
                }
                return Answer::redirect(Route::Unavailable.path(), Label::Error);
            }
        }
        if let Err(e) = self.auth.refund(&config.lockout, &user, s.client, charged).await {
            tracing::error!(error = %e, "could not take back a right password's charge");
        }
        self.auth
            .audit(AuditKind::LoginOk, &user, &app.name, s.client, "ok", s.now)
            .await;
        if !s.navigating {
            return bare_401(Label::SecondFactor);
        }
        let auth = Authentication {
            user: user.clone(),
            groups: config.users.groups(&user),
            second_factor_at: None,
            mfa_opted_in: self.auth.opted_in(&user).await,
            signed_in_at: s.now,
        };
        if !app.policy.second_factor_at_sign_in(&auth) {
            return self.basic_password_session(config, app, &user, s).await;
        }
        tracing::info!(user = %user, app = %app.name, "Basic sign-in sent to the second factor");
        let (answer, _) = challenge::begin(
            &self.auth,
            config,
            app,
            &user,
            Purpose::Return(s.return_to),
            s.client,
            s.secure,
            s.now,
        )
        .await;
        answer
    }

    /// A Basic sign-in that asks no second factor: a password-level session,
    /// unless it looks unusual, which is confirmed with an e-mailed code first.
    async fn basic_password_session(
        &self,
        config: &Config,
        app: &App,
        user: &str,
        s: BasicSignIn<'_>,
    ) -> Answer {
        let unavailable = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "could not start a session for a Basic sign-in");
            Answer::redirect(Route::Unavailable.path(), Label::Error)
        };
        let signals = match self
            .auth
            .sign_in_gate(config, user, s.browser_cookie, s.client, s.now)
            .await
        {
            Ok(Gate::Usual(signals)) => signals,
            Ok(Gate::Unusual(signals)) => {
                let purpose = Purpose::Return(s.return_to);
                let begun = challenge::begin_unusual(
                    &self.auth, config, app, user, purpose, signals, s.secure, s.now,
                );
                return begun.await.0;
            }
            Err(e) => return unavailable(&e),
        };
        let browser = match self
            .auth
            .remember_sign_in(config, user, signals.as_ref(), s.secure, s.now)
            .await
        {
            Ok(browser) => browser,
            Err(e) => return unavailable(&e),
        };
        match self
            .auth
            .sessions
            .start(user, &app.name, SignInMethod::Password, s.now, s.secure)
            .await
        {
            Ok(issued) => {
                let answer = Answer::redirect(&s.return_to, Label::LoginPasswordOnly)
                    .with_cookie(&cookies::set_session(&issued.cookie_value, s.secure));
                match browser {
                    Some(cookie) => answer.with_cookie(&cookie),
                    None => answer,
                }
            }
            Err(e) => unavailable(&e),
        }
    }

    /// What the app says of `user`'s credentials (an `Authorization` value), asked
    /// with a GET of its check page carrying them alone.
    pub(super) async fn ask_app(&self, app: &App, host: &str, user: &str, authorization: &str) -> Verdict {
        // The check means something only where its page asks for credentials: an
        // app that shows it to anyone would call every password right.
        let check = checked_at(app);
        let guarded = confirm::ask(self.connector(), app, host, check, &[], false).await;
        if !guarded
            .as_ref()
            .is_ok_and(|(h, _)| h.status == StatusCode::UNAUTHORIZED)
        {
            tracing::error!(app = %app.name, "the app's check page does not ask for Basic credentials, so they cannot be checked there");
            return Verdict::Unchecked;
        }
        let sent = [(http::header::AUTHORIZATION, authorization)];
        let header = match confirm::ask(self.connector(), app, host, check, &sent, false).await {
            Ok((header, _)) => header,
            Err(e) => {
                // Not checked: not a failure either.
                tracing::warn!(app = %app.name, error = %e, "the app did not answer a Basic check");
                return Verdict::Unchecked;
            }
        };
        if header.status == StatusCode::UNAUTHORIZED {
            return Verdict::Refused(Box::new(header));
        }
        // Any other answer means "right" only if a password that is surely wrong
        // gets 401 from the app: one that answers wrong passwords with a redirect
        // or a 403 would otherwise call every password right.
        if !self.tells_wrong_passwords(app, host, user).await {
            tracing::error!(app = %app.name, "the app's check page does not answer a wrong password with 401, so credentials cannot be checked there");
            return Verdict::Unchecked;
        }
        Verdict::Accepted
    }

    /// Whether the app answers `user` with a password that is surely wrong (random)
    /// with 401 at `/`.
    async fn tells_wrong_passwords(&self, app: &App, host: &str, user: &str) -> bool {
        let wrong = crate::auth::challenge::random_token();
        let credentials = format!(
            "Basic {}",
            data_encoding::BASE64.encode(format!("{user}:{wrong}").as_bytes())
        );
        let sent = [(http::header::AUTHORIZATION, credentials.as_str())];
        confirm::ask(self.connector(), app, host, checked_at(app), &sent, false)
            .await
            .is_ok_and(|(h, _)| h.status == StatusCode::UNAUTHORIZED)
    }

    /// The app's prompt for a request without credentials, or the gateway's own
    /// when the app does not answer with one.
    async fn prompt(&self, app: &App, host: &str) -> Answer {
        match confirm::ask(self.connector(), app, host, checked_at(app), &[], false).await {
            Ok((header, _)) if header.status == StatusCode::UNAUTHORIZED => {
                prompt_like(app, Some(&header), Label::SignIn)
            }
            Ok(_) | Err(_) => prompt_like(app, None, Label::SignIn),
        }
    }
}

/// The portal asks through this whether a user's own password at a Basic app is
/// right (when it seals one under a new app password).
#[async_trait::async_trait]
impl crate::portal::BasicCheck for Gateway {
    async fn accepts(&self, app: &App, host: &str, user: &str, password: &str) -> Option<bool> {
        let credentials = format!(
            "Basic {}",
            data_encoding::BASE64.encode(format!("{user}:{password}").as_bytes())
        );
        match self.ask_app(app, host, user, &credentials).await {
            Verdict::Accepted => Some(true),
            Verdict::Refused(_) => Some(false),
            Verdict::Unchecked => None,
        }
    }
}

/// What a Basic app says of credentials.
pub(super) enum Verdict {
    Accepted,
    /// A wrong password: the app's 401 (its prompt).
    Refused(Box<pingora::http::ResponseHeader>),
    /// The app cannot tell, or did not answer.
    Unchecked,
}

/// Where the gateway asks the app whether credentials are right: `login.basic.check`,
/// by default the root — a page a Basic app guards and that changes nothing.
fn checked_at(app: &App) -> &str {
    app.basic_login().map_or("/", |b| b.check.as_str())
}

/// A 401 carrying the app's `WWW-Authenticate` (its realm), or the gateway's own
/// when the app gave none; nothing else of the app's answer.
pub(super) fn prompt_like(app: &App, header: Option<&pingora::http::ResponseHeader>, label: Label) -> Answer {
    let mut answer = bare_401(label);
    let given: Vec<HeaderValue> = header
        .map(|h| {
            h.headers
                .get_all(http::header::WWW_AUTHENTICATE)
                .iter()
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if given.is_empty() {
        let realm = app.name.replace(['"', '\\'], "");
        if let Ok(value) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\", charset=\"UTF-8\"")) {
            answer.headers.push((http::header::WWW_AUTHENTICATE, value));
        }
    }
    for value in given {
        answer.headers.push((http::header::WWW_AUTHENTICATE, value));
    }
    answer
}

fn bare_401(label: Label) -> Answer {
    Answer {
        status: StatusCode::UNAUTHORIZED,
        headers: vec![(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        body: Vec::new(),
        label,
        own_page: false,
        framable: false,
    }
}
