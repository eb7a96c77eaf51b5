//! Gateway pages: compiled askama templates, one message catalogue, embedded assets,
//! and the security headers every gateway response carries.

pub mod i18n;

use askama::Template;
use http::StatusCode;

pub use i18n::{ErrorKind, Lang};

/// The path prefix reserved for the gateway on every app host.
pub const PREFIX: &str = "/.portvakt/";

pub const STYLESHEET: &str = include_str!("assets/portvakt.css");

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

/// Headers on every response the gateway writes itself (DESIGN.md, "Sessions").
pub fn security_headers(tls: bool) -> impl Iterator<Item = (&'static str, &'static str)> {
    let always = [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ];
    let hsts = tls.then_some(("strict-transport-security", "max-age=31536000"));
    always.into_iter().chain(hsts)
}

#[cfg(test)]
mod tests {
    use super::*;

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
