//! The pages every app host has: health, assets, keys, sign-out, the notices the
//! proxy sends browsers to, and the refusals every form shares.

use std::time::Duration;

use http::StatusCode;

use super::*;
use crate::portal::answer::Label;
use crate::portal::route::{AccountPage, AdminPage, ChallengePage};
use crate::portal::views::texts;

#[tokio::test]
async fn health_stylesheet_and_keys_are_served() {
    let f = Fixture::with("pages: { colour: \"#a01010\" }\n", "");
    let health = f.get(Route::Health).send().await;
    assert_eq!(
        (health.status, health.text().as_str()),
        (StatusCode::OK, "{\"status\":\"ok\"}\n")
    );

    let css = f.get(Route::Stylesheet).send().await;
    assert_eq!(
        css.header(&http::header::CONTENT_TYPE),
        Some("text/css; charset=utf-8")
    );
    assert!(css.text().starts_with(crate::portal::views::STYLESHEET));
    assert!(
        css.text().contains("#a01010"),
        "the configured colour comes after it"
    );

    let jwks: serde_json::Value = serde_json::from_slice(&f.get(Route::Jwks).send().await.body).unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");

    let logo = f.get(Route::Logo).send().await;
    assert_eq!(
        (logo.status, logo.label),
        (StatusCode::NOT_FOUND, Label::NotFound)
    );
}

#[tokio::test]
async fn the_notices_say_what_happened_with_the_right_status() {
    let f = Fixture::new();
    let t = texts(Lang::En);
    let cases = [
        (
            Route::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            Label::Error,
            "test",
        ),
        (
            Route::Locked,
            StatusCode::TOO_MANY_REQUESTS,
            Label::Locked,
            t.locked,
        ),
        (
            Route::SignInRefused,
            StatusCode::BAD_REQUEST,
            Label::LoginUnreadable,
            t.unreadable_title,
        ),
        (
            Route::EnrolmentClosed,
            StatusCode::FORBIDDEN,
            Label::EnrolmentClosed,
            t.enrol_closed_title,
        ),
        // An app with a login of its own has no gateway login page.
        (Route::Login, StatusCode::NOT_FOUND, Label::NotFound, "test"),
    ];
    for (route, status, label, text) in cases {
        let answer = f.get(route).send().await;
        assert_eq!((answer.status, answer.label), (status, label), "{route:?}");
        assert!(answer.text().contains(text), "{route:?}: {}", answer.text());
    }
}

#[tokio::test]
async fn signing_out_ends_the_session_and_clears_its_cookie() {
    let f = Fixture::new();
    let session = f.signed_in("alice", Duration::ZERO).await;
    let answer = f.get(Route::Logout).signed_in(&session).send().await;
    assert_eq!((answer.status, answer.label), (StatusCode::OK, Label::Logout));
    assert_eq!(answer.set_cookie("portvakt").as_deref(), Some(""));
    let settings = &f.config.session;
    let resumed = f
        .services
        .sessions
        .resume(&session.cookie_value, APP, settings, f.now, false)
        .await
        .unwrap();
    assert!(
        resumed.is_none(),
        "the session is over in the store, not only in the browser"
    );
}

/// Every route, posted from another site, is refused before any handler runs,
/// whatever cookies and tokens the browser sends along (the session's own CSRF
/// token included).
#[tokio::test]
async fn a_cross_site_post_is_refused_on_every_page() {
    let f = Fixture::new();
    let session = f.signed_in("alice", Duration::ZERO).await;
    let routes = [
        Route::Logout,
        Route::Login,
        Route::Challenge(ChallengePage::Verify),
        Route::Challenge(ChallengePage::Continue),
        Route::Account(AccountPage::SignOutEverywhere),
        Route::Account(AccountPage::AddDevice),
        Route::Admin(AdminPage::ResetConfirm),
    ];
    let csrf = f.services.sessions.form_token(&session.record);
    for route in routes {
        for (origin, fetch_site) in [("http://evil.example", "cross-site"), ("null", "cross-site")] {
            let answer = f
                .post(route, &[("csrf", &csrf)])
                .header("origin", origin)
                .header("sec-fetch-site", fetch_site)
                .signed_in(&session)
                .send()
                .await;
            assert_eq!(
                (answer.status, answer.label),
                (StatusCode::FORBIDDEN, Label::CrossSite),
                "{route:?} from {origin}"
            );
        }
    }
    assert!(
        f.alive(&session).await,
        "a refused sign-out-everywhere ended nothing"
    );
}

/// Another site cannot sign the user out with a link or an image either.
#[tokio::test]
async fn signing_out_from_another_site_is_refused_on_any_method() {
    let f = Fixture::new();
    let session = f.signed_in("alice", Duration::ZERO).await;
    let answer = f
        .get(Route::Logout)
        .header("sec-fetch-site", "cross-site")
        .signed_in(&session)
        .send()
        .await;
    assert_eq!(
        (answer.status, answer.label),
        (StatusCode::FORBIDDEN, Label::CrossSite)
    );
    assert!(f.alive(&session).await);
    let own = f
        .get(Route::Logout)
        .header("sec-fetch-site", "same-origin")
        .signed_in(&session)
        .send()
        .await;
    assert_eq!(own.label, Label::Logout);
    assert!(!f.alive(&session).await);
}
