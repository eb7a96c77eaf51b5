//! Codes by text message, sent through the provider's webhook: one HTTP request
//! with the method, headers and body the configuration gives, so that any SMS
//! provider works without the gateway knowing it.

use std::time::Duration;

use crate::config::model::SmsSettings;

/// How long the provider has to take a message.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a refusal's body goes to the log (providers say why there).
const REFUSAL_SHOWN: usize = 300;

/// Sends text messages; the settings come with each message, so a reload applies.
#[derive(Clone)]
pub struct SmsSender {
    client: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    #[error("the provider refused the message with {status}: {said}")]
    Refused { status: u16, said: String },
}

/// What one message says, to whom.
pub struct TextMessage<'a> {
    /// The number, in international form.
    pub to: &'a str,
    /// The whole text.
    pub message: &'a str,
    /// The code alone (for providers whose templates hold the text themselves).
    pub code: &'a str,
}

impl SmsSender {
    pub fn new() -> anyhow::Result<SmsSender> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            // The webhook is the configured address: a redirect could send the
            // number, the code and the provider's secret elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(SmsSender { client })
    }

    /// Sends `text` as `settings` say; an answer other than 2xx is a refusal.
    pub async fn send(&self, settings: &SmsSettings, text: &TextMessage<'_>) -> Result<(), SmsError> {
        let content_type = settings
            .headers
            .iter()
            .find(|(name, _)| name == http::header::CONTENT_TYPE)
            .and_then(|(_, value)| value.to_str().ok());
        let body = render(&settings.body, content_type, text);
        let mut request = self
            .client
            .request(settings.method.clone(), &settings.url)
            .body(body);
        for (name, value) in &settings.headers {
            request = request.header(name, value);
        }
        let answer = request
            .send()
            .await
            .map_err(|e| SmsError::Unreachable(without_url(&e)))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        // Only the start of a refusal is read: a provider (or whoever is between)
        // could answer without end.
        let mut answer = answer;
        let mut said = Vec::new();
        while said.len() < REFUSAL_SHOWN {
            match answer.chunk().await {
                Ok(Some(chunk)) => said.extend_from_slice(&chunk),
                _ => break,
            }
        }
        said.truncate(REFUSAL_SHOWN);
        Err(SmsError::Refused {
            status: status.as_u16(),
            said: for_the_log(&String::from_utf8_lossy(&said), settings, text),
        })
    }
}

/// A provider's words as the log may hold them: one line, no control characters,
/// and none of what the message carried (the number, the code) nor the secrets
/// sent with it, which a provider may repeat in its error.
fn for_the_log(said: &str, settings: &SmsSettings, text: &TextMessage<'_>) -> String {
    let mut said = said.to_owned();
    let secrets = settings
        .headers
        .iter()
        .filter(|(_, value)| value.is_sensitive())
        .filter_map(|(_, value)| value.to_str().ok());
    for secret in secrets.chain([text.to, text.code, text.to.trim_start_matches('+')]) {
        if !secret.is_empty() {
            said = said.replace(secret, "[withheld]");
        }
    }
    said.chars().flat_map(char::escape_default).collect()
}

/// The error without the URL reqwest adds (a provider may put a key in it).
fn without_url(e: &reqwest::Error) -> String {
    let mut cause = e.to_string();
    if let Some(url) = e.url() {
        cause = cause.replace(url.as_str(), "the webhook");
    }
    cause
}

/// The body with `{to}`, `{message}` and `{code}` filled in, each written as the
/// body's kind needs: escaped inside a JSON string, form-encoded in a form, as it
/// is otherwise.
pub fn render(template: &str, content_type: Option<&str>, text: &TextMessage<'_>) -> String {
    let kind = content_type.unwrap_or_default().to_ascii_lowercase();
    let write = |value: &str| -> String {
        if kind.contains("json") {
            let quoted = serde_json::to_string(value).unwrap_or_default();
            let inner = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'));
            inner.unwrap_or_default().to_owned()
        } else if kind.contains("x-www-form-urlencoded") {
            form_urlencoded::byte_serialize(value.as_bytes()).collect()
        } else {
            value.to_owned()
        }
    };
    // One pass, so that a value holding a placeholder's name is not filled in again.
    let mut out = String::with_capacity(template.len() + text.message.len());
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let filled = [
            ("{to}", text.to),
            ("{message}", text.message),
            ("{code}", text.code),
        ]
        .into_iter()
        .find(|(name, _)| tail.starts_with(name));
        match filled {
            Some((name, value)) => {
                out.push_str(&write(value));
                rest = &tail[name.len()..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: TextMessage<'static> = TextMessage {
        to: "+46701234567",
        message: "Portvakt: \"code\" 123456 & {code}\n",
        code: "123456",
    };

    #[test]
    fn placeholders_are_filled_as_the_body_kind_needs() {
        let json = render(
            r#"{"to": "{to}", "text": "{message}", "otp": {code}}"#,
            Some("application/json; charset=utf-8"),
            &TEXT,
        );
        assert_eq!(
            json,
            r#"{"to": "+46701234567", "text": "Portvakt: \"code\" 123456 & {code}\n", "otp": 123456}"#
        );
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["text"], TEXT.message, "the text survives exactly");

        let form = render(
            "To={to}&Body={message}",
            Some("application/x-www-form-urlencoded"),
            &TEXT,
        );
        assert_eq!(
            form,
            "To=%2B46701234567&Body=Portvakt%3A+%22code%22+123456+%26+%7Bcode%7D%0A"
        );
        let pairs: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes()).into_owned().collect();
        assert_eq!(pairs[1].1, TEXT.message, "no field can be added through the text");

        assert_eq!(
            render("{to} {unknown} {", None, &TEXT),
            "+46701234567 {unknown} {"
        );
    }

    #[test]
    fn a_providers_refusal_is_logged_as_one_line_without_the_message_or_the_secrets() {
        let mut secret = http::HeaderValue::from_static("Bearer s3cret");
        secret.set_sensitive(true);
        let settings = SmsSettings {
            url: "https://sms.example/send".to_owned(),
            method: http::Method::POST,
            headers: vec![(http::header::AUTHORIZATION, secret)],
            body: "{to} {message}".to_owned(),
            code_digits: 6,
            code_lifetime: Duration::from_secs(600),
            resend_after: Duration::from_secs(60),
            max_per_hour: 5,
            countries: Vec::new(),
        };
        let said = "bad request: to=+46701234567 (46701234567) code 123456 auth=Bearer s3cret\n\u{1b}[31m2026 INFO forged";
        let logged = for_the_log(said, &settings, &TEXT);
        assert!(!logged.contains('\n') && !logged.contains('\u{1b}'), "{logged}");
        for gone in ["46701234567", "123456", "s3cret"] {
            assert!(!logged.contains(gone), "{gone} in {logged}");
        }
        assert!(logged.starts_with("bad request: to=[withheld]"), "{logged}");
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_an_error_that_does_not_show_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let settings = SmsSettings {
            url: format!("http://127.0.0.1:{port}/send?key=s3cret"),
            method: http::Method::POST,
            headers: Vec::new(),
            body: "{to} {message}".to_owned(),
            code_digits: 6,
            code_lifetime: Duration::from_secs(600),
            resend_after: Duration::from_secs(60),
            max_per_hour: 5,
            countries: Vec::new(),
        };
        let sent = SmsSender::new().unwrap().send(&settings, &TEXT).await;
        let error = sent.unwrap_err().to_string();
        assert!(error.starts_with("the provider could not be reached"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
}
