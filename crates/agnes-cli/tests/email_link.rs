//! Sign-in by e-mailed link, black-box: the real binary mails through a local SMTP sink
//! (`agnes_fakes::smtp`), and the test follows the link it finds in the message.

mod common;

use agnes_fakes::smtp::SmtpSink;
use common::{Http, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

/// The sign-in link in a delivered message.
fn link_in(data: &str) -> String {
    let at = data.find("http://").expect("a link in the mail");
    data[at..].split_whitespace().next().unwrap().to_string()
}

async fn mails_to(sink: &SmtpSink, to: &str, count: usize) -> Vec<agnes_fakes::smtp::Mail> {
    for _ in 0..100 {
        let mails: Vec<_> = sink.mails().into_iter().filter(|m| m.to.iter().any(|t| t == to)).collect();
        if mails.len() >= count {
            return mails;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {count} mails to {to}: {:?}", sink.mails());
}

#[tokio::test]
async fn a_link_is_mailed_signs_in_once_and_expires() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), |c| {
        c.env("SMTP_HOST", "127.0.0.1")
            .env("SMTP_PORT", sink.addr.port().to_string())
            .env("SMTP_TLS", "none")
            .env("SMTP_FROM", "agnes <agnes@corp.example>")
            .env("AGNES_EMAIL_LINK_TTL_SECONDS", "2");
    });
    let api = Http::new(&server);
    let admin = api.bootstrap().await;
    let (ana_id, _) = api.user(&admin, "ana@corp.example").await;
    let (bob_id, _) = api.user(&admin, "bob@corp.example").await;
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // Known and unknown addresses get the same answer; only the known one gets mail.
    let (status, known) = api.post("/auth/email/send-link", None, json!({"email": " Ana@Corp.Example "})).await;
    assert_eq!(status, 200, "{known}");
    let (status, unknown) = api.post("/auth/email/send-link", None, json!({"email": "nobody@corp.example"})).await;
    assert_eq!((status, &unknown), (reqwest::StatusCode::OK, &known), "nothing said of who has an account");
    assert!(known.get("dev_link").is_none(), "with SMTP the link is mailed, never answered");
    let (status, _) = api.post("/auth/email/send-link", None, json!({"email": "not an address"})).await;
    assert_eq!(status, 400);
    let mail = mails_to(&sink, "ana@corp.example", 1).await.remove(0);
    assert_eq!(mail.from, "agnes@corp.example");
    assert!(mail.data.contains("Subject: Your agnes sign-in link"), "{}", mail.data);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.mails().iter().all(|m| m.to.iter().all(|t| t != "nobody@corp.example")));

    // The link signs in once: a session cookie and home; the second time it is refused.
    let link = link_in(&mail.data);
    assert!(link.starts_with(&server.url("/auth/email/verify?email=ana%40corp%2Eexample&token=")), "{link}");
    let r = browser.get(&link).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, "/"));
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let session = cookie.trim_start_matches("access_token=").split(';').next().unwrap().to_string();
    let (status, me) = api.get("/api/me", &session).await;
    assert_eq!((status.as_u16(), me["id"].as_str()), (200, Some(ana_id.as_str())));
    let again = browser.get(&link).send().await.unwrap();
    assert_eq!(again.headers()["location"].to_str().unwrap(), "/login?error=invalid_link");

    // The JSON form: a session for the link's parts, once.
    api.post("/auth/email/send-link", None, json!({"email": "ana@corp.example"})).await;
    let link = link_in(&mails_to(&sink, "ana@corp.example", 2).await[1].data);
    let token = link.split("token=").nth(1).unwrap().to_string();
    let body = json!({"email": "ana@corp.example", "token": token});
    let (status, session) = api.post("/auth/email/verify", None, body.clone()).await;
    assert_eq!(
        (status.as_u16(), session["role"].as_str(), session["email"].as_str()),
        (200, Some("user"), Some("ana@corp.example"))
    );
    let (status, refused) = api.post("/auth/email/verify", None, body).await;
    assert_eq!((status.as_u16(), refused["detail"].as_str()), (400, Some("Invalid or expired sign-in link")));

    // Expired: the link outlives its validity (2 s here) and is refused.
    api.post("/auth/email/send-link", None, json!({"email": "ana@corp.example"})).await;
    let link = link_in(&mails_to(&sink, "ana@corp.example", 3).await[2].data);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let late = browser.get(&link).send().await.unwrap();
    assert_eq!(late.headers()["location"].to_str().unwrap(), "/login?error=invalid_link");

    // An admin's password reset token is no sign-in link, and a link is not for another address.
    let (_, reset) = api.post(&format!("/api/users/{bob_id}/reset-password"), Some(&admin), json!({})).await;
    let reset_token = reset["reset_token"].as_str().unwrap();
    let (status, _) =
        api.post("/auth/email/verify", None, json!({"email": "bob@corp.example", "token": reset_token})).await;
    assert_eq!(status, 400);
    api.post("/auth/email/send-link", None, json!({"email": "ana@corp.example"})).await;
    let link = link_in(&mails_to(&sink, "ana@corp.example", 4).await[3].data);
    let token = link.split("token=").nth(1).unwrap();
    let (status, _) = api.post("/auth/email/verify", None, json!({"email": "bob@corp.example", "token": token})).await;
    assert_eq!(status, 400);

    // A deactivated account gets the same answer and no mail.
    let (status, _) = api.post(&format!("/api/users/{bob_id}/deactivate"), Some(&admin), json!({})).await;
    assert!(status.is_success());
    let before = sink.mails().len();
    let (status, answer) = api.post("/auth/email/send-link", None, json!({"email": "bob@corp.example"})).await;
    assert_eq!((status.as_u16(), &answer), (200, &known));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.mails().len(), before);
    let _: Value = answer;
}

#[tokio::test]
async fn without_smtp_the_link_is_off_and_dev_mode_answers_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let api = Http::new(&server);
    let (status, answer) = api.post("/auth/email/send-link", None, json!({"email": "a@corp.example"})).await;
    assert_eq!(
        (status.as_u16(), answer["detail"].as_str()),
        (404, Some("Sign-in by e-mail is not enabled on this server"))
    );
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), |c| {
        c.env("LOCAL_DEV_MODE", "1").env("LOCAL_DEV_USER_EMAIL", "dev@corp.example");
    });
    let api = Http::new(&server);
    let (status, answer) = api.post("/auth/email/send-link", None, json!({"email": "dev@corp.example"})).await;
    assert_eq!(status, 200, "{answer}");
    let link = answer["dev_link"].as_str().expect("dev mode answers the link");
    let token = link.split("token=").nth(1).unwrap();
    let (status, session) =
        api.post("/auth/email/verify", None, json!({"email": "dev@corp.example", "token": token})).await;
    assert_eq!((status.as_u16(), session["email"].as_str()), (200, Some("dev@corp.example")));
}
