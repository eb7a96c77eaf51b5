//! What every `Store` backend must do, written once against the trait: each
//! backend's tests run the whole suite with `store_conformance!` (SQLite in
//! `sqlite/`; PostgreSQL will run the same cases). Time is a parameter here too:
//! every case passes its own clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{
    AuditEvent, AuditQuery, DeviceAdded, DeviceRemoval, PreferredMethod, SecurityKeyRecord, SessionRecord,
    Store, StoredAppPassword, Subject, TransientKind,
};
use crate::factors::lockout::LockoutPolicy;
use crate::factors::SignInMethod;

/// Adds a device that must fit; its id.
async fn add(store: &dyn Store, user: &str, name: &str, secret: Vec<u8>, step: u64, now: SystemTime) -> i64 {
    let limit = 10;
    match store
        .add_totp_device(user, name, secret, step, now, limit)
        .await
        .unwrap()
    {
        DeviceAdded::Added(id) => id,
        other => panic!("{name} was not added: {other:?}"),
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

pub async fn one_step_is_accepted_once_however_many_ask_at_the_same_time(store: Arc<dyn Store>) {
    let id = add(&*store, "alice", "Phone", vec![0], 10, at(0)).await;
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.accept_totp_step("alice", id, 11, at(1)).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for racer in racers {
        wins += usize::from(racer.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert!(
        !store.accept_totp_step("alice", id, 9, at(2)).await.unwrap(),
        "older steps never pass"
    );
}

pub async fn recovery_codes_work_once_and_die_when_replaced(store: Arc<dyn Store>) {
    store
        .replace_recovery_codes("alice", vec!["h1".into(), "h2".into()], at(0))
        .await
        .unwrap();
    let codes = store.unused_recovery_codes("alice").await.unwrap();
    assert_eq!(codes.len(), 2);
    assert!(store
        .use_recovery_code("alice", codes[0].id, at(1))
        .await
        .unwrap());
    assert!(!store
        .use_recovery_code("alice", codes[0].id, at(2))
        .await
        .unwrap());
    assert!(
        !store.use_recovery_code("bob", codes[1].id, at(2)).await.unwrap(),
        "not bob's code"
    );
    assert_eq!(store.unused_recovery_codes("alice").await.unwrap().len(), 1);
    store
        .replace_recovery_codes("alice", vec!["h3".into()], at(3))
        .await
        .unwrap();
    let left = store.unused_recovery_codes("alice").await.unwrap();
    assert_eq!(left.iter().map(|c| c.phc.as_str()).collect::<Vec<_>>(), ["h3"]);
    assert!(!store
        .use_recovery_code("alice", codes[1].id, at(4))
        .await
        .unwrap());
}

pub async fn a_first_device_is_stored_once(store: Arc<dyn Store>) {
    let first = store
        .add_totp_device("alice", "Phone", vec![1], 5, at(0), 1)
        .await
        .unwrap();
    assert!(matches!(first, DeviceAdded::Added(_)));
    let second = store
        .add_totp_device("alice", "Tablet", vec![2], 6, at(1), 1)
        .await
        .unwrap();
    assert_eq!(second, DeviceAdded::LimitReached, "another enrolment came first");
    assert_eq!(store.totp_devices("alice").await.unwrap().len(), 1);
    assert_eq!(store.last_totp_step("alice").await.unwrap(), Some(5));
}

/// Many attempts at once: no more than the limit get through the check.
pub async fn parallel_charges_never_pass_more_than_the_limit(store: Arc<dyn Store>) {
    let policy = LockoutPolicy::default();
    let attempts = (0..200).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .charge_attempt(&[(Subject::User("alice"), policy)], at(1))
                .await
                .unwrap()
                .is_ok()
        })
    });
    let mut allowed = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        allowed += usize::from(attempt.await.unwrap());
    }
    assert_eq!(allowed, 10);
}

pub async fn an_apps_mfa_default_is_dated_from_its_last_change(store: Arc<dyn Store>) {
    assert_eq!(
        store.mfa_default_since("wiki", "off", at(0)).await.unwrap(),
        at(0)
    );
    assert_eq!(
        store.mfa_default_since("wiki", "off", at(5)).await.unwrap(),
        at(0),
        "unchanged"
    );
    assert_eq!(
        store.mfa_default_since("crm", "off", at(6)).await.unwrap(),
        at(6),
        "per app"
    );
    assert_eq!(
        store.mfa_default_since("wiki", "required", at(9)).await.unwrap(),
        at(9)
    );
    assert_eq!(
        store.mfa_default_since("wiki", "required", at(20)).await.unwrap(),
        at(9)
    );
}

pub async fn sessions_are_found_by_hash_touched_and_revoked(store: Arc<dyn Store>) {
    let record = SessionRecord {
        id_hash: [7; 32],
        user: "alice".into(),
        app: "wiki".into(),
        created_at: at(0),
        last_seen_at: at(0),
        second_factor_at: Some(at(0)),
        method: SignInMethod::Totp,
        revoked: false,
        mfa_opted_in: false,
    };
    store.insert_session(&record).await.unwrap();
    store
        .insert_session(&SessionRecord {
            id_hash: [8; 32],
            ..record.clone()
        })
        .await
        .unwrap();
    assert_eq!(store.session([7; 32]).await.unwrap().as_ref(), Some(&record));
    store
        .touch_sessions(&[([7; 32], at(60)), ([8; 32], at(70))])
        .await
        .unwrap();
    store.touch_sessions(&[([7; 32], at(30))]).await.unwrap();
    assert_eq!(
        store.session([7; 32]).await.unwrap().unwrap().last_seen_at,
        at(60)
    );
    assert_eq!(
        store.session([8; 32]).await.unwrap().unwrap().last_seen_at,
        at(70)
    );
    store
        .touch_sessions(&[([8; 32], at(90)), ([8; 32], at(80))])
        .await
        .unwrap();
    assert_eq!(
        store.session([8; 32]).await.unwrap().unwrap().last_seen_at,
        at(90),
        "the latest of a batch"
    );
    store.revoke_session([7; 32]).await.unwrap();
    assert!(store.session([7; 32]).await.unwrap().unwrap().revoked);
    assert_eq!(store.revoke_user_sessions("alice").await.unwrap(), 1);
    assert!(store.session([8; 32]).await.unwrap().unwrap().revoked);
    assert_eq!(store.session([9; 32]).await.unwrap(), None);
}

pub async fn an_opened_enrolment_is_used_up_by_the_device_it_lets_in(store: Arc<dyn Store>) {
    assert_eq!(store.enrolment_open_until("alice").await.unwrap(), None);
    store.open_enrolment("alice", at(3600), at(0)).await.unwrap();
    assert_eq!(store.enrolment_open_until("alice").await.unwrap(), Some(at(3600)));
    add(&*store, "alice", "Phone", vec![1], 5, at(10)).await;
    assert_eq!(store.enrolment_open_until("alice").await.unwrap(), None);
}

pub async fn devices_are_renamed_and_removed_only_by_their_owner(store: Arc<dyn Store>) {
    let phone = add(&*store, "alice", "Phone", vec![1], 5, at(0)).await;
    add(&*store, "alice", "Tablet", vec![2], 6, at(0)).await;
    assert!(
        !store
            .rename_device("alice", phone, "Tablet", vec![3])
            .await
            .unwrap(),
        "names are unique"
    );
    assert!(
        !store.rename_device("bob", phone, "Mine", vec![3]).await.unwrap(),
        "not bob's"
    );
    assert!(store
        .rename_device("alice", phone, "Work phone", vec![9])
        .await
        .unwrap());
    let devices = store.totp_devices("alice").await.unwrap();
    assert_eq!(
        (devices[0].name.as_str(), devices[0].sealed_secret.as_slice()),
        ("Work phone", &[9][..])
    );
    assert!(
        !store.reseal_device("bob", phone, vec![5]).await.unwrap(),
        "not bob's"
    );
    assert!(store.reseal_device("alice", phone, vec![8]).await.unwrap());
    let resealed = store.totp_devices("alice").await.unwrap();
    assert_eq!(
        (resealed[0].name.as_str(), resealed[0].sealed_secret.as_slice()),
        ("Work phone", &[8][..])
    );
    let remove = |user: &'static str, id: i64, keep_one: bool| {
        let store = store.clone();
        async move { store.remove_device(user, id, keep_one).await.unwrap() }
    };
    assert_eq!(remove("bob", phone, false).await, DeviceRemoval::NoSuchDevice);
    assert_eq!(remove("alice", phone, true).await, DeviceRemoval::Removed);
    assert_eq!(store.totp_devices("alice").await.unwrap().len(), 1);
    let tablet = store.totp_devices("alice").await.unwrap()[0].id;
    assert_eq!(remove("alice", tablet, true).await, DeviceRemoval::LastOne);
    assert_eq!(remove("alice", tablet, false).await, DeviceRemoval::Removed);
}

pub async fn a_reset_removes_every_factor_revokes_sessions_and_forgets_browsers(store: Arc<dyn Store>) {
    add(&*store, "alice", "Phone", vec![1], 5, at(0)).await;
    store
        .replace_recovery_codes("alice", vec!["h".into()], at(0))
        .await
        .unwrap();
    let session = SessionRecord {
        id_hash: [1; 32],
        user: "alice".into(),
        app: "wiki".into(),
        created_at: at(0),
        last_seen_at: at(0),
        second_factor_at: Some(at(0)),
        method: SignInMethod::Totp,
        revoked: false,
        mfa_opted_in: false,
    };
    store.insert_session(&session).await.unwrap();
    store
        .trust_device([2; 32], "alice", at(0), at(1000))
        .await
        .unwrap();
    store
        .set_email_address("alice", "alice@example.org", at(0))
        .await
        .unwrap();
    store
        .set_preferred_method("alice", PreferredMethod::Email, at(0))
        .await
        .unwrap();
    store
        .set_phone_number("alice", Some("+46701234567"), at(0))
        .await
        .unwrap();
    add(&*store, "alice", "Tablet", vec![2], 6, at(1)).await;
    assert_eq!(
        store.phone_number("alice").await.unwrap().as_deref(),
        Some("+46701234567")
    );
    assert_eq!(
        (
            store.email_address("alice").await.unwrap().as_deref(),
            store.preferred_method("alice").await.unwrap()
        ),
        (Some("alice@example.org"), Some(PreferredMethod::Email)),
        "a new device keeps the user's other choices"
    );
    assert!(store.trusted_device([2; 32], at(1)).await.unwrap().is_some());
    assert!(
        store.trusted_device([2; 32], at(1000)).await.unwrap().is_none(),
        "a remembered browser expires"
    );
    let before = store.users().await.unwrap();
    assert_eq!((before[0].devices, before[0].recovery_codes_left), (2, 1));
    store.reset_second_factor("alice").await.unwrap();
    let after = store.users().await.unwrap();
    assert_eq!((after[0].devices, after[0].recovery_codes_left), (0, 0));
    assert!(store.session([1; 32]).await.unwrap().unwrap().revoked);
    assert!(
        store.trusted_device([2; 32], at(1)).await.unwrap().is_none(),
        "remembered browsers are forgotten"
    );
    assert_eq!(
        store.email_address("alice").await.unwrap(),
        None,
        "the e-mail method goes too"
    );
    assert_eq!(store.preferred_method("alice").await.unwrap(), None);
    assert_eq!(
        store.phone_number("alice").await.unwrap(),
        None,
        "the text-message method goes too"
    );
    // A number is changed and removed by its owner, and never names another user's.
    store
        .set_phone_number("bob", Some("+14155550100"), at(2))
        .await
        .unwrap();
    store
        .set_phone_number("bob", Some("+14155550199"), at(3))
        .await
        .unwrap();
    assert_eq!(
        store.phone_number("bob").await.unwrap().as_deref(),
        Some("+14155550199")
    );
    assert_eq!(store.phone_number("alice").await.unwrap(), None);
    store.set_phone_number("bob", None, at(4)).await.unwrap();
    assert_eq!(store.phone_number("bob").await.unwrap(), None);
}

/// Enrolments finishing at once store no more devices than the limit, and never two
/// of one name; removals at once that must keep one keep one.
pub async fn device_limits_hold_under_any_race(store: Arc<dyn Store>) {
    let adds = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let name = if i < 4 {
                format!("Device {i}")
            } else {
                "Device 0".to_owned()
            };
            store
                .add_totp_device("alice", &name, vec![1], 5, at(0), 3)
                .await
                .unwrap()
        })
    });
    let mut added = 0;
    for add in adds.collect::<Vec<_>>() {
        added += usize::from(matches!(add.await.unwrap(), DeviceAdded::Added(_)));
    }
    let devices = store.totp_devices("alice").await.unwrap();
    assert_eq!((added, devices.len()), (3, 3));
    let names: std::collections::BTreeSet<_> = devices.iter().map(|d| d.name.clone()).collect();
    assert_eq!(names.len(), 3, "names stay unique");

    let removals = devices.into_iter().map(|d| {
        let store = store.clone();
        tokio::spawn(async move { store.remove_device("alice", d.id, true).await.unwrap() })
    });
    for removal in removals.collect::<Vec<_>>() {
        removal.await.unwrap();
    }
    assert_eq!(store.totp_devices("alice").await.unwrap().len(), 1, "one is kept");
}

pub async fn failure_counters_are_kept_apart_and_charged_both_or_neither(store: Arc<dyn Store>) {
    let policy = LockoutPolicy::default();
    let alice = || [(Subject::User("alice"), policy)];
    for i in 0..10 {
        store.charge_attempt(&alice(), at(i)).await.unwrap().unwrap();
    }
    assert!(
        store.charge_attempt(&alice(), at(10)).await.unwrap().is_err(),
        "locked: the attempt is refused and not counted"
    );
    let address = Subject::Address("192.0.2.7".parse().unwrap());
    let both = [(Subject::User("alice"), policy), (address.clone(), policy)];
    assert!(store.charge_attempt(&both, at(10)).await.unwrap().is_err());
    assert_eq!(store.failures(address.clone()).await.unwrap().count, 0, "neither");
    let by_address = [(address.clone(), policy)];
    store.charge_attempt(&by_address, at(10)).await.unwrap().unwrap();
    let second = store.charge_attempt(&by_address, at(11)).await.unwrap().unwrap();
    store.refund_attempt(&by_address, second).await.unwrap();
    assert_eq!(
        store.failures(address).await.unwrap().count,
        1,
        "the refund took back one"
    );
    assert_eq!(store.failures(Subject::User("alice")).await.unwrap().count, 10);
    assert_eq!(store.failures(Subject::User("bob")).await.unwrap().count, 0);
    store.reset_failures(Subject::User("alice")).await.unwrap();
    assert_eq!(
        store.failures(Subject::User("alice")).await.unwrap(),
        crate::factors::lockout::FailureRecord::default()
    );
}

pub async fn the_audit_trail_reads_newest_first_by_subject_and_time(store: Arc<dyn Store>) {
    let event = |n: u64, subject: &str| AuditEvent {
        at: at(n),
        event: "login_ok".into(),
        actor: subject.into(),
        subject: subject.into(),
        app: Some("wiki".into()),
        client: Some("192.0.2.1".into()),
        outcome: "ok".into(),
    };
    for (n, who) in [(1, "alice"), (2, "bob"), (3, "alice")] {
        store.record(&event(n, who)).await.unwrap();
    }
    let query = AuditQuery {
        subject: Some("alice".into()),
        since: None,
        limit: 10,
    };
    assert_eq!(
        store.audit(&query).await.unwrap(),
        [event(3, "alice"), event(1, "alice")]
    );
    let since = AuditQuery {
        subject: None,
        since: Some(at(2)),
        limit: 10,
    };
    assert_eq!(
        store.audit(&since).await.unwrap(),
        [event(3, "alice"), event(2, "bob")]
    );
    let one = AuditQuery { limit: 1, ..since };
    assert_eq!(store.audit(&one).await.unwrap().len(), 1);
}

pub async fn transient_state_is_replaced_by_version_and_taken_once(store: Arc<dyn Store>) {
    let kind = TransientKind::Challenge;
    let key = [7; 32];
    store
        .put_transient(kind, key, vec![1], at(100), at(0))
        .await
        .unwrap();
    let read = store.transient(kind, key, at(0)).await.unwrap().unwrap();
    assert_eq!(read.sealed, [1]);
    assert!(
        store
            .transient(TransientKind::WithheldAnswer, key, at(0))
            .await
            .unwrap()
            .is_none(),
        "kinds apart"
    );
    assert!(store
        .replace_transient(kind, key, read.version, vec![2])
        .await
        .unwrap());
    assert!(
        !store
            .replace_transient(kind, key, read.version, vec![3])
            .await
            .unwrap(),
        "a writer that read the old version loses"
    );
    assert_eq!(
        store.transient(kind, key, at(0)).await.unwrap().unwrap().sealed,
        [2]
    );
    assert!(
        store.transient(kind, key, at(100)).await.unwrap().is_none(),
        "expired"
    );
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_transient(kind, key, at(1)).await.unwrap() })
        })
        .collect();
    let mut taken = Vec::new();
    for racer in racers {
        taken.extend(racer.await.unwrap());
    }
    assert_eq!(taken, [vec![2]], "one request takes it");
    assert!(store.transient(kind, key, at(1)).await.unwrap().is_none());
    store
        .put_transient(kind, key, vec![4], at(5), at(1))
        .await
        .unwrap();
    assert!(
        store.take_transient(kind, key, at(5)).await.unwrap().is_none(),
        "an expired entry is not handed out"
    );
}

/// Runs every case of the suite against one backend: `$open` is an expression
/// that gives a fresh, empty store and whatever keeps it alive, as a pair.
pub async fn app_passwords_are_kept_per_user_within_limits_and_removed_by_their_owner(store: Arc<dyn Store>) {
    let entry = |user: &str, app: &str, name: &str| StoredAppPassword {
        id: 0,
        user: user.to_owned(),
        app: app.to_owned(),
        name: name.to_owned(),
        phc: format!("phc of {name}"),
        sealed_secret: (app == "console").then(|| vec![7, 8]),
        created_at: at(0),
        last_used_at: None,
        app_refused: false,
    };
    let first = store
        .add_app_password(&entry("alice", "wiki", "Thunderbird"), 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .add_app_password(&entry("alice", "wiki", "Thunderbird"), 2)
            .await
            .unwrap(),
        None,
        "one name per client of an app"
    );
    let second = store
        .add_app_password(&entry("alice", "console", "Thunderbird"), 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .add_app_password(&entry("alice", "wiki", "git"), 2)
            .await
            .unwrap(),
        None,
        "at most two"
    );
    store
        .add_app_password(&entry("bob", "wiki", "git"), 2)
        .await
        .unwrap()
        .unwrap();

    let alices = store.app_passwords(Some("alice")).await.unwrap();
    assert_eq!(alices.iter().map(|p| p.id).collect::<Vec<_>>(), [first, second]);
    assert_eq!(alices[1].sealed_secret.as_deref(), Some(&[7, 8][..]));
    assert_eq!(store.app_passwords(None).await.unwrap().len(), 3);

    store.note_app_password_use(second, at(5), true).await.unwrap();
    let used = &store.app_passwords(Some("alice")).await.unwrap()[1];
    assert_eq!((used.last_used_at, used.app_refused), (Some(at(5)), true));

    assert!(
        !store.remove_app_password("bob", first).await.unwrap(),
        "not bob's"
    );
    assert!(store.remove_app_password("alice", first).await.unwrap());
    assert!(!store.remove_app_password("alice", first).await.unwrap());
    store.reset_second_factor("alice").await.unwrap();
    assert!(
        store.app_passwords(Some("alice")).await.unwrap().is_empty(),
        "a reset takes them"
    );
    assert_eq!(store.app_passwords(None).await.unwrap().len(), 1);
}

fn key(user: &str, name: &str, credential_id: u8) -> SecurityKeyRecord {
    SecurityKeyRecord {
        id: 0,
        user: user.to_owned(),
        name: name.to_owned(),
        credential_id: vec![credential_id; 16],
        rp_id: "intranet.example".to_owned(),
        credential: b"{\"counter\": 0}".to_vec(),
        created_at: at(0),
        last_used_at: None,
    }
}

/// Security keys share the device limit with apps, are registered to one user
/// only, and keep a user's last device when asked to (with apps counted too).
pub async fn security_keys_count_with_apps_are_unique_and_removed_by_their_owner(store: Arc<dyn Store>) {
    let app = add(&*store, "alice", "Phone", vec![1], 5, at(0)).await;
    let DeviceAdded::Added(first) = store
        .add_security_key(&key("alice", "YubiKey", 1), 3)
        .await
        .unwrap()
    else {
        panic!("the first key fits");
    };
    assert_eq!(
        store
            .add_security_key(&key("alice", "YubiKey", 2), 3)
            .await
            .unwrap(),
        DeviceAdded::NameTaken
    );
    assert_eq!(
        store
            .add_security_key(&key("bob", "Mine now", 1), 3)
            .await
            .unwrap(),
        DeviceAdded::CredentialTaken,
        "a key is registered to one user only"
    );
    assert!(matches!(
        store
            .add_security_key(&key("alice", "Backup key", 3), 3)
            .await
            .unwrap(),
        DeviceAdded::Added(_)
    ));
    assert_eq!(
        store
            .add_security_key(&key("alice", "Third key", 4), 3)
            .await
            .unwrap(),
        DeviceAdded::LimitReached,
        "an app and two keys are three devices"
    );
    assert_eq!(
        store
            .add_totp_device("alice", "Tablet", vec![2], 6, at(1), 3)
            .await
            .unwrap(),
        DeviceAdded::LimitReached,
        "apps count the keys too"
    );

    assert!(store
        .security_key_used(
            "alice",
            first,
            b"{\"counter\": 0}",
            b"{\"counter\": 7}".to_vec(),
            at(5)
        )
        .await
        .unwrap());
    assert!(!store
        .security_key_used("bob", first, b"{\"counter\": 7}", b"{}".to_vec(), at(5))
        .await
        .unwrap());
    assert!(
        !store
            .security_key_used(
                "alice",
                first,
                b"{\"counter\": 0}",
                b"{\"counter\": 1}".to_vec(),
                at(6)
            )
            .await
            .unwrap(),
        "a use checked against the record before the last one is not recorded"
    );
    let keys = store.security_keys("alice").await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0].credential.as_slice(), keys[0].last_used_at),
        (&b"{\"counter\": 7}"[..], Some(at(5)))
    );
    assert_eq!(keys[0].rp_id, "intranet.example");

    assert_eq!(
        store.remove_security_key("bob", first, true).await.unwrap(),
        DeviceRemoval::NoSuchDevice
    );
    assert_eq!(
        store.remove_security_key("alice", first, true).await.unwrap(),
        DeviceRemoval::Removed
    );
    assert_eq!(
        store.remove_device("alice", app, true).await.unwrap(),
        DeviceRemoval::Removed,
        "the key left keeps the user protected"
    );
    let last = store.security_keys("alice").await.unwrap()[0].id;
    assert_eq!(
        store.remove_security_key("alice", last, true).await.unwrap(),
        DeviceRemoval::LastOne
    );
    let listed = store.users().await.unwrap();
    let alice = listed.iter().find(|u| u.name == "alice").unwrap();
    assert_eq!(alice.devices, 1, "admins see keys among the devices");
    store.reset_second_factor("alice").await.unwrap();
    assert!(
        store.security_keys("alice").await.unwrap().is_empty(),
        "a reset removes keys"
    );
}

/// A browser or network is known to the user it was seen with, for as long as
/// asked; a user with none is on their first sign-in.
pub async fn sign_in_signals_are_known_per_user_kind_and_age(store: Arc<dyn Store>) {
    let home = [1; 32];
    assert_eq!(
        store.signal_seen("alice", "network", home, at(0)).await.unwrap(),
        None
    );
    store.note_signal("alice", "network", home, at(10)).await.unwrap();
    assert_eq!(
        store.signal_seen("alice", "network", home, at(5)).await.unwrap(),
        Some(true)
    );
    assert_eq!(
        store.signal_seen("alice", "network", home, at(11)).await.unwrap(),
        Some(false),
        "not seen since then"
    );
    assert_eq!(
        store.signal_seen("alice", "browser", home, at(0)).await.unwrap(),
        Some(false)
    );
    assert_eq!(
        store
            .signal_seen("alice", "network", [2; 32], at(0))
            .await
            .unwrap(),
        Some(false)
    );
    assert_eq!(
        store.signal_seen("bob", "network", home, at(0)).await.unwrap(),
        None
    );
    store.note_signal("alice", "network", home, at(20)).await.unwrap();
    assert_eq!(
        store.signal_seen("alice", "network", home, at(15)).await.unwrap(),
        Some(true)
    );
    store
        .note_signal("alice", "browser", [3; 32], at(30))
        .await
        .unwrap();
    store.forget_signals("alice", at(25)).await.unwrap();
    assert_eq!(
        store.signal_seen("alice", "network", home, at(0)).await.unwrap(),
        Some(false),
        "forgotten once older than asked"
    );
    assert_eq!(
        store
            .signal_seen("alice", "browser", [3; 32], at(0))
            .await
            .unwrap(),
        Some(true)
    );
}

macro_rules! store_conformance {
    ($open:expr) => {
        store_conformance!(@cases $open;
            one_step_is_accepted_once_however_many_ask_at_the_same_time,
            recovery_codes_work_once_and_die_when_replaced,
            a_first_device_is_stored_once,
            parallel_charges_never_pass_more_than_the_limit,
            an_apps_mfa_default_is_dated_from_its_last_change,
            sessions_are_found_by_hash_touched_and_revoked,
            an_opened_enrolment_is_used_up_by_the_device_it_lets_in,
            devices_are_renamed_and_removed_only_by_their_owner,
            a_reset_removes_every_factor_revokes_sessions_and_forgets_browsers,
            device_limits_hold_under_any_race,
            failure_counters_are_kept_apart_and_charged_both_or_neither,
            the_audit_trail_reads_newest_first_by_subject_and_time,
            transient_state_is_replaced_by_version_and_taken_once,
            app_passwords_are_kept_per_user_within_limits_and_removed_by_their_owner,
            security_keys_count_with_apps_are_unique_and_removed_by_their_owner,
            sign_in_signals_are_known_per_user_kind_and_age,
        );
    };
    (@cases $open:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let (_keep, store) = $open;
                $crate::store::conformance::$case(store).await;
            }
        )*
    };
}
pub(crate) use store_conformance;
