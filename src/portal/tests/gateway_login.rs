//! The gateway's own login page (`login: gateway`): a double-submit token, the
//! shared lockout, and a second factor after a right password.

use http::StatusCode;

use super::*;
use crate::portal::answer::Label;
use crate::portal::route::ChallengePage;
use crate::portal::views::texts;

fn gateway_login() -> Fixture {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let hash = argon2::Argon2::default()
        .hash_password(b"wonderland", &salt)
        .unwrap()
        .to_string();
    Fixture::with_files(
        "users: { file: users.yaml }\nlockout: { max_failures: 2, delay: 1m, max_delay: 1m }\n",
        "    login: gateway\n",
        &[(
            "users.yaml",
            &format!("users:\n  alice: {{ password: \"{hash}\" }}\n"),
        )],
    )
}

#[tokio::test]
async fn the_form_sets_its_token_and_a_post_without_it_is_refused() {
    let f = gateway_login();
    let form = f.get(Route::Login).query("return=%2Freports").send().await;
    assert_eq!((form.status, form.label), (StatusCode::OK, Label::LoginPage));
    let token = form.set_cookie("portvakt-login").expect("the token's cookie");
    assert_eq!(form.input("csrf").as_deref(), Some(token.as_str()));
    assert_eq!(form.input("return").as_deref(), Some("/reports"));

    let fields = [("username", "alice"), ("password", "wonderland")];
    let no_cookie = f
        .post(Route::Login, &[fields[0], fields[1], ("csrf", &token)])
        .send()
        .await;
    assert_eq!(no_cookie.status, StatusCode::FORBIDDEN);
    let other_token = f
        .post(Route::Login, &[fields[0], fields[1], ("csrf", "guess")])
        .cookie("portvakt-login", &token)
        .send()
        .await;
    assert_eq!(other_token.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_right_password_leads_to_the_second_factor_and_wrong_ones_lock() {
    let f = gateway_login();
    let t = texts(Lang::En);
    let token = f
        .get(Route::Login)
        .send()
        .await
        .set_cookie("portvakt-login")
        .unwrap();
    let login = |password: &'static str| {
        f.post(
            Route::Login,
            &[("username", "Alice "), ("password", password), ("csrf", &token)],
        )
        .cookie("portvakt-login", &token)
        .send()
    };
    let right = login("wonderland").await;
    assert_eq!(
        right.location(),
        Some(Route::Challenge(ChallengePage::Enrol).path())
    );
    assert!(right.set_cookie("portvakt-challenge").is_some());
    assert!(
        right.set_cookie("portvakt").is_none(),
        "no session before the second factor"
    );

    for _ in 0..2 {
        let wrong = login("guess").await;
        assert_eq!(wrong.label, Label::LoginFailed);
        assert!(wrong.text().contains(t.wrong_password));
    }
    let locked = login("wonderland").await;
    assert_eq!(
        (locked.status, locked.label),
        (StatusCode::TOO_MANY_REQUESTS, Label::Locked)
    );
}

/// A browser remembered after a code lets the password through without one, and
/// the session it starts dates its second factor from when the code was typed, so
/// routes with `max_age` ask again; another user's remembered browser is worth
/// nothing to this one.
#[tokio::test]
async fn a_remembered_browser_keeps_the_date_of_its_second_factor() {
    let mut f = gateway_login();
    let typed_at = f.now;
    let month = std::time::Duration::from_secs(30 * 24 * 3600);
    let trust = f
        .services
        .sessions
        .remember("alice", typed_at, f.now, month, false)
        .await
        .unwrap();
    let bobs = f
        .services
        .sessions
        .remember("bob", typed_at, f.now, month, false)
        .await
        .unwrap();
    f.advance(std::time::Duration::from_secs(3 * 3600));

    let token = f
        .get(Route::Login)
        .send()
        .await
        .set_cookie("portvakt-login")
        .unwrap();
    let sign_in = |trust: &str| {
        f.post(
            Route::Login,
            &[
                ("username", "alice"),
                ("password", "wonderland"),
                ("csrf", &token),
            ],
        )
        .cookie("portvakt-login", &token)
        .cookie("portvakt-trust", trust)
        .send()
    };
    let passed = sign_in(&trust).await;
    assert_eq!(passed.label, Label::LoginRemembered);
    let cookie = passed.set_cookie("portvakt").expect("a session");
    let session = f
        .services
        .sessions
        .resume(&cookie, APP, &f.config.session, f.now, false)
        .await
        .unwrap()
        .expect("a live session");
    assert_eq!(
        session.second_factor_at,
        Some(typed_at),
        "not the time of this sign-in"
    );
    assert!(!session.second_factor_within(f.now, std::time::Duration::from_secs(3600)));

    let borrowed = sign_in(&bobs).await;
    assert_eq!(
        borrowed.location(),
        Some(Route::Challenge(ChallengePage::Enrol).path())
    );
}
