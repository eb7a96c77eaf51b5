//! The gateway's own login page, for apps with no login of their own: passwords are
//! checked against argon2id hashes in the users file, on a bounded pool so that a
//! burst of logins never stalls proxying.

use std::sync::OnceLock;

use http::StatusCode;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::answer::{Answer, Label};
use super::return_path::safe_return_path;
use super::views::{self, texts};
use super::{challenge, forms, Request};
use crate::auth::challenge::{random_token, Purpose};
use crate::auth::unusual::Gate;
use crate::auth::{cookies, Attempt, AuditKind, Services};
use crate::factors::{argon, SignInMethod};
use crate::policy::Authentication;

/// The login form's own CSRF cookie (double submit: there is no session yet).
fn csrf_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-portvakt-login"
    } else {
        "portvakt-login"
    }
}

fn csrf_cookie(token: &str, secure: bool) -> String {
    cookie::Cookie::build((csrf_cookie_name(secure), token.to_owned()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(cookie::SameSite::Strict)
        .build()
        .to_string()
}

pub async fn serve(auth: &Services, req: &Request<'_>) -> Answer {
    let cookie_token = req.cookie(csrf_cookie_name(req.secure));
    if !req.is_post() {
        let return_to = req.query_value("return").unwrap_or_else(|| "/".to_owned());
        return form(req, &return_to, "", None);
    }
    let Some(fields) = forms::read(req) else {
        return req.refused_form();
    };
    let field = |name: &str| forms::value(&fields, name);
    let token_ok = match (cookie_token, field("csrf")) {
        (Some(a), Some(b)) => bool::from(a.as_bytes().ct_eq(b.as_bytes())),
        _ => false,
    };
    if !token_ok {
        return req.refused_form();
    }
    // One account however it is typed, as for the apps' own forms.
    let user = field("username").unwrap_or_default().trim().to_lowercase();
    let password = Zeroizing::new(field("password").unwrap_or_default().to_owned());
    let return_to = safe_return_path(field("return").unwrap_or("/")).to_owned();
    let t = texts(req.lang);

    let charged = match auth
        .attempt(&req.config.lockout, &user, req.client, req.now)
        .await
    {
        Ok(Attempt::Charged(charged)) => charged,
        Ok(Attempt::Locked(_)) => {
            auth.audit(
                AuditKind::LockedOut,
                &user,
                &req.app.name,
                req.client,
                "refused",
                req.now,
            )
            .await;
            let page = views::message(
                StatusCode::TOO_MANY_REQUESTS,
                req.lang,
                t.login_title,
                t.locked,
                None,
            );
            return Answer::page(page, Label::Locked);
        }
        Err(e) => return unavailable(req, &e),
    };
    let phc = req.config.users.get(&user).and_then(|u| u.password.clone());
    let verified = match check_password(auth, phc, password).await {
        Ok(verified) => verified,
        Err(e) => {
            // Not checked (the hashing queue is full): not a failure either.
            if let Err(e) = auth.refund(&req.config.lockout, &user, req.client, charged).await {
                tracing::error!(error = %e, "could not take back an unchecked attempt");
            }
            return unavailable(req, &e);
        }
    };
    if !verified {
        auth.audit(
            AuditKind::LoginFailed,
            &user,
            &req.app.name,
            req.client,
            "refused",
            req.now,
        )
        .await;
        let mut answer = form(req, &return_to, &user, Some(t.wrong_password));
        answer.label = Label::LoginFailed;
        return answer;
    }
    // The password alone never resets the failure counter: it would let a stolen
    // password clear the lockout on guessing the second factor. It takes back only
    // this attempt's charge.
    if let Err(e) = auth.refund(&req.config.lockout, &user, req.client, charged).await {
        return unavailable(req, &e);
    }
    auth.audit(
        AuditKind::LoginOk,
        &user,
        &req.app.name,
        req.client,
        "ok",
        req.now,
    )
    .await;
    let identity = Authentication {
        user: user.clone(),
        groups: req.config.users.groups(&user),
        second_factor_at: None,
        mfa_opted_in: auth.opted_in(&user).await,
        signed_in_at: req.now,
    };
    if req.app.policy.second_factor_at_sign_in(&identity) {
        let trust_cookie = req.cookie(cookies::trust_cookie_name(req.secure));
        if let Some(issued) = auth
            .remembered_sign_in(
                trust_cookie,
                &user,
                &req.app.name,
                req.client,
                req.now,
                req.secure,
            )
            .await
        {
            return Answer::redirect(&return_to, Label::LoginRemembered)
                .with_cookie(&cookies::set_session(&issued.cookie_value, req.secure));
        }
        return challenge::begin(
            auth,
            req.config,
            req.app,
            &user,
            Purpose::Return(return_to),
            req.client,
            req.secure,
            req.now,
        )
        .await
        .0;
    }
    // No second factor here; a sign-in that looks unusual is confirmed with an
    // e-mailed code first, as on every other kind of login.
    let browser = req.cookie(cookies::browser_cookie_name(req.secure));
    let signals = match auth
        .sign_in_gate(req.config, &user, browser, req.client, req.now)
        .await
    {
        Ok(Gate::Usual(signals)) => signals,
        Ok(Gate::Unusual(signals)) => {
            let purpose = Purpose::Return(return_to);
            let begun = challenge::begin_unusual(
                auth, req.config, req.app, &user, purpose, signals, req.secure, req.now,
            );
            return begun.await.0;
        }
        Err(e) => return unavailable(req, &e),
    };
    let browser = match auth
        .remember_sign_in(req.config, &user, signals.as_ref(), req.secure, req.now)
        .await
    {
        Ok(browser) => browser,
        Err(e) => return unavailable(req, &e),
    };
    match auth
        .sessions
        .start(&user, &req.app.name, SignInMethod::Password, req.now, req.secure)
        .await
    {
        Ok(issued) => {
            let answer = Answer::redirect(&return_to, Label::LoginPasswordOnly)
                .with_cookie(&cookies::set_session(&issued.cookie_value, req.secure));
            match browser {
                Some(cookie) => answer.with_cookie(&cookie),
                None => answer,
            }
        }
        Err(e) => unavailable(req, &e),
    }
}

fn form(req: &Request<'_>, return_to: &str, username: &str, error: Option<&str>) -> Answer {
    let token = random_token();
    let page = views::login(req.lang, &token, safe_return_path(return_to), username, error);
    Answer::page(page, Label::LoginPage).with_cookie(&csrf_cookie(&token, req.secure))
}

fn unavailable(req: &Request<'_>, e: &dyn std::fmt::Display) -> Answer {
    tracing::error!(error = %e, "gateway login failed");
    req.unavailable()
}

/// Verifies on the bounded pool. A user without a hash is checked against a dummy
/// one, so that the time taken does not tell whether the user exists.
async fn check_password(
    auth: &Services,
    phc: Option<String>,
    password: Zeroizing<String>,
) -> Result<bool, String> {
    auth.hashing
        .run(move || {
            let known = phc.is_some();
            let phc = phc.unwrap_or_else(|| dummy_hash().to_owned());
            let matched = argon::verify(password.as_bytes(), &phc);
            known && matched
        })
        .await
        .map_err(|e| e.to_string())
}

/// A hash of nothing, to spend the same effort on a user who has no hash.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| argon::hash(b"no such user").unwrap_or_default())
}
