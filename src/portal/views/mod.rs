//! Gateway pages: compiled askama templates, one message catalogue, embedded assets,
//! and the security headers every gateway response carries.

pub mod i18n;

use askama::Template;
use http::StatusCode;

use super::route::{self, ChallengePage, Route};
use crate::auth::Channel;
use crate::store::PreferredMethod;

pub use i18n::{event_label, texts, ErrorKind, Lang, Texts};

/// The path prefix reserved for the gateway on every app host.
pub const STYLESHEET: &str = include_str!("assets/portvakt.css");

/// The overlay script (`login.overlay`), served from the gateway's own path.
pub const OVERLAY_SCRIPT: &str = include_str!("assets/overlay.js");

/// The security-key pages' script (the WebAuthn ceremony).
pub const KEY_SCRIPT: &str = include_str!("assets/webauthn.js");

/// The key script's hash, as its tag's `integrity` and the pages' CSP name it:
/// the one script the gateway's pages may run.
pub fn key_script_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        use sha2::Digest;
        format!(
            "sha256-{}",
            data_encoding::BASE64.encode(&sha2::Sha256::digest(KEY_SCRIPT.as_bytes()))
        )
    })
}

/// The tag that adds the overlay script to an app's page: same-origin, checked by
/// its hash (Subresource Integrity), so the page runs exactly this script.
pub fn overlay_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        use sha2::Digest;
        let hash = data_encoding::BASE64.encode(&sha2::Sha384::digest(OVERLAY_SCRIPT.as_bytes()));
        format!(
            "<script src=\"{}\" integrity=\"sha384-{hash}\" defer></script>",
            super::route::Route::OverlayScript.path()
        )
    })
}

/// A response the gateway writes itself.
pub struct Page {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    lang: &'a str,
    title: &'a str,
    text: &'a str,
    detail: Option<&'a str>,
    reference_label: &'a str,
    reference: &'a str,
}

/// An error page; `detail` is an extra sentence for the user, `reference` ties the
/// page to the log line that has the cause.
pub fn error(status: StatusCode, kind: ErrorKind, lang: Lang, detail: Option<&str>, reference: &str) -> Page {
    let text = kind.text(lang);
    let page = ErrorPage {
        lang: lang.code(),
        title: text.title,
        text: text.text,
        detail,
        reference_label: i18n::reference_label(lang),
        reference,
    };
    let body = page.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "rendering an error page");
        format!("{} ({reference})\n", text.title)
    });
    Page {
        status,
        content_type: "text/html; charset=utf-8",
        body: body.into_bytes(),
    }
}

#[derive(Template)]
#[template(path = "enrol.html")]
struct EnrolPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Texts,
    qr_svg: &'a str,
    otpauth: &'a str,
    secret: &'a str,
    issuer: &'a str,
    account: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
    email_offer: Option<bool>,
    key_offer: bool,
}

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Texts,
    csrf: &'a str,
    error: Option<&'a str>,
    has_app: bool,
    email_to: Option<&'a str>,
    /// The user chose e-mail as the way offered first.
    email_first: bool,
    remember_days: Option<u64>,
    form_kept: bool,
    sms_to: Option<&'a str>,
    key: bool,
}

#[derive(Template)]
#[template(path = "sent-code.html")]
struct SentCodePage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Texts,
    csrf: &'a str,
    address: &'a str,
    error: Option<&'a str>,
    /// Where the code is posted.
    action: &'a str,
    /// Where "send a new code" posts.
    resend_action: &'a str,
    /// Why a code is asked (an unusual sign-in).
    note: Option<&'a str>,
    /// Signing in (with a resend button and the way back to the other methods), not
    /// confirming a new address.
    signing_in: bool,
    remember_days: Option<u64>,
}

/// Where to type the code sent to a new address (or number) to confirm it; the
/// form posts to `action`.
pub fn confirm_address(
    lang: Lang,
    csrf: &str,
    channel: Channel,
    address: &str,
    error: Option<&str>,
    action: &str,
) -> Page {
    sent_code_page(
        lang,
        csrf,
        channel,
        address,
        error,
        SentCodePurpose::ConfirmAddress { action },
    )
}

/// What the code typed on the sent-code page is for.
enum SentCodePurpose<'a> {
    /// Signing in; the browser may be remembered for so many days.
    SignIn { remember_days: Option<u64> },
    /// Proving that a new address (on the security info, or while enrolling) is the
    /// user's; the form posts to `action`.
    ConfirmAddress { action: &'a str },
    /// Confirming a sign-in that looks unusual.
    Unusual,
}

fn sent_code_page(
    lang: Lang,
    csrf: &str,
    channel: Channel,
    address: &str,
    error: Option<&str>,
    purpose: SentCodePurpose<'_>,
) -> Page {
    let t = texts(lang);
    let status = form_status(error.is_some(), StatusCode::UNPROCESSABLE_ENTITY);
    let (title, page, resend) = match channel {
        Channel::Email => (t.email_title, ChallengePage::Email, ChallengePage::EmailSend),
        Channel::TextMessage => (t.sms_title, ChallengePage::Sms, ChallengePage::SmsSend),
    };
    let (action, signing_in, remember_days, note) = match purpose {
        SentCodePurpose::SignIn { remember_days } => {
            (Route::Challenge(page).path(), true, remember_days, None)
        }
        SentCodePurpose::ConfirmAddress { action } => (action, false, None, None),
        SentCodePurpose::Unusual => (
            Route::Challenge(ChallengePage::Unusual).path(),
            true,
            None,
            Some(t.unusual_intro),
        ),
    };
    let resend = match purpose {
        SentCodePurpose::Unusual => ChallengePage::UnusualSend,
        _ => resend,
    };
    html(
        status,
        SentCodePage {
            lang: lang.code(),
            title,
            t,
            csrf,
            address,
            error,
            action,
            resend_action: Route::Challenge(resend).path(),
            signing_in,
            remember_days,
            note,
        }
        .render(),
    )
}

/// Where to type the code e-mailed to `address` (masked) to confirm a sign-in
/// that looks unusual.
pub fn unusual_sign_in(lang: Lang, csrf: &str, address: &str, error: Option<&str>) -> Page {
    sent_code_page(
        lang,
        csrf,
        Channel::Email,
        address,
        error,
        SentCodePurpose::Unusual,
    )
}

/// Where to type the code that was sent to `address` (masked) over `channel`.
/// `remember_days`: offer to remember the browser for that many days.
pub fn sent_code(
    lang: Lang,
    csrf: &str,
    channel: Channel,
    address: &str,
    error: Option<&str>,
    remember_days: Option<u64>,
) -> Page {
    sent_code_page(
        lang,
        csrf,
        channel,
        address,
        error,
        SentCodePurpose::SignIn { remember_days },
    )
}

#[derive(Template)]
#[template(path = "recovery.html")]
struct RecoveryPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Texts,
    csrf: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "passed.html")]
struct PassedPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Texts,
    csrf: &'a str,
    codes: Option<&'a [&'a str]>,
    codes_left: Option<usize>,
}

#[derive(Template)]
#[template(path = "print.html")]
struct PrintPage<'a> {
    lang: &'a str,
    t: &'a Texts,
    issuer: &'a str,
    account: &'a str,
    codes: &'a [&'a str],
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    lang: &'a str,
    title: &'a str,
    text: &'a str,
    link: Option<(&'a str, &'a str)>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Texts,
    csrf: &'a str,
    return_to: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

/// The gateway's own login page, for apps without one.
pub fn login(lang: Lang, csrf: &str, return_to: &str, username: &str, error: Option<&str>) -> Page {
    let t = texts(lang);
    let status = form_status(error.is_some(), StatusCode::UNAUTHORIZED);
    html(
        status,
        LoginPage {
            lang: lang.code(),
            title: t.login_title,
            t,
            csrf,
            return_to,
            username,
            error,
        }
        .render(),
    )
}

/// One device on the security-info page.
pub struct DeviceRow {
    pub id: i64,
    pub name: String,
    pub added: String,
    pub last_used: String,
}

/// One app password on the security-info or admin page (never the password).
pub struct AppPasswordRow {
    pub id: i64,
    pub user: String,
    pub app: String,
    /// The client it was made for.
    pub name: String,
    pub added: String,
    pub last_used: String,
    /// The app refused the password sent on with it.
    pub refused: bool,
}

/// One event on the security-info page.
pub struct ActivityRow {
    pub when: String,
    pub what: String,
    pub client: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Texts,
    user: &'a str,
    devices: &'a [DeviceRow],
    keys: &'a [DeviceRow],
    can_add_key: bool,
    codes_left: usize,
    activity: &'a [ActivityRow],
    csrf: &'a str,
    opt_in: Option<bool>,
    can_opt_out: bool,
    email: Option<&'a str>,
    can_add_email: bool,
    phone: Option<&'a str>,
    can_add_phone: bool,
    default_method: Option<PreferredMethod>,
    app_passwords: &'a [AppPasswordRow],
    app_passwords_here: Option<bool>,
}

/// What the security-info page shows.
pub struct Account<'a> {
    pub user: &'a str,
    pub devices: &'a [DeviceRow],
    /// Security keys and passkeys.
    pub keys: &'a [DeviceRow],
    /// Offer to add a security key (the deployment allows them).
    pub can_add_key: bool,
    pub codes_left: usize,
    pub activity: &'a [ActivityRow],
    pub csrf: &'a str,
    /// For an app where the second factor is optional: whether the user turned it on.
    pub opt_in: Option<bool>,
    pub can_opt_out: bool,
    /// The user's address, masked, if the users file has one.
    pub email: Option<&'a str>,
    /// Offer to add (and confirm) an address for e-mailed codes.
    pub can_add_email: bool,
    /// The user's number for codes by text message, masked, where they are used.
    pub phone: Option<&'a str>,
    /// Offer to add (or change, and confirm) a number for codes by text message.
    pub can_add_phone: bool,
    /// With more than one way in: the one offered first.
    pub default_method: Option<PreferredMethod>,
    pub app_passwords: &'a [AppPasswordRow],
    /// This app takes app passwords (`Some(true)`: it is a Basic app, and the
    /// user's own password there goes with each).
    pub app_passwords_here: Option<bool>,
}

/// The user's security info: their methods, recovery codes, sessions and activity.
pub fn account(lang: Lang, page: &Account<'_>) -> Page {
    let t = texts(lang);
    html(
        StatusCode::OK,
        AccountPage {
            lang: lang.code(),
            title: t.account_title,
            t,
            user: page.user,
            devices: page.devices,
            keys: page.keys,
            can_add_key: page.can_add_key,
            codes_left: page.codes_left,
            activity: page.activity,
            csrf: page.csrf,
            opt_in: page.opt_in,
            can_opt_out: page.can_opt_out,
            email: page.email,
            can_add_email: page.can_add_email,
            phone: page.phone,
            can_add_phone: page.can_add_phone,
            default_method: page.default_method,
            app_passwords: page.app_passwords,
            app_passwords_here: page.app_passwords_here,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "app-password.html")]
struct AppPasswordMadePage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Texts,
    user: &'a str,
    client: &'a str,
    password: &'a str,
}

/// A new app password, shown this once, with how to use it.
pub fn app_password_made(lang: Lang, user: &str, client: &str, password: &str) -> Page {
    let t = texts(lang);
    html(
        StatusCode::OK,
        AppPasswordMadePage {
            lang: lang.code(),
            title: t.app_password_made_title,
            t,
            user,
            client,
            password,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage<'a> {
    lang: &'a str,
    title: &'a str,
    text: &'a str,
    action: &'a str,
    csrf: &'a str,
    id: i64,
    confirm: &'a str,
    cancel: &'a str,
}

/// Asks the user to confirm removing device `id` from the security info.
/// What a removal confirmed on its page removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    App,
    Key,
}

pub fn confirm_removal(lang: Lang, csrf: &str, what: Removal, id: i64) -> Page {
    let t = texts(lang);
    let (title, text, page) = match what {
        Removal::App => (
            t.remove_confirm_title,
            t.remove_confirm_text,
            route::AccountPage::RemoveDeviceConfirm,
        ),
        Removal::Key => (
            t.key_remove_title,
            t.key_remove_text,
            route::AccountPage::RemoveKeyConfirm,
        ),
    };
    html(
        StatusCode::OK,
        ConfirmPage {
            lang: lang.code(),
            title,
            text,
            action: Route::Account(page).path(),
            csrf,
            id,
            confirm: t.remove_button,
            cancel: t.cancel,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "new-codes.html")]
struct NewCodesPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Texts,
    codes: &'a [&'a str],
    download: &'a str,
}

/// Freshly made recovery codes, with a download that needs no second request.
pub fn new_codes(lang: Lang, issuer: &str, account: &str, codes: &[&str]) -> Page {
    let t = texts(lang);
    let file = String::from_utf8(codes_file(issuer, account, codes).body).unwrap_or_default();
    let download: String =
        percent_encoding::utf8_percent_encode(&file, percent_encoding::NON_ALPHANUMERIC).to_string();
    html(
        StatusCode::OK,
        NewCodesPage {
            lang: lang.code(),
            title: t.codes_title,
            t,
            codes,
            download: &download,
        }
        .render(),
    )
}

/// One user on the admin page.
pub struct AdminUserRow {
    pub name: String,
    /// The names of the user's authenticator apps.
    pub devices: String,
    /// The user's address, masked; empty without one.
    pub email: String,
    pub codes_left: usize,
    pub last_used: String,
    pub locked: bool,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Texts,
    users: &'a [AdminUserRow],
    app_passwords: &'a [AppPasswordRow],
    audit: &'a [ActivityRow],
    query: &'a str,
    csrf: &'a str,
    notice: Option<&'a str>,
}

/// The admin page: users (filtered by `query`), actions on them, and the audit trail.
pub fn admin(
    lang: Lang,
    users: &[AdminUserRow],
    app_passwords: &[AppPasswordRow],
    audit: &[ActivityRow],
    query: &str,
    csrf: &str,
    notice: Option<&str>,
) -> Page {
    let t = texts(lang);
    html(
        StatusCode::OK,
        AdminPage {
            lang: lang.code(),
            title: t.admin_title,
            t,
            users,
            app_passwords,
            audit,
            query,
            csrf,
            notice,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "admin-confirm.html")]
struct AdminConfirmPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Texts,
    users: &'a [String],
    csrf: &'a str,
    error: Option<&'a str>,
}

/// Asks the admin to confirm resetting `users` with a code of their own.
pub fn admin_confirm(lang: Lang, users: &[String], csrf: &str, error: Option<&str>) -> Page {
    let t = texts(lang);
    let status = form_status(error.is_some(), StatusCode::UNPROCESSABLE_ENTITY);
    html(
        status,
        AdminConfirmPage {
            lang: lang.code(),
            title: t.admin_confirm_title,
            t,
            users,
            csrf,
            error,
        }
        .render(),
    )
}

/// What the enrolment page shows.
pub struct Enrolment<'a> {
    pub otpauth: &'a str,
    pub secret: &'a str,
    pub issuer: &'a str,
    pub account: &'a str,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
    /// Offer to give an e-mail address for codes: `Some(true)` instead of the app
    /// (an e-mailed code may stand alone), `Some(false)` beside it.
    pub email_offer: Option<bool>,
    /// Offer a security key or passkey instead of the app.
    pub key_offer: bool,
}

/// A form page is 200, or `rejected` when it is shown again with an error.
fn form_status(has_error: bool, rejected: StatusCode) -> StatusCode {
    if has_error {
        rejected
    } else {
        StatusCode::OK
    }
}

fn html(status: StatusCode, rendered: Result<String, askama::Error>) -> Page {
    match rendered {
        Ok(body) => Page {
            status,
            content_type: "text/html; charset=utf-8",
            body: body.into_bytes(),
        },
        Err(e) => {
            tracing::error!(error = %e, "rendering a page");
            Page {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                content_type: "text/plain; charset=utf-8",
                body: b"The page could not be shown.\n".to_vec(),
            }
        }
    }
}

pub fn enrol(lang: Lang, page: &Enrolment<'_>) -> Page {
    let t = texts(lang);
    let qr = qr_svg(page.otpauth);
    let status = form_status(page.error.is_some(), StatusCode::UNPROCESSABLE_ENTITY);
    html(
        status,
        EnrolPage {
            lang: lang.code(),
            title: t.enrol_title,
            t,
            qr_svg: &qr,
            otpauth: page.otpauth,
            secret: page.secret,
            issuer: page.issuer,
            account: page.account,
            csrf: page.csrf,
            error: page.error,
            email_offer: page.email_offer,
            key_offer: page.key_offer,
        }
        .render(),
    )
}

/// What the verification page offers, beside its form token and error.
pub struct VerifyOffer<'a> {
    /// The app's code (the user has an app).
    pub has_app: bool,
    /// A code e-mailed to this address (masked), if allowed.
    pub email_to: Option<&'a str>,
    /// The e-mail offer comes before the app's code (the user's choice).
    pub email_first: bool,
    /// Offer to remember the browser for that many days.
    pub remember_days: Option<u64>,
    /// A form the user posted waits for this step-up, and is sent after it.
    pub form_kept: bool,
    /// A code by text message to this number (masked), if offered.
    pub sms_to: Option<&'a str>,
    /// The user has a security key for this site.
    pub key: bool,
}

/// Ways to pass the second factor, as `offer` says.
pub fn verify(lang: Lang, csrf: &str, error: Option<&str>, offer: &VerifyOffer<'_>) -> Page {
    let t = texts(lang);
    let status = form_status(error.is_some(), StatusCode::UNPROCESSABLE_ENTITY);
    html(
        status,
        VerifyPage {
            lang: lang.code(),
            title: t.verify_title,
            t,
            csrf,
            error,
            has_app: offer.has_app,
            email_to: offer.email_to,
            email_first: offer.email_first,
            remember_days: offer.remember_days,
            form_kept: offer.form_kept,
            sms_to: offer.sms_to,
            key: offer.key,
        }
        .render(),
    )
}

pub fn recovery(lang: Lang, csrf: &str, error: Option<&str>) -> Page {
    let t = texts(lang);
    let status = form_status(error.is_some(), StatusCode::UNPROCESSABLE_ENTITY);
    html(
        status,
        RecoveryPage {
            lang: lang.code(),
            title: t.recovery_title,
            t,
            csrf,
            error,
        }
        .render(),
    )
}

/// After the second factor: new recovery codes to save, or how many are left.
pub fn passed(lang: Lang, csrf: &str, codes: Option<&[&str]>, codes_left: Option<usize>) -> Page {
    let t = texts(lang);
    let title = if codes.is_some() {
        t.codes_title
    } else {
        t.passed_title
    };
    html(
        StatusCode::OK,
        PassedPage {
            lang: lang.code(),
            title,
            t,
            csrf,
            codes,
            codes_left,
        }
        .render(),
    )
}

pub fn print_codes(lang: Lang, issuer: &str, account: &str, codes: &[&str]) -> Page {
    let t = texts(lang);
    html(
        StatusCode::OK,
        PrintPage {
            lang: lang.code(),
            t,
            issuer,
            account,
            codes,
        }
        .render(),
    )
}

/// The recovery codes as a text file to download.
pub fn codes_file(issuer: &str, account: &str, codes: &[&str]) -> Page {
    let mut body = format!("{issuer} recovery codes for {account}\nEach code works once.\n\n");
    for code in codes {
        body.push_str(code);
        body.push('\n');
    }
    Page {
        status: StatusCode::OK,
        content_type: "text/plain; charset=utf-8",
        body: body.into_bytes(),
    }
}

pub fn message(status: StatusCode, lang: Lang, title: &str, text: &str, link: Option<(&str, &str)>) -> Page {
    html(
        status,
        MessagePage {
            lang: lang.code(),
            title,
            text,
            link,
        }
        .render(),
    )
}

/// A time as people read it on a page: `2026-11-23 07:55 UTC`.
pub fn human_time(t: std::time::SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} {} UTC", &text[..10], &text[11..16])
}

/// A QR code as inline SVG, drawn here: no image service sees the secret.
pub fn qr_svg(data: &str) -> String {
    match qrcode::QrCode::new(data.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            // Inline in HTML, the XML declaration is noise.
            svg.find("<svg").map_or(svg.clone(), |i| svg[i..].to_owned())
        }
        Err(e) => {
            tracing::error!(error = %e, "drawing a QR code");
            String::new()
        }
    }
}

#[derive(Template)]
#[template(path = "security-key.html")]
struct SecurityKeyPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Texts,
    intro: &'a str,
    error: Option<&'a str>,
    /// The ceremony's options, JSON made safe inside a script element.
    options: String,
    registering: bool,
    action: &'a str,
    csrf: &'a str,
    button: &'a str,
    back: &'a str,
    back_text: &'a str,
    script: &'a str,
    integrity: &'a str,
}

/// A security-key ceremony in progress, as its page shows it.
pub struct KeyCeremony<'a> {
    /// Registering a key (else signing in with one).
    pub registering: bool,
    pub csrf: &'a str,
    /// Where the answer is posted.
    pub action: &'a str,
    /// The way back (to the other methods, or the security info), and its words.
    pub back: &'a str,
    pub back_text: &'a str,
    pub error: Option<&'a str>,
}

/// The page that runs a security-key ceremony (with the key script), whose
/// options for the browser are `options` (JSON).
pub fn security_key(lang: Lang, ceremony: &KeyCeremony<'_>, options: &str) -> Page {
    let t = texts(lang);
    let (title, intro, button) = if ceremony.registering {
        (t.key_add_title, t.key_add_intro, t.key_add_button)
    } else {
        (t.key_use_title, t.key_use_intro, t.key_use_button)
    };
    // JSON inside a script element: `<`, `>` and `&` escaped, so that no value
    // (a user name) can end the element.
    let options = options
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    html(
        form_status(ceremony.error.is_some(), StatusCode::UNPROCESSABLE_ENTITY),
        SecurityKeyPage {
            lang: lang.code(),
            title,
            t,
            intro,
            error: ceremony.error,
            options,
            registering: ceremony.registering,
            action: ceremony.action,
            csrf: ceremony.csrf,
            button,
            back: ceremony.back,
            back_text: ceremony.back_text,
            script: Route::KeyScript.path(),
            integrity: key_script_hash(),
        }
        .render(),
    )
}

/// Headers on every response the gateway writes itself (DESIGN.md, "Sessions").
/// `framable`: shown in the overlay, framed by the app's own pages on the same
/// origin, and by nothing else.
pub fn security_headers(tls: bool, framable: bool) -> impl Iterator<Item = (&'static str, &'static str)> {
    // The one script a page may run is the key script, named by its hash (no
    // inline script, no handler attribute, nothing else from this origin).
    static POLICIES: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    let policies = POLICIES.get_or_init(|| {
        let policy = |ancestors: &str| {
            format!(
                "default-src 'none'; script-src '{}'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors {ancestors}; base-uri 'none'",
                key_script_hash()
            )
        };
        [policy("'self'"), policy("'none'")]
    });
    let (csp, frame_options) = if framable {
        (policies[0].as_str(), "SAMEORIGIN")
    } else {
        (policies[1].as_str(), "DENY")
    };
    let always = [
        ("content-security-policy", csp),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", frame_options),
        // Not `no-referrer`: under it browsers send `Origin: null` with the pages'
        // own form posts, and the gateway checks that Origin to refuse cross-site
        // posts. `same-origin` still tells other sites nothing.
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ];
    let hsts = tls.then_some(("strict-transport-security", "max-age=31536000"));
    always.into_iter().chain(hsts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_security_key_page_runs_only_the_key_script_and_no_value_ends_its_options() {
        let options = r#"{"publicKey":{"user":{"name":"</script><script>alert(1)</script>"}}}"#;
        let page = security_key(
            Lang::En,
            &KeyCeremony {
                registering: true,
                csrf: "tok",
                action: "/.portvakt/account/security-key/finish",
                back: "/.portvakt/account",
                back_text: "Back",
                error: None,
            },
            options,
        );
        let html = String::from_utf8(page.body).unwrap();
        assert_eq!(
            html.matches("<script").count(),
            2,
            "the options, and the key script: {html}"
        );
        assert!(html.contains("\\u003c/script\\u003e\\u003cscript\\u003ealert(1)"));
        let (_, options_json) = html.split_once("id=\"webauthn-options\">").unwrap();
        let (options_json, _) = options_json.split_once("</script>").unwrap();
        let parsed: serde_json::Value = serde_json::from_str(options_json).unwrap();
        assert_eq!(
            parsed["publicKey"]["user"]["name"],
            "</script><script>alert(1)</script>"
        );
        assert!(html.contains(&format!("integrity=\"{}\"", key_script_hash())));
        let csp: Vec<_> = security_headers(false, false).collect();
        let policy = csp
            .iter()
            .find(|(name, _)| *name == "content-security-policy")
            .unwrap()
            .1;
        assert!(
            policy.contains(&format!("script-src '{}'", key_script_hash())),
            "{policy}"
        );
        assert!(!policy.contains("unsafe-inline"));
    }

    #[test]
    fn the_enrolment_page_has_a_qr_code_a_link_and_the_key() {
        let page = enrol(
            Lang::Sv,
            &Enrolment {
                otpauth: "otpauth://totp/Ex:alice?secret=ABC",
                secret: "ABCD EFGH",
                issuer: "Ex",
                account: "alice<b>",
                csrf: "tok",
                error: None,
                email_offer: Some(true),
                key_offer: true,
            },
        );
        let html = String::from_utf8(page.body).unwrap();
        assert!(html.contains("<svg"), "inline QR code");
        assert!(html.contains("href=\"/.portvakt/enrol/security-key\""));
        assert!(
            html.contains("Ingen autentiseringsapp?") && html.contains("action=\"/.portvakt/enrol/email\"")
        );
        assert!(html.contains("href=\"otpauth://totp/Ex:alice?secret=ABC\""));
        assert!(html.contains("ABCD EFGH") && html.contains("Skanna QR-koden"));
        assert!(html.contains("autocomplete=\"one-time-code\"") && html.contains("inputmode=\"numeric\""));
        assert!(html.contains("value=\"tok\""));
        assert!(!html.contains("alice<b>"), "escaped");
    }

    #[test]
    fn error_pages_escape_details_and_speak_swedish() {
        let page = error(
            StatusCode::BAD_REQUEST,
            ErrorKind::BadRequest,
            Lang::Sv,
            Some("<script>x</script>"),
            "abc123",
        );
        let html = String::from_utf8(page.body).expect("utf-8");
        assert!(html.contains("Adressen kan inte användas"));
        assert!(html.contains("lang=\"sv\""));
        assert!(!html.contains("<script>"));
        assert!(html.contains("abc123"));
    }
}
