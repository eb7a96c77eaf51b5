//! The second-factor pages of a challenge in progress: enrol, verify, recovery and
//! e-mailed codes, the release of the withheld answer, and every refusal (no or
//! another app's challenge, expiry by the clock, a form without its token, a
//! lockout, a replayed code, a second release).

use std::time::Duration;

use http::StatusCode;

use super::*;
use crate::portal::answer::Label;
use crate::portal::route::ChallengePage as P;
use crate::portal::views::texts;

fn on(page: P) -> Route {
    Route::Challenge(page)
}

/// A form of a challenge's page, posted by the browser holding `challenge`.
async fn submit(f: &Fixture, page: P, challenge: &str, fields: &[(&str, &str)]) -> Answer {
    f.post(on(page), fields)
        .cookie("portvakt-challenge", challenge)
        .send()
        .await
}

/// A challenge's page, asked by the browser holding `challenge`.
async fn show(f: &Fixture, page: P, challenge: &str) -> Answer {
    f.get(on(page))
        .cookie("portvakt-challenge", challenge)
        .send()
        .await
}

/// The challenge's form token, read from the page the browser is on.
async fn csrf(f: &Fixture, page: P, challenge: &str) -> String {
    let answer = f
        .get(on(page))
        .cookie("portvakt-challenge", challenge)
        .send()
        .await;
    answer
        .input("csrf")
        .unwrap_or_else(|| panic!("no form token on {page:?}: {}", answer.text()))
}

#[tokio::test]
async fn without_a_live_challenge_every_page_says_sign_in_again() {
    let mut f = Fixture::new();
    let t = texts(Lang::En);
    let no_cookie = f.get(on(P::Verify)).send().await;
    assert_eq!(
        (no_cookie.status, no_cookie.label),
        (StatusCode::BAD_REQUEST, Label::ChallengeExpired)
    );
    assert!(no_cookie.text().contains(t.expired_title));
    assert_eq!(
        no_cookie.set_cookie("portvakt-challenge").as_deref(),
        Some(""),
        "the stale cookie is cleared"
    );
    let made_up = f
        .get(on(P::Verify))
        .cookie("portvakt-challenge", "made-up")
        .send()
        .await;
    assert_eq!(made_up.label, Label::ChallengeExpired);

    f.enrolled("alice").await;
    let (_, challenge) = f.login_waiting("alice", app_said_yes()).await;
    let elsewhere = f
        .get(on(P::Verify))
        .cookie("portvakt-challenge", &challenge)
        .on_app("other")
        .send()
        .await;
    assert_eq!(
        elsewhere.label,
        Label::ChallengeExpired,
        "a challenge is good on its own app only"
    );

    let timeout = f.config.session.login_timeout;
    f.advance(timeout - Duration::from_secs(1));
    let live = show(&f, P::Verify, &challenge).await;
    assert_eq!(live.status, StatusCode::OK);
    f.advance(Duration::from_secs(1));
    let late = show(&f, P::Verify, &challenge).await;
    assert_eq!(
        late.label,
        Label::ChallengeExpired,
        "expired by the clock, not by waiting"
    );
}

#[tokio::test]
async fn a_form_without_its_token_or_too_large_is_refused() {
    let f = Fixture::new();
    let secret = f.enrolled("alice").await;
    let (_, challenge) = f.login_waiting("alice", app_said_yes()).await;
    let code = f.code(&secret, 0);
    let token = csrf(&f, P::Verify, &challenge).await;
    for (fields, too_large) in [
        (vec![("code", code.as_str())], false),
        (vec![("code", code.as_str()), ("csrf", "forged")], false),
        (vec![("code", code.as_str()), ("csrf", token.as_str())], true),
    ] {
        let mut call = f
            .post(on(P::Verify), &fields)
            .cookie("portvakt-challenge", &challenge);
        if too_large {
            call = call.too_large();
        }
        let answer = call.send().await;
        assert_eq!(
            (answer.status, answer.label),
            (StatusCode::FORBIDDEN, Label::BadRequest),
            "{fields:?}"
        );
    }
    // None of those used the code up.
    let answer = submit(&f, P::Verify, &challenge, &[("csrf", &token), ("code", &code)]).await;
    assert_eq!(answer.label, Label::Released);
}

#[tokio::test]
async fn enrolling_shows_codes_once_then_releases_the_apps_answer_exactly() {
    let f = Fixture::new();
    let t = texts(Lang::En);
    let (redirect, challenge) = f.login_waiting("alice", app_said_yes()).await;
    assert_eq!(redirect.location(), Some(on(P::Enrol).path()));

    let page = show(&f, P::Enrol, &challenge).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("<svg"), "the QR code is drawn");
    let key: String = page
        .text()
        .split("<code class=\"secret\">")
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .expect("the key in words")
        .replace(' ', "");
    let secret = TotpSecret::from_bytes(zeroize::Zeroizing::new(
        data_encoding::BASE32_NOPAD
            .decode(key.as_bytes())
            .expect("base32"),
    ));
    let token = page.input("csrf").expect("a form token");

    let wrong = submit(&f, P::Enrol, &challenge, &[("csrf", &token), ("code", "000000")]).await;
    assert!(wrong.text().contains(t.wrong_code));

    let passed = submit(
        &f,
        P::Enrol,
        &challenge,
        &[("csrf", &token), ("code", &f.code(&secret, 0))],
    )
    .await;
    assert_eq!(passed.status, StatusCode::OK);
    let codes = passed.text().matches("<li><code>").count();
    assert_eq!(codes, 10, "{}", passed.text());
    // From here on the browser is on the challenge's new id and form token.
    let challenge = passed
        .set_cookie("portvakt-challenge")
        .expect("the new challenge cookie");
    let token = passed.input("csrf").expect("the new form token");
    let file = show(&f, P::RecoveryCodesFile, &challenge).await;
    assert_eq!(
        file.header(&http::header::CONTENT_DISPOSITION),
        Some("attachment; filename=\"recovery-codes.txt\"")
    );
    assert_eq!(
        file.text().lines().filter(|l| l.contains('-')).count(),
        10,
        "{}",
        file.text()
    );
    let print = show(&f, P::RecoveryCodesPrint, &challenge).await;
    assert_eq!(print.status, StatusCode::OK);
    assert_eq!(f.services.store.totp_devices("alice").await.unwrap().len(), 1);

    let released = submit(&f, P::Continue, &challenge, &[("csrf", &token)]).await;
    assert_eq!(
        (released.status, released.label),
        (StatusCode::FOUND, Label::Released)
    );
    assert_eq!(released.body, b"signed in");
    assert_eq!(released.location(), Some("/"));
    assert_eq!(released.set_cookie("sessionid").as_deref(), Some("app-session"));
    assert!(
        released.set_cookie("portvakt").is_some_and(|v| !v.is_empty()),
        "a gateway session"
    );
    assert_eq!(released.set_cookie("portvakt-challenge").as_deref(), Some(""));
    assert!(
        !released.own_page,
        "the app's answer goes out as the app wrote it"
    );

    let again = submit(&f, P::Continue, &challenge, &[("csrf", &token)]).await;
    assert_eq!(again.label, Label::ChallengeExpired, "released once only");
}

#[tokio::test]
async fn a_code_signs_in_once_and_never_again() {
    let f = Fixture::new();
    let secret = f.enrolled("alice").await;
    let code = f.code(&secret, 0);
    let (redirect, first) = f.login_waiting("alice", app_said_yes()).await;
    assert_eq!(redirect.location(), Some(on(P::Verify).path()));
    let token = csrf(&f, P::Verify, &first).await;
    let released = submit(&f, P::Verify, &first, &[("csrf", &token), ("code", &code)]).await;
    assert_eq!(released.label, Label::Released);

    let (_, second) = f.login_waiting("alice", app_said_yes()).await;
    let token = csrf(&f, P::Verify, &second).await;
    let replayed = submit(&f, P::Verify, &second, &[("csrf", &token), ("code", &code)]).await;
    assert_eq!(replayed.label, Label::SecondFactor);
    assert!(replayed.text().contains(texts(Lang::En).wrong_code));
    let next = submit(
        &f,
        P::Verify,
        &second,
        &[("csrf", &token), ("code", &f.code(&secret, 1))],
    )
    .await;
    assert_eq!(next.label, Label::Released, "the next step's code still works");
}

#[tokio::test]
async fn wrong_codes_lock_the_account_until_the_clock_moves_on() {
    let mut f = Fixture::with("lockout: { max_failures: 3, delay: 1m, max_delay: 1m }\n", "");
    let secret = f.enrolled("alice").await;
    let (_, challenge) = f.login_waiting("alice", app_said_yes()).await;
    let token = csrf(&f, P::Verify, &challenge).await;
    for _ in 0..3 {
        let wrong = submit(&f, P::Verify, &challenge, &[("csrf", &token), ("code", "000000")]).await;
        assert_eq!(wrong.label, Label::SecondFactor);
    }
    let right = f.code(&secret, 0);
    let locked = submit(&f, P::Verify, &challenge, &[("csrf", &token), ("code", &right)]).await;
    assert_eq!(
        (locked.status, locked.label),
        (StatusCode::TOO_MANY_REQUESTS, Label::Locked)
    );

    f.advance(Duration::from_secs(61));
    let (_, challenge) = f.login_waiting("alice", app_said_yes()).await;
    let token = csrf(&f, P::Verify, &challenge).await;
    let released = submit(
        &f,
        P::Verify,
        &challenge,
        &[("csrf", &token), ("code", &f.code(&secret, 0))],
    )
    .await;
    assert_eq!(
        released.label,
        Label::Released,
        "the lockout ends when its delay has passed"
    );
}

#[tokio::test]
async fn a_recovery_code_passes_once_and_says_how_many_are_left() {
    let f = Fixture::new();
    f.enrolled("alice").await;
    let codes = f.recovery_codes("alice", 3).await;

    let (_, challenge) = f.login_waiting("alice", app_said_yes()).await;
    let token = csrf(&f, P::Recovery, &challenge).await;
    // As a person might type it: lower case, spaces for the dashes.
    let typed = codes[1].as_str().to_lowercase().replace('-', " ");
    let passed = submit(&f, P::Recovery, &challenge, &[("csrf", &token), ("code", &typed)]).await;
    assert_eq!(passed.status, StatusCode::OK);
    assert!(passed.text().contains("<strong>2</strong>"), "{}", passed.text());
    let challenge = passed
        .set_cookie("portvakt-challenge")
        .expect("the new challenge cookie");
    let token = passed.input("csrf").expect("the new form token");
    let released = submit(&f, P::Continue, &challenge, &[("csrf", &token)]).await;
    assert_eq!(released.label, Label::Released);

    let (_, challenge) = f.login_waiting("alice", app_said_yes()).await;
    let token = csrf(&f, P::Recovery, &challenge).await;
    let used = f
        .post(on(P::Recovery), &[("csrf", &token), ("code", codes[1].as_str())])
        .cookie("portvakt-challenge", &challenge)
        .send()
        .await;
    assert_eq!(used.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(used.text().contains(texts(Lang::En).wrong_code), "used once only");
}

#[tokio::test]
async fn an_emailed_code_works_once_before_it_expires() {
    let mut f = Fixture::with_files(
        "users: { file: users.yaml }\nemail: { from: \"Portvakt <portvakt@example.com>\", file: mail.log, code_lifetime: 2m }\n\
         second_factor: { email: fallback }\n",
        "",
        &[("users.yaml", "users:\n  alice: { email: alice@example.com }\n")],
    );
    f.enrolled("alice").await;
    let (_, challenge) = f.login_waiting("alice", app_said_yes()).await;
    let token = csrf(&f, P::Verify, &challenge).await;
    let sent = send_code(&f, &token, &challenge).await;
    assert_eq!(sent.location(), Some(on(P::Email).path()));
    let page = show(&f, P::Email, &challenge).await;
    assert!(
        page.text().contains("a•••@example.com"),
        "the address is shown masked: {}",
        page.text()
    );

    let lifetime = f.config.email.as_ref().unwrap().code_lifetime;
    f.advance(lifetime + Duration::from_secs(1));
    let late = submit(
        &f,
        P::Email,
        &challenge,
        &[("csrf", &token), ("code", &f.mailed_code())],
    )
    .await;
    assert!(
        late.text().contains(texts(Lang::En).wrong_code),
        "expired by the clock"
    );

    let again = send_code(&f, &token, &challenge).await;
    assert_eq!(
        again.location(),
        Some(on(P::Email).path()),
        "a new code may be sent"
    );
    let code = f.mailed_code();
    let released = submit(&f, P::Email, &challenge, &[("csrf", &token), ("code", &code)]).await;
    assert_eq!(released.label, Label::Released);
}

async fn send_code(f: &Fixture, token: &str, challenge: &str) -> Answer {
    submit(f, P::EmailSend, challenge, &[("csrf", token)]).await
}

/// Whoever began a sign-in with the victim's password keeps its challenge cookie
/// and form token, and may get them into the victim's browser. Once the victim
/// passes a factor that waits for Continue, that copy collects nothing: the
/// challenge moved to a new id and token that only the victim's browser got.
#[tokio::test]
async fn a_passed_challenge_is_released_only_to_the_browser_that_passed_it() {
    let f = Fixture::new();
    f.enrolled("alice").await;
    let codes = f.recovery_codes("alice", 2).await;
    let (_, shared) = f.login_waiting("alice", app_said_yes()).await;
    let token = csrf(&f, P::Recovery, &shared).await;

    let passed = f
        .post(on(P::Recovery), &[("csrf", &token), ("code", codes[0].as_str())])
        .cookie("portvakt-challenge", &shared)
        .send()
        .await;
    assert_eq!(passed.status, StatusCode::OK);
    let mine = passed
        .set_cookie("portvakt-challenge")
        .expect("a new challenge cookie");
    assert_ne!(mine, shared);
    let my_token = passed.input("csrf").expect("a new form token");
    assert_ne!(my_token, token);

    // A double click: the very form that passed, sent again from the same browser,
    // leads to the same page and the same new challenge.
    let again = f
        .post(on(P::Recovery), &[("csrf", &token), ("code", codes[0].as_str())])
        .cookie("portvakt-challenge", &shared)
        .send()
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        again.set_cookie("portvakt-challenge").as_deref(),
        Some(mine.as_str())
    );
    let guessed = f
        .post(on(P::Recovery), &[("csrf", &token), ("code", codes[1].as_str())])
        .cookie("portvakt-challenge", &shared)
        .send()
        .await;
    assert_eq!(
        guessed.label,
        Label::ChallengeExpired,
        "another code is no resubmission"
    );

    let copied = submit(&f, P::Continue, &shared, &[("csrf", &token)]).await;
    assert_eq!(
        copied.label,
        Label::ChallengeExpired,
        "the old id collects nothing"
    );
    // Guessing which code passed it, with the old id and token, counts toward the
    // lockout like any code: the tenth failure locks the account.
    let failures = |f: &Fixture| {
        let store = f.services.store.clone();
        async move {
            store
                .failures(crate::store::Subject::User("alice"))
                .await
                .unwrap()
                .count
        }
    };
    assert_eq!(failures(&f).await, 1, "the guess above");
    for guess in 0..9 {
        let code = format!("{guess:06}");
        f.post(on(P::Recovery), &[("csrf", &token), ("code", &code)])
            .cookie("portvakt-challenge", &shared)
            .send()
            .await;
    }
    let locked = f
        .post(on(P::Recovery), &[("csrf", &token), ("code", codes[0].as_str())])
        .cookie("portvakt-challenge", &shared)
        .send()
        .await;
    assert_eq!(locked.label, Label::Locked, "even the right form, once locked");
    assert_eq!(failures(&f).await, 10);
    let stolen_token = submit(&f, P::Continue, &mine, &[("csrf", &token)]).await;
    assert_eq!(
        stolen_token.status,
        StatusCode::FORBIDDEN,
        "nor does the old token"
    );
    let released = submit(&f, P::Continue, &mine, &[("csrf", &my_token)]).await;
    assert_eq!(released.label, Label::Released);
}

/// A browser carrying two challenge cookies (one planted from a sibling host) is
/// on no challenge at all.
#[tokio::test]
async fn two_challenge_cookies_are_no_challenge() {
    let f = Fixture::new();
    f.enrolled("alice").await;
    let (_, theirs) = f.login_waiting("alice", app_said_yes()).await;
    let (_, mine) = f.login_waiting("alice", app_said_yes()).await;
    let answer = f
        .get(on(P::Verify))
        .cookie("portvakt-challenge", &theirs)
        .cookie("portvakt-challenge", &mine)
        .send()
        .await;
    assert_eq!(answer.label, Label::ChallengeExpired);
}

/// The device limit and unique names hold when the device is stored: adding began
/// in several tabs while there was room, and only what fits is stored.
#[tokio::test]
async fn the_device_limit_holds_when_adding_finishes() {
    let f = Fixture::with("second_factor: { max_devices: 2 }\n", "");
    f.enrolled("alice").await;
    let session = f.signed_in("alice", std::time::Duration::from_secs(60)).await;
    let csrf_session = f.services.sessions.form_token(&session.record);
    let mut waiting = Vec::new();
    for name in ["Tablet", "Laptop"] {
        let answer = f
            .post(
                Route::Account(crate::portal::route::AccountPage::AddDevice),
                &[("csrf", &csrf_session), ("name", name)],
            )
            .signed_in(&session)
            .send()
            .await;
        let challenge = answer.set_cookie("portvakt-challenge").expect("adding began");
        let page = show(&f, P::Enrol, &challenge).await;
        waiting.push((challenge, page));
    }
    let mut labels = Vec::new();
    for (step, (challenge, page)) in waiting.iter().enumerate() {
        let key: String = page
            .text()
            .split("<code class=\"secret\">")
            .nth(1)
            .and_then(|rest| rest.split("</code>").next())
            .unwrap()
            .replace(' ', "");
        let secret = TotpSecret::from_bytes(zeroize::Zeroizing::new(
            data_encoding::BASE32_NOPAD.decode(key.as_bytes()).unwrap(),
        ));
        let token = page.input("csrf").unwrap();
        let done = f
            .post(
                on(P::Enrol),
                &[("csrf", &token), ("code", &f.code(&secret, step as i64))],
            )
            .cookie("portvakt-challenge", challenge)
            .send()
            .await;
        labels.push((done.status, done.text().contains(texts(Lang::En).device_limit)));
    }
    assert_eq!(labels[0], (StatusCode::OK, false), "the first fits");
    assert_eq!(
        labels[1],
        (StatusCode::UNPROCESSABLE_ENTITY, true),
        "the second does not"
    );
    assert_eq!(f.services.store.totp_devices("alice").await.unwrap().len(), 2);
}

/// A reload of the page a passing code led to (the browser already on the new
/// challenge) shows it again; it is no refused form.
#[tokio::test]
async fn reloading_the_page_after_a_recovery_code_shows_it_again() {
    let f = Fixture::new();
    f.enrolled("alice").await;
    let codes = f.recovery_codes("alice", 2).await;
    let (_, first) = f.login_waiting("alice", app_said_yes()).await;
    let token = csrf(&f, P::Recovery, &first).await;
    let form = [("csrf", token.as_str()), ("code", codes[0].as_str())];
    let passed = submit(&f, P::Recovery, &first, &form).await;
    let now_on = passed.set_cookie("portvakt-challenge").unwrap();
    let reloaded = submit(&f, P::Recovery, &now_on, &form).await;
    assert_eq!(reloaded.status, StatusCode::OK, "{}", reloaded.text());
    assert!(
        reloaded.text().contains("<strong>1</strong>"),
        "{}",
        reloaded.text()
    );
    let forged = [("csrf", token.as_str()), ("code", codes[1].as_str())];
    let other = submit(&f, P::Recovery, &now_on, &forged).await;
    assert_eq!(
        other.status,
        StatusCode::FORBIDDEN,
        "another form is refused as before"
    );
}

/// The code is right but the app is still sending its login answer: the browser
/// waits on Continue, on a challenge only it can continue.
#[tokio::test]
async fn waiting_for_the_apps_answer_moves_the_challenge_too() {
    let f = Fixture::new();
    let secret = f.enrolled("alice").await;
    let mut streaming = app_said_yes();
    streaming.complete = false;
    let (_, shared) = f.login_waiting("alice", streaming).await;
    let token = csrf(&f, P::Verify, &shared).await;
    let waiting = submit(
        &f,
        P::Verify,
        &shared,
        &[("csrf", &token), ("code", &f.code(&secret, 0))],
    )
    .await;
    assert_eq!(waiting.status, StatusCode::OK);
    let mine = waiting
        .set_cookie("portvakt-challenge")
        .expect("a new challenge cookie");
    assert_ne!(mine, shared);
    let copied = submit(&f, P::Continue, &shared, &[("csrf", &token)]).await;
    assert_eq!(copied.label, Label::ChallengeExpired);
}

/// An admin reset between passing the factor and pressing Continue wins: the
/// user's factors are gone, so nothing is released and no session starts.
#[tokio::test]
async fn a_reset_after_the_factor_passed_releases_nothing() {
    let f = Fixture::new();
    f.enrolled("alice").await;
    let codes = f.recovery_codes("alice", 1).await;
    let (_, challenge) = f.login_waiting("alice", app_said_yes()).await;
    let token = csrf(&f, P::Recovery, &challenge).await;
    let passed = submit(
        &f,
        P::Recovery,
        &challenge,
        &[("csrf", &token), ("code", codes[0].as_str())],
    )
    .await;
    let moved = passed.set_cookie("portvakt-challenge").expect("moved");
    let token = passed.input("csrf").expect("the Continue form");
    f.services.store.reset_second_factor("alice").await.unwrap();
    let after = submit(&f, P::Continue, &moved, &[("csrf", &token)]).await;
    assert_eq!(after.label, Label::ChallengeExpired);
    assert!(
        after.set_cookie("portvakt").is_none_or(|v| v.is_empty()),
        "no session"
    );
}
