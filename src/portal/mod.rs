//! The gateway's own pages under `/.portvakt/` on every app host: a typed router
//! (`route`), a transport-free request and answer, the handlers, and their views.
//! The proxy reads a request into a [`Request`] and writes the [`Answer`] back; tests
//! do the same in process, without Pingora.

pub mod account;
pub mod admin;
pub mod answer;
pub mod challenge;
pub mod cross_site;
pub mod forms;
pub mod gateway_login;
pub mod return_path;
pub mod route;
pub mod views;

use std::net::IpAddr;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::auth::{cookies, AuditKind, Services};
use crate::config::model::SignIn;
use crate::config::{App, Config, Lang};
use crate::store::SessionRecord;
use answer::{Answer, Label};
use route::Route;
use views::ErrorKind;

/// The largest form body a gateway page reads; a longer one is refused.
pub const FORM_LIMIT: usize = 8 * 1024;

/// A request to a gateway page, as the transport read it.
/// Asks an HTTP Basic app whether a user's own password there is right (the
/// proxy does, with a request of its own): `None` when the app cannot tell.
#[async_trait::async_trait]
pub trait BasicCheck: Send + Sync {
    async fn accepts(&self, app: &App, host: &str, user: &str, password: &str) -> Option<bool>;
}

pub struct Request<'a> {
    pub config: &'a Config,
    /// Checks a user's own password at a Basic app (for an app password).
    pub basic_check: &'a dyn BasicCheck,
    /// The app whose host the request came to.
    pub app: &'a App,
    pub route: Route,
    pub method: Method,
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
    /// The body of a POST, up to [`FORM_LIMIT`]; `None` when it was longer or could
    /// not be read.
    pub body: Option<Vec<u8>>,
    /// The request's `Host` as sent (for the same-origin check).
    pub host: &'a str,
    /// HTTPS, at the listener or at a trusted proxy in front.
    pub secure: bool,
    pub client: IpAddr,
    pub now: SystemTime,
    pub lang: Lang,
    /// Ties an error page to its log line.
    pub reference: &'a str,
    /// The live session the request's cookie names, if any.
    pub session: Option<&'a SessionRecord>,
    /// The session cookie's value as sent (ended at sign-out and on a step-up).
    pub session_cookie: Option<&'a str>,
    /// The store could not say whether the cookie names a session: pages that
    /// need one answer 503 rather than "sign in".
    pub session_unknown: bool,
}

impl Request<'_> {
    pub fn is_post(&self) -> bool {
        self.method == Method::POST
    }

    /// Asked for by the overlay's frame on a page of the app (which the browser
    /// says with `Sec-Fetch-Dest`, a header no page can set) of an app that has
    /// the overlay.
    pub fn in_overlay(&self) -> bool {
        self.app.app_form().is_some_and(|login| login.overlay)
            && self
                .headers
                .get("sec-fetch-dest")
                .is_some_and(|dest| dest.as_bytes() == b"iframe")
    }

    /// The first value of a query parameter.
    pub fn query_value(&self, name: &str) -> Option<String> {
        self.query
            .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name))
            .map(|(_, v)| v.into_owned())
    }

    /// The value of a cookie the browser sent.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        cookies::find(self.headers, name)
    }

    /// An error page for this request.
    pub fn error(&self, status: StatusCode, kind: ErrorKind, label: Label) -> Answer {
        Answer::error(status, kind, self.lang, self.reference, label)
    }

    /// 503: the store or another part failed (logged by the caller).
    pub fn unavailable(&self) -> Answer {
        self.error(StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Internal, Label::Error)
    }

    /// 403 for a form without its token (or too large to read).
    pub fn refused_form(&self) -> Answer {
        self.error(StatusCode::FORBIDDEN, ErrorKind::BadRequest, Label::BadRequest)
    }

    fn not_found(&self) -> Answer {
        not_found(self.lang, self.reference)
    }
}

/// Answers a request to a gateway page; `None` as the route is a path under
/// `/.portvakt/` that names no page.
pub async fn serve(services: &Services, req: &Request<'_>) -> Answer {
    let mut answer = page(services, req).await;
    // Only the pages a challenge goes through may be framed, and only by the
    // overlay on the app's own origin.
    answer.framable = matches!(req.route, Route::Challenge(_) | Route::SignedIn) && req.in_overlay();
    answer
}

async fn page(services: &Services, req: &Request<'_>) -> Answer {
    // Every form here changes state for the signed-in user or a challenge: a POST
    // that another site made the browser send is refused, whatever token it carries.
    // Signing out changes state on any method: another site cannot do it either.
    let changes_state = req.is_post() || req.route == Route::Logout;
    if changes_state && cross_site::is_cross_site(req.headers, req.secure, req.host) {
        tracing::warn!(
            page = req.route.path(),
            "a cross-site POST to a gateway form; refused"
        );
        return req.error(StatusCode::FORBIDDEN, ErrorKind::Denied, Label::CrossSite);
    }
    let t = views::texts(req.lang);
    let sign_in = req.app.sign_in_page().unwrap_or("/");
    match req.route {
        Route::Health => fixed(
            StatusCode::OK,
            "application/json",
            b"{\"status\":\"ok\"}\n".to_vec(),
        ),
        Route::Stylesheet => {
            let css = [views::STYLESHEET, &req.config.pages.brand_css].concat();
            fixed(StatusCode::OK, "text/css; charset=utf-8", css.into_bytes())
        }
        Route::OverlayScript => fixed(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            views::OVERLAY_SCRIPT.as_bytes().to_vec(),
        ),
        Route::KeyScript => fixed(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            views::KEY_SCRIPT.as_bytes().to_vec(),
        ),
        Route::SignedIn => {
            let page = views::message(
                StatusCode::OK,
                req.lang,
                t.signed_in_title,
                t.signed_in_text,
                None,
            );
            Answer::page(page, Label::GatewayPage)
        }
        Route::Logo => match &req.config.pages.logo {
            Some((bytes, content_type)) => fixed(StatusCode::OK, content_type, bytes.to_vec()),
            None => req.not_found(),
        },
        Route::Jwks => fixed(
            StatusCode::OK,
            "application/json",
            services.signer.jwks().into_bytes(),
        ),
        Route::Logout => {
            // Ended in the store, or the user is not told so: a session that
            // outlives "you are signed out" is one a stolen cookie keeps using.
            if let Some(cookie) = req.session_cookie {
                if let Err(e) = services.sessions.end(cookie, req.secure).await {
                    tracing::error!(error = %e, "could not end a session at sign-out");
                    return req.unavailable();
                }
            }
            if let Some(session) = req.session {
                services
                    .audit(
                        AuditKind::SignedOut,
                        &session.user,
                        &req.app.name,
                        req.client,
                        "ok",
                        req.now,
                    )
                    .await;
            }
            let page = views::message(
                StatusCode::OK,
                req.lang,
                t.signed_out_title,
                t.signed_out_text,
                Some((sign_in, t.sign_in_again)),
            );
            Answer::page(page, Label::Logout).with_cookie(&cookies::clear_session(req.secure))
        }
        Route::Unavailable => req.unavailable(),
        Route::Locked => {
            let page = views::message(
                StatusCode::TOO_MANY_REQUESTS,
                req.lang,
                t.login_title,
                t.locked,
                None,
            );
            Answer::page(page, Label::Locked)
        }
        Route::SignInRefused => {
            let page = views::message(
                StatusCode::BAD_REQUEST,
                req.lang,
                t.unreadable_title,
                t.unreadable_text,
                Some((sign_in, t.sign_in_again)),
            );
            Answer::page(page, Label::LoginUnreadable)
        }
        Route::EnrolmentClosed => {
            let page = views::message(
                StatusCode::FORBIDDEN,
                req.lang,
                t.enrol_closed_title,
                t.enrol_closed_text,
                None,
            );
            Answer::page(page, Label::EnrolmentClosed)
        }
        Route::Login if matches!(req.app.sign_in, Some(SignIn::Gateway)) => {
            gateway_login::serve(services, req).await
        }
        Route::Login => req.not_found(),
        Route::Challenge(page) => challenge::serve(services, req, page).await,
        Route::Account(page) => account::serve(services, req, page).await,
        Route::Admin(page) => admin::serve(services, req, page).await,
    }
}

/// The page for a path under `/.portvakt/` that names no page.
pub fn not_found(lang: Lang, reference: &str) -> Answer {
    Answer::error(
        StatusCode::NOT_FOUND,
        ErrorKind::NotFound,
        lang,
        reference,
        Label::NotFound,
    )
}

/// A fixed resource of the gateway's (health, stylesheet, logo, keys).
fn fixed(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Answer {
    Answer {
        status,
        headers: vec![(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
        label: Label::GatewayPage,
        own_page: true,
        framable: false,
    }
}

#[cfg(test)]
mod tests;
