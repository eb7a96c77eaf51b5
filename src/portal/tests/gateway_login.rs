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
