//! Sending e-mail: over SMTP (STARTTLS, TLS, or plain to a local relay), or, for
//! development and tests, by appending each message to a file.

use std::path::PathBuf;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::config::model::{EmailSettings, EmailTransport, SmtpSecurity};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("the address {0} cannot receive mail")]
    BadAddress(String),
    #[error("building the message: {0}")]
    Message(String),
    #[error("the mail server refused or could not be reached: {0}")]
    Smtp(String),
    #[error("writing the mail file: {0}")]
    File(#[from] std::io::Error),
}

/// Whether mail can be sent to `address`: lettre's parser, the same rules the
/// address must pass when a message is built, and the 254-byte limit of RFC 5321.
pub fn is_deliverable(address: &str) -> bool {
    address.len() <= 254 && address.parse::<lettre::Address>().is_ok()
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// One writer at a time, so messages never interleave.
    File(Mutex<PathBuf>),
}

pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

impl Mailer {
    pub fn new(settings: &EmailSettings) -> Result<Mailer, NotifyError> {
        let from = settings
            .from
            .parse::<Mailbox>()
            .map_err(|_| NotifyError::BadAddress(settings.from.clone()))?;
        let transport = match &settings.transport {
            EmailTransport::File(path) => Transport::File(Mutex::new(path.clone())),
            EmailTransport::Smtp {
                host,
                port,
                security,
                credentials,
            } => {
                let builder = match security {
                    SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
                    SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
                    SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)),
                }
                .map_err(|e| NotifyError::Smtp(e.to_string()))?;
                let builder = builder.port(*port);
                let builder = match credentials {
                    Some((user, password)) => {
                        builder.credentials(Credentials::new(user.clone(), password.clone()))
                    }
                    None => builder,
                };
                Transport::Smtp(builder.build())
            }
        };
        Ok(Mailer { from, transport })
    }

    /// Sends a plain-text message.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), NotifyError> {
        let to_box = to
            .parse::<Mailbox>()
            .map_err(|_| NotifyError::BadAddress(to.to_owned()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to_box)
            .subject(subject)
            .body(body.to_owned())
            .map_err(|e| NotifyError::Message(e.to_string()))?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message)
                    .await
                    .map_err(|e| NotifyError::Smtp(e.to_string()))?;
            }
            Transport::File(path) => {
                let path = path.lock().await;
                let mut file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&*path)
                    .await?;
                let mut text = message.formatted();
                text.extend_from_slice(b"\n.\n");
                file.write_all(&text).await?;
                file.sync_data().await?;
            }
        }
        Ok(())
    }
}
