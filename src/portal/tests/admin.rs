//! The admin pages: admins only, with a recent second factor; a bulk reset is
//! confirmed with the admin's own code, which counts toward their lockout.

use std::time::Duration;

use http::StatusCode;

use super::*;
use crate::portal::answer::Label;
use crate::portal::route::{AdminPage as P, ChallengePage};
use crate::portal::views::texts;
use crate::store::Subject;

fn on(page: P) -> Route {
    Route::Admin(page)
}

fn admins() -> Fixture {
    Fixture::with(
        "admins: { users: [alice] }\nlockout: { max_failures: 2, delay: 1m, max_delay: 1m }\n",
        "",
    )
}

#[tokio::test]
async fn only_admins_with_a_recent_second_factor_get_in() {
    let f = admins();
    let bob = f.signed_in("bob", Duration::from_secs(60)).await;
    let denied = f.get(on(P::Overview)).signed_in(&bob).send().await;
    assert_eq!(
        (denied.status, denied.label),
        (StatusCode::FORBIDDEN, Label::Deny)
    );
    let csrf = f.services.sessions.form_token(&bob.record);
    let action = f
        .post(on(P::Unlock), &[("csrf", &csrf), ("user", "carol")])
        .signed_in(&bob)
        .send()
        .await;
    assert_eq!(action.status, StatusCode::FORBIDDEN);

    let nobody = f.get(on(P::Overview)).send().await;
    assert_eq!(nobody.location(), Some("/login"));

    f.enrolled("alice").await;
    let stale = f.signed_in("alice", Duration::from_secs(3600)).await;
    let step_up = f.get(on(P::Overview)).signed_in(&stale).send().await;
    assert_eq!(
        step_up.location(),
        Some(Route::Challenge(ChallengePage::Verify).path())
    );

    let fresh = f.signed_in("alice", Duration::from_secs(60)).await;
    let page = f
        .get(on(P::Overview))
        .signed_in(&fresh)
        .query("q=ali")
        .send()
        .await;
    assert_eq!((page.status, page.label), (StatusCode::OK, Label::Admin));
}

#[tokio::test]
async fn unlock_and_open_enrolment_act_on_the_named_users() {
    let f = admins();
    let alice = f.signed_in("alice", Duration::from_secs(60)).await;
    let csrf = f.services.sessions.form_token(&alice.record);
    let policy = f.config.lockout;
    for _ in 0..3 {
        let _ = f
            .services
            .store
            .charge_attempt(&[(Subject::User("carol"), policy)], f.now)
            .await
            .unwrap();
    }
    assert!(
        f.services
            .store
            .failures(Subject::User("carol"))
            .await
            .unwrap()
            .count
            > 0
    );
    let done = f
        .post(on(P::Unlock), &[("csrf", &csrf), ("user", " Carol ")])
        .signed_in(&alice)
        .send()
        .await;
    assert!(done.text().contains(texts(Lang::En).admin_done));
    assert_eq!(
        f.services
            .store
            .failures(Subject::User("carol"))
            .await
            .unwrap()
            .count,
        0
    );

    f.post(on(P::OpenEnrolment), &[("csrf", &csrf), ("user", "dave")])
        .signed_in(&alice)
        .send()
        .await;
    let until = f.services.store.enrolment_open_until("dave").await.unwrap();
    assert!(until.is_some_and(|until| until > f.now));
}

#[tokio::test]
async fn a_reset_needs_the_admins_own_code_and_counts_wrong_ones() {
    let f = admins();
    let t = texts(Lang::En);
    let secret = f.enrolled("alice").await;
    f.enrolled("bob").await;
    let bobs = f.signed_in("bob", Duration::ZERO).await;
    let alice = f.signed_in("alice", Duration::from_secs(60)).await;
    let csrf = f.services.sessions.form_token(&alice.record);

    let confirm = f
        .post(on(P::Reset), &[("csrf", &csrf), ("user", "bob")])
        .signed_in(&alice)
        .send()
        .await;
    assert!(
        confirm.text().contains("bob"),
        "asks to confirm: {}",
        confirm.text()
    );

    let wrong = f
        .post(
            on(P::ResetConfirm),
            &[("csrf", &csrf), ("user", "bob"), ("code", "000000")],
        )
        .signed_in(&alice)
        .send()
        .await;
    assert!(wrong.text().contains(t.wrong_code));
    assert_eq!(
        f.services.store.totp_devices("bob").await.unwrap().len(),
        1,
        "nothing reset"
    );

    let done = f
        .post(
            on(P::ResetConfirm),
            &[("csrf", &csrf), ("user", "bob"), ("code", &f.code(&secret, 0))],
        )
        .signed_in(&alice)
        .send()
        .await;
    assert!(done.text().contains(t.admin_done), "{}", done.text());
    assert!(f.services.store.totp_devices("bob").await.unwrap().is_empty());
    assert!(!f.alive(&bobs).await, "the reset ended bob's sessions");

    for _ in 0..2 {
        f.post(
            on(P::ResetConfirm),
            &[("csrf", &csrf), ("user", "bob"), ("code", "000000")],
        )
        .signed_in(&alice)
        .send()
        .await;
    }
    let locked = f
        .post(
            on(P::ResetConfirm),
            &[("csrf", &csrf), ("user", "bob"), ("code", &f.code(&secret, 1))],
        )
        .signed_in(&alice)
        .send()
        .await;
    assert_eq!(locked.label, Label::Locked);
}
