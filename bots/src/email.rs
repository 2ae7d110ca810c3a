//! The email channel: lettre over SMTP (none / STARTTLS / implicit TLS, optional credentials),
//! or, with no SMTP configured, the rendered message in the log. Messages are multipart
//! (plain text + HTML); confirmations and moves of a confirmed booking carry `booking.ics`.
//! The Message-ID is derived from the delivery's dedupe key, so a repeated send after a crash
//! is the same message to every mail client and archive.

use crate::delivery::{Channel, DeliveryError, Notice, NoticeKind, Recipient};
use crate::{ics, render};
use futures::future::BoxFuture;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP (a relay on the same host or network, tests).
    None,
    /// Upgrade with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// Where and how to send. `Debug` never prints the password.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `Name <address>` or a bare address.
    pub from: String,
    /// Bound on one SMTP conversation (well below the delivery lease).
    pub timeout: Duration,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("from", &self.from)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("the from address {0:?} is not a mailbox")]
    BadFrom(String),
    #[error("smtp: {0}")]
    Smtp(String),
}

pub struct EmailChannel {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

impl EmailChannel {
    /// A channel that sends over SMTP.
    pub fn smtp(cfg: &SmtpConfig) -> Result<EmailChannel, EmailError> {
        let from: Mailbox = cfg.from.parse().map_err(|_| EmailError::BadFrom(cfg.from.clone()))?;
        let builder = match cfg.tls {
            TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str()),
            TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
                .map_err(|e| EmailError::Smtp(e.to_string()))?,
            TlsMode::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host).map_err(|e| EmailError::Smtp(e.to_string()))?
            }
        };
        let mut builder = builder.port(cfg.port).timeout(Some(cfg.timeout));
        if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Ok(EmailChannel { transport: Some(builder.build()), from })
    }

    /// A channel that writes each rendered message to the log instead of sending it.
    pub fn log_only(from: &str) -> Result<EmailChannel, EmailError> {
        let from: Mailbox = from.parse().map_err(|_| EmailError::BadFrom(from.to_owned()))?;
        Ok(EmailChannel { transport: None, from })
    }

    pub fn sends_over_smtp(&self) -> bool {
        self.transport.is_some()
    }

    /// `<outbox.42.email@example.com>` for the dedupe key `outbox:42:email`.
    pub fn message_id(&self, dedupe_key: &str) -> String {
        let local: String =
            dedupe_key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '.' }).collect();
        format!("<{local}@{}>", self.from.email.domain())
    }

    /// The whole message for a notice.
    pub fn message(&self, n: &Notice) -> Result<Message, DeliveryError> {
        let address = n.recipient.email.as_deref().unwrap_or_default();
        let address: Address =
            address.parse().map_err(|_| DeliveryError::Permanent(format!("{address:?} is not an email address")))?;
        let to = Mailbox::new(Some(n.recipient.name.clone()), address);
        let r = render::render(n);
        let body = MultiPart::alternative_plain_html(r.text, r.html);
        let calendar = match &n.kind {
            NoticeKind::Notification(k) if k == "confirmed" || (k == "rescheduled" && n.booking.status.is_active()) => {
                ics::booking_calendar(n)
            }
            _ => None,
        };
        let body = match calendar {
            Some(cal) => {
                let ct = ContentType::parse("text/calendar; charset=utf-8; method=PUBLISH")
                    .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
                MultiPart::mixed().multipart(body).singlepart(Attachment::new("booking.ics".into()).body(cal, ct))
            }
            None => body,
        };
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(r.subject)
            .message_id(Some(self.message_id(&n.dedupe_key)))
            .multipart(body)
            .map_err(|e| DeliveryError::Permanent(format!("message: {e}")))
    }
}

impl Channel for EmailChannel {
    fn name(&self) -> &'static str {
        "email"
    }

    fn reaches(&self, to: &Recipient) -> bool {
        to.email.as_deref().is_some_and(|e| e.parse::<Address>().is_ok())
    }

    fn deliver<'a>(&'a self, n: &'a Notice) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let message = self.message(n)?;
            match &self.transport {
                Some(t) => match t.send(message).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_permanent() => Err(DeliveryError::Permanent(e.to_string())),
                    Err(e) => Err(DeliveryError::Transient(e.to_string())),
                },
                None => {
                    let r = render::render(n);
                    tracing::info!(
                        delivery_id = n.delivery_id,
                        to = %n.recipient.user_id,
                        subject = %r.subject,
                        body = %r.text,
                        "email not sent (no SMTP_HOST configured): logged instead"
                    );
                    Ok(())
                }
            }
        })
    }
}
