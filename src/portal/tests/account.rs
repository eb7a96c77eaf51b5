//! The security-info pages: only for the signed-in user, every change behind the
//! session's form token and a recent second factor.

use std::time::Duration;

use http::StatusCode;

use super::*;
use crate::portal::answer::Label;
use crate::portal::route::{AccountPage as P, ChallengePage};
use crate::portal::views::texts;

fn on(page: P) -> Route {
    Route::Account(page)
}

const RECENT: Duration = Duration::from_secs(60);
const STALE: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn only_a_signed_in_user_has_security_info() {
    let f = Fixture::new();
    let answer = f.get(on(P::Overview)).send().await;
    assert_eq!(
        (answer.status, answer.location()),
        (StatusCode::SEE_OTHER, Some("/login"))
    );
    let post = f.post(on(P::SignOutEverywhere), &[]).send().await;
    assert_eq!(post.location(), Some("/login"));
}

#[tokio::test]
async fn the_overview_lists_methods_codes_and_activity() {
    let f = Fixture::new();
    f.enrolled("alice").await;
    let session = f.signed_in("alice", RECENT).await;
    let page = f.get(on(P::Overview)).signed_in(&session).send().await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("Phone"), "{}", page.text());
    assert!(
        page.input("csrf").is_some(),
        "its forms carry the session's token"
    );
}

#[tokio::test]
async fn a_change_without_the_sessions_token_is_refused() {
    let f = Fixture::new();
    f.enrolled("alice").await;
    let session = f.signed_in("alice", RECENT).await;
    let other = f.signed_in("alice", RECENT).await;
    let others_token = f.services.sessions.form_token(&other.record);
    for fields in [
        vec![],
        vec![("csrf", "forged")],
        vec![("csrf", others_token.as_str())],
    ] {
        let answer = f
            .post(on(P::SignOutEverywhere), &fields)
            .signed_in(&session)
            .send()
            .await;
        assert_eq!(
            (answer.status, answer.label),
            (StatusCode::FORBIDDEN, Label::BadRequest),
            "{fields:?}"
        );
    }
    assert!(f.alive(&session).await, "nothing was signed out");
}

#[tokio::test]
async fn a_stale_second_factor_is_asked_again_before_a_change() {
    let f = Fixture::new();
    f.enrolled("alice").await;
    let session = f.signed_in("alice", STALE).await;
    let csrf = f.services.sessions.form_token(&session.record);
    let device = f.services.store.totp_devices("alice").await.unwrap()[0]
        .id
        .to_string();
    for (page, fields) in [
        (P::RecoveryCodes, vec![("csrf", csrf.as_str())]),
        (P::AddDevice, vec![("csrf", csrf.as_str()), ("name", "Tablet")]),
        (
            P::RenameDevice,
            vec![("csrf", csrf.as_str()), ("id", &device), ("name", "Mine")],
        ),
        (
            P::DefaultMethod,
            vec![("csrf", csrf.as_str()), ("method", "email")],
        ),
        (P::AddKey, vec![("csrf", csrf.as_str()), ("name", "YubiKey")]),
        // A key's registration begun while fresh is not finished once stale.
        (P::AddKeyFinish, vec![("csrf", csrf.as_str())]),
        (P::PhoneRemove, vec![("csrf", csrf.as_str())]),
    ] {
        let answer = f.post(on(page), &fields).signed_in(&session).send().await;
        assert_eq!(
            answer.location(),
            Some(Route::Challenge(ChallengePage::Verify).path()),
            "{page:?}"
        );
        assert!(answer.set_cookie("portvakt-challenge").is_some());
    }
    assert!(f
        .services
        .store
        .unused_recovery_codes("alice")
        .await
        .unwrap()
        .is_empty());
}

/// A text message is not enough to change the security info: a swapped SIM and
/// the password must not add the thief's device.
#[tokio::test]
async fn a_session_passed_with_a_text_message_cannot_change_the_security_info() {
    let f = Fixture::new();
    f.enrolled("alice").await;
    let session = f
        .services
        .sessions
        .start_at(
            "alice",
            APP,
            SignInMethod::Sms,
            Some(f.now - RECENT),
            f.now,
            false,
        )
        .await
        .unwrap();
    let csrf = f.services.sessions.form_token(&session.record);
    for (page, fields) in [
        (P::AddDevice, vec![("csrf", csrf.as_str()), ("name", "Thief")]),
        (P::AddKey, vec![("csrf", csrf.as_str()), ("name", "Thief")]),
        (P::RecoveryCodes, vec![("csrf", csrf.as_str())]),
    ] {
        let answer = f.post(on(page), &fields).signed_in(&session).send().await;
        assert_eq!(
            answer.location(),
            Some(Route::Challenge(ChallengePage::Verify).path()),
            "{page:?}"
        );
    }
}

#[tokio::test]
async fn new_recovery_codes_replace_the_old_ones() {
    let f = Fixture::new();
    f.enrolled("alice").await;
    let session = f.signed_in("alice", RECENT).await;
    let csrf = f.services.sessions.form_token(&session.record);
    let answer = f
        .post(on(P::RecoveryCodes), &[("csrf", &csrf)])
        .signed_in(&session)
        .send()
        .await;
    assert_eq!(answer.label, Label::RecoveryCodesRenewed);
    assert_eq!(answer.text().matches("<li><code>").count(), 10);
    assert_eq!(
        f.services
            .store
            .unused_recovery_codes("alice")
            .await
            .unwrap()
            .len(),
        10
    );
}

#[tokio::test]
async fn devices_are_added_renamed_and_removed_but_never_the_last_one() {
    let f = Fixture::with("second_factor: { max_devices: 2 }\n", "");
    let t = texts(Lang::En);
    let secret = f.enrolled("alice").await;
    let session = f.signed_in("alice", RECENT).await;
    let csrf = f.services.sessions.form_token(&session.record);
    let post = |page: P, fields: Vec<(&'static str, String)>| {
        let mut fields = fields;
        fields.push(("csrf", csrf.clone()));
        (page, fields)
    };
    let send = |(page, fields): (P, Vec<(&'static str, String)>)| {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let call = f.post(on(page), &fields).signed_in(&session);
        async move { call.send().await }
    };
    let device = f.services.store.totp_devices("alice").await.unwrap()[0]
        .id
        .to_string();

    let bad_name = send(post(P::AddDevice, vec![("name", "Phone".into())])).await;
    assert!(bad_name.text().contains(t.invalid_device_name), "a name in use");
    let adding = send(post(P::AddDevice, vec![("name", "Tablet".into())])).await;
    assert_eq!(
        adding.location(),
        Some(Route::Challenge(ChallengePage::Enrol).path())
    );

    let renamed = send(post(
        P::RenameDevice,
        vec![("id", device.clone()), ("name", "Old phone".into())],
    ))
    .await;
    assert_eq!(renamed.location(), Some(on(P::Overview).path()));
    let devices = f.services.store.totp_devices("alice").await.unwrap();
    assert_eq!(devices[0].name, "Old phone");
    let secret_opens = f.services.keys.open(
        &devices[0].sealed_secret,
        &TotpDevice::seal_context("alice", "Old phone"),
    );
    assert!(secret_opens.is_ok(), "the secret is sealed to the new name");
    let (_, challenge) = f.login_waiting("alice", app_said_yes()).await;
    let verify = Route::Challenge(ChallengePage::Verify);
    let token = f
        .get(verify)
        .cookie("portvakt-challenge", &challenge)
        .send()
        .await
        .input("csrf")
        .unwrap();
    let signed_in = f
        .post(verify, &[("csrf", &token), ("code", &f.code(&secret, 0))])
        .cookie("portvakt-challenge", &challenge)
        .send()
        .await;
    assert_eq!(
        signed_in.label,
        Label::Released,
        "the renamed device's code works"
    );

    let confirm = send(post(P::RemoveDevice, vec![("id", device.clone())])).await;
    assert_eq!(confirm.status, StatusCode::OK, "asked to confirm first");
    let refused = send(post(P::RemoveDeviceConfirm, vec![("id", device.clone())])).await;
    assert!(
        refused.text().contains(t.last_device_refused),
        "{}",
        refused.text()
    );
    assert_eq!(f.services.store.totp_devices("alice").await.unwrap().len(), 1);

    let someone_elses = send(post(
        P::RenameDevice,
        vec![("id", "9999".into()), ("name", "Mine".into())],
    ))
    .await;
    assert!(someone_elses.text().contains(t.invalid_device_name));
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session_of_the_user() {
    let f = Fixture::new();
    let session = f.signed_in("alice", RECENT).await;
    let elsewhere = f.signed_in("alice", RECENT).await;
    let bobs = f.signed_in("bob", RECENT).await;
    let csrf = f.services.sessions.form_token(&session.record);
    let answer = f
        .post(on(P::SignOutEverywhere), &[("csrf", &csrf)])
        .signed_in(&session)
        .send()
        .await;
    assert_eq!(answer.label, Label::SignedOutEverywhere);
    assert!(!f.alive(&elsewhere).await);
    assert!(f.alive(&bobs).await, "bob's session stays");
}

#[tokio::test]
async fn the_default_method_is_one_of_the_known_ones() {
    let f = Fixture::new();
    let session = f.signed_in("alice", RECENT).await;
    let csrf = f.services.sessions.form_token(&session.record);
    for (method, stored) in [
        ("email", Some(crate::store::PreferredMethod::Email)),
        ("nonsense", None),
    ] {
        f.services
            .store
            .set_preferred_method("alice", crate::store::PreferredMethod::App, f.now)
            .await
            .unwrap();
        let answer = f
            .post(on(P::DefaultMethod), &[("csrf", &csrf), ("method", method)])
            .signed_in(&session)
            .send()
            .await;
        assert_eq!(answer.location(), Some(on(P::Overview).path()));
        let now = f.services.store.preferred_method("alice").await.unwrap();
        assert_eq!(
            now,
            stored.or(Some(crate::store::PreferredMethod::App)),
            "{method}"
        );
    }
}

#[tokio::test]
async fn two_factor_is_turned_on_by_the_user_where_it_is_optional() {
    let f = Fixture::with("second_factor: { allow_opt_out: false }\n", "    mfa: optional\n");
    let t = texts(Lang::En);
    let session = f
        .services
        .sessions
        .start("alice", APP, crate::factors::SignInMethod::Password, f.now, false)
        .await
        .unwrap();
    let csrf = f.services.sessions.form_token(&session.record);
    let on_ = f
        .post(on(P::TwoFactor), &[("csrf", &csrf), ("on", "on")])
        .signed_in(&session)
        .send()
        .await;
    assert_eq!(
        on_.location(),
        Some(Route::Challenge(ChallengePage::Enrol).path()),
        "turning it on sets up an app at once"
    );
    assert!(f.services.store.mfa_opted_in("alice").await.unwrap());
    let off = f
        .post(on(P::TwoFactor), &[("csrf", &csrf), ("on", "off")])
        .signed_in(&session)
        .send()
        .await;
    assert!(off.text().contains(t.opt_out_not_allowed), "{}", off.text());
    assert!(f.services.store.mfa_opted_in("alice").await.unwrap());
}

#[tokio::test]
async fn an_address_for_codes_is_confirmed_with_a_code_sent_to_it() {
    let f = Fixture::with(
        "email: { from: \"Portvakt <portvakt@example.com>\", file: mail.log }\nsecond_factor: { email: fallback }\n",
        "",
    );
    let t = texts(Lang::En);
    f.enrolled("alice").await;
    let session = f.signed_in("alice", RECENT).await;
    let csrf = f.services.sessions.form_token(&session.record);
    let invalid = f
        .post(on(P::Email), &[("csrf", &csrf), ("address", "not an address")])
        .signed_in(&session)
        .send()
        .await;
    assert!(invalid.text().contains(t.email_invalid));
    let sent = f
        .post(on(P::Email), &[("csrf", &csrf), ("address", "alice@example.com")])
        .signed_in(&session)
        .send()
        .await;
    assert!(sent.text().contains("a•••@example.com"), "{}", sent.text());
    let code = f.mailed_code();
    let wrong = f
        .post(on(P::EmailConfirm), &[("csrf", &csrf), ("code", "000")])
        .signed_in(&session)
        .send()
        .await;
    assert!(wrong.text().contains(t.wrong_code));
    let confirmed = f
        .post(on(P::EmailConfirm), &[("csrf", &csrf), ("code", &code)])
        .signed_in(&session)
        .send()
        .await;
    assert_eq!(
        confirmed.location(),
        Some(on(P::Overview).path()),
        "{}",
        confirmed.text()
    );
    assert_eq!(
        f.services.store.email_address("alice").await.unwrap().as_deref(),
        Some("alice@example.com")
    );
}

/// Two tabs (or a double submit) removing a user's devices at once never leave a
/// user who must have a second factor with none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_devices_at_once_keeps_the_last_one() {
    let f = Fixture::with("second_factor: { max_devices: 6 }\n", "");
    f.enrolled("alice").await;
    for name in ["Tablet", "Laptop", "Watch"] {
        let sealed = f
            .services
            .keys
            .seal(b"secret", &TotpDevice::seal_context("alice", name));
        let limit = 6;
        f.services
            .store
            .add_totp_device("alice", name, sealed, 1, f.now, limit)
            .await
            .unwrap();
    }
    let session = f.signed_in("alice", RECENT).await;
    let csrf = f.services.sessions.form_token(&session.record);
    let ids: Vec<String> = f
        .services
        .store
        .totp_devices("alice")
        .await
        .unwrap()
        .iter()
        .map(|d| d.id.to_string())
        .collect();
    let removals = ids.iter().map(|id| {
        f.post(on(P::RemoveDeviceConfirm), &[("csrf", &csrf), ("id", id)])
            .signed_in(&session)
            .send()
    });
    futures_util::future::join_all(removals).await;
    assert_eq!(f.services.store.totp_devices("alice").await.unwrap().len(), 1);
}
