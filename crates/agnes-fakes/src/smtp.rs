//! An SMTP sink after RFC 5321: greets, answers EHLO, MAIL, RCPT, DATA (dot-stuffed,
//! ended by a lone dot), RSET, NOOP and QUIT, and keeps every message it is given. No
//! TLS and no authentication: the sender under test is configured with `SMTP_TLS=none`.

use parking_lot::Mutex;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body as sent, dot-stuffing undone, lines joined by `\n`.
    pub data: String,
}

pub struct SmtpSink {
    pub addr: std::net::SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    _thread: std::thread::JoinHandle<()>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let kept = mails.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                while let Ok((stream, _)) = listener.accept().await {
                    let kept = kept.clone();
                    tokio::spawn(async move {
                        let _ = session(stream, kept).await;
                    });
                }
            });
        });
        SmtpSink { addr, mails, _thread: thread }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().clone()
    }
}

async fn session(stream: tokio::net::TcpStream, kept: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 fake-smtp ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-fake-smtp greets you\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n"
        } else if upper.starts_with("HELO") {
            b"250 fake-smtp\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = line[10..].trim().trim_matches(['<', '>']).split('>').next().unwrap_or_default().to_string();
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            if from.is_empty() {
                b"503 5.5.1 MAIL first\r\n"
            } else {
                to.push(line[8..].trim().trim_matches(['<', '>']).to_string());
                b"250 OK\r\n"
            }
        } else if upper == "DATA" {
            if to.is_empty() {
                write.write_all(b"503 5.5.1 RCPT first\r\n").await?;
                continue;
            }
            write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut data = Vec::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                // A leading dot the sender doubled (RFC 5321 §4.5.2) is taken back.
                data.push(if l.starts_with("..") { l[1..].to_string() } else { l });
            }
            kept.lock().push(Mail {
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                data: data.join("\n"),
            });
            b"250 OK: queued\r\n"
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            b"250 OK\r\n"
        } else if upper == "NOOP" {
            b"250 OK\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else {
            b"502 5.5.2 Command not recognized\r\n"
        };
        write.write_all(reply).await?;
    }
    Ok(())
}
