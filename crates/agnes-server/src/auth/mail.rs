//! Outgoing mail over SMTP (`lettre`), for sign-in links. Configured by the environment:
//! `SMTP_HOST`, `SMTP_PORT` (587), `SMTP_USER` and the password in `SMTP_PASSWORD`,
//! `SMTP_FROM`, and `SMTP_TLS`: `starttls` (the default), `tls` (implicit, port 465) or
//! `none` (a relay on the same host only).

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

impl Mailer {
    /// The mailer of the environment; `None` without `SMTP_HOST`.
    pub fn from_env() -> Result<Option<Mailer>, String> {
        let Some(host) = env("SMTP_HOST") else { return Ok(None) };
        let tls = env("SMTP_TLS").unwrap_or_else(|| "starttls".into());
        let (builder, default_port) = match tls.as_str() {
            "starttls" => {
                (AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host).map_err(|e| e.to_string())?, 587)
            }
            "tls" => (AsyncSmtpTransport::<Tokio1Executor>::relay(&host).map_err(|e| e.to_string())?, 465),
            "none" => (AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host), 25),
            other => return Err(format!("SMTP_TLS: {other:?} is not starttls, tls or none")),
        };
        let port = match env("SMTP_PORT") {
            Some(p) => p.parse().map_err(|_| format!("SMTP_PORT: {p:?} is not a port"))?,
            None => default_port,
        };
        let mut builder = builder.port(port).timeout(Some(std::time::Duration::from_secs(20)));
        if let Some(user) = env("SMTP_USER") {
            builder = builder.credentials(Credentials::new(user, env("SMTP_PASSWORD").unwrap_or_default()));
        }
        let from = env("SMTP_FROM").unwrap_or_else(|| format!("agnes <agnes@{host}>"));
        let from = from.parse().map_err(|e| format!("SMTP_FROM: {e}"))?;
        Ok(Some(Mailer { transport: builder.build(), from }))
    }

    /// Send a plain-text message. ASCII text with lines under SMTP's 998 characters goes
    /// as 7bit, so a link stays one unbroken line for every mail client (lettre would pick
    /// quoted-printable for lines over 76, which folds it); anything else is lettre's choice.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|e| format!("{to}: {e}"))?;
        let plain = body.is_ascii() && !body.contains('\0') && body.lines().all(|l| l.len() < 998);
        let body = if plain {
            let crlf = body.lines().collect::<Vec<_>>().join("\r\n") + "\r\n";
            Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
        } else {
            Body::new(body)
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| e.to_string())?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| e.to_string())
    }
}
