//! Single sign-on through OpenID Connect, black-box: the real binary against the fake
//! provider (`agnes_fakes::oidc`: discovery, a JWK set with a real RSA key, signed ID
//! tokens, PKCE). A browser's round trip is followed by hand, redirect by redirect, so
//! every hop (the flow cookie, state, code) is visible to the test.

mod common;

use agnes_fakes::google_directory::{FakeDirectory, GROUP_READONLY};
use agnes_fakes::oidc::{FakeOidc, Person, Tamper};
use common::{Http, TestServer};
use serde_json::{json, Value};

struct Sso {
    _dir: tempfile::TempDir,
    fake: FakeOidc,
    server: TestServer,
    api: Http,
    /// A browser without a cookie jar or redirects: each hop is the test's.
    browser: reqwest::Client,
    /// The provider's login route on agnes.
    login: String,
}

/// Where a sign-in ended: the page it sent the browser to, and the session cookie, if any.
#[derive(Debug)]
struct Ended {
    location: String,
    session: Option<String>,
}

impl Ended {
    fn refused_with(&self) -> Option<&str> {
        self.location.strip_prefix("/login?error=")
    }
}

fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap().to_string()))
        .filter(|v| !v.is_empty())
}

fn location(r: &reqwest::Response) -> String {
    assert!(r.status().is_redirection(), "a redirect, got {}", r.status());
    r.headers()["location"].to_str().unwrap().to_string()
}

impl Sso {
    async fn start() -> Sso {
        let fake = FakeOidc::start("agnes-client", "s3cret/with+chars");
        let instance = json!({"auth": {"allowed_domain": "corp.example, partner.example", "oidc": {"acme": {
            "display_name": "Acme SSO", "issuer": fake.issuer(), "client_id": "agnes-client",
            "client_secret_env": "ACME_OIDC_SECRET", "scopes": ["email", "profile", "groups"],
            "groups_claim": "groups", "admin_group": "agnes-admins",
            "required_groups": ["finance", "marketing", "agnes-admins"],
        }}}});
        Sso::serve(fake, instance, "/auth/oidc/acme", |c| {
            c.env("ACME_OIDC_SECRET", "s3cret/with+chars");
        })
        .await
    }

    /// agnes with `instance` as its instance.yaml and the environment `env` sets, signing
    /// in through the fake at `routes` (`…/login`, `…/callback`).
    async fn serve(fake: FakeOidc, instance: Value, routes: &str, env: impl FnOnce(&mut std::process::Command)) -> Sso {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(config.join("instance.yaml"), serde_norway::to_string(&instance).unwrap()).unwrap();
        let server = TestServer::start_with(&dir.path().join("data"), |c| {
            c.env("CONFIG_DIR", &config);
            env(c);
        });
        fake.allow_redirect(&server.url(&format!("{routes}/callback")));
        let api = Http::new(&server);
        let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Sso { _dir: dir, fake, server, api, browser, login: format!("{routes}/login") }
    }

    /// To agnes's login route, on to the provider (which signs in whoever is at the
    /// browser) and back to the callback: the callback's URL and the flow cookie.
    async fn to_callback(&self, next: &str) -> (String, Option<String>) {
        let login = self.server.url(&format!("{}?next={}", self.login, urlencode(next)));
        let r = self.browser.get(login).send().await.unwrap();
        let flow = set_cookie(&r, "agnes_sso");
        let authorize = location(&r);
        assert!(authorize.starts_with(&self.fake.issuer()), "{authorize}");
        for param in ["code_challenge_method=S256", "nonce=", "state=", "scope=openid"] {
            assert!(authorize.contains(param), "{param} in {authorize}");
        }
        let r = self.browser.get(&authorize).send().await.unwrap();
        (location(&r), flow)
    }

    async fn callback(&self, url: &str, flow: Option<&str>) -> Ended {
        let mut request = self.browser.get(url);
        if let Some(f) = flow {
            request = request.header("cookie", format!("agnes_sso={f}"));
        }
        let r = request.send().await.unwrap();
        Ended { session: set_cookie(&r, "access_token"), location: location(&r) }
    }

    async fn sign_in(&self, person: Person, next: &str) -> Ended {
        self.fake.sign_in_as(person);
        let (callback, flow) = self.to_callback(next).await;
        self.callback(&callback, flow.as_deref()).await
    }

    async fn me(&self, session: &str) -> Value {
        let (status, me) = self.api.get("/api/me", session).await;
        assert_eq!(status, 200, "{me}");
        me
    }

    async fn memberships(&self, admin: &str, user_id: &str) -> Vec<(String, String)> {
        let (_, list) = self.api.get(&format!("/api/admin/users/{user_id}/memberships"), admin).await;
        let mut out: Vec<(String, String)> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["group_name"].as_str().unwrap().into(), m["source"].as_str().unwrap().into()))
            .collect();
        out.sort();
        out
    }
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn oidc_sign_in_creates_the_account_syncs_groups_and_refuses_what_fails_verification() {
    let sso = Sso::start().await;
    let admin = sso.api.bootstrap().await;

    // The providers are public: the login page shows a button for each.
    let providers: Value =
        sso.browser.get(sso.server.url("/auth/providers")).send().await.unwrap().json().await.unwrap();
    assert_eq!(providers, json!([{"name": "acme", "display_name": "Acme SSO", "login_url": "/auth/oidc/acme/login"}]));
    let page = sso.browser.get(sso.server.url("/login?next=/catalog")).send().await.unwrap().text().await.unwrap();
    // As a browser reads the escaped attribute.
    let page = page.replace("&#x2f;", "/").replace("&#x3d;", "=").replace("&amp;", "&");
    assert!(page.contains("Sign in with Acme SSO") && page.contains("/auth/oidc/acme/login?next=/catalog"), "{page}");

    // First sign-in: the account is made with the e-mail normalised, groups synced, and
    // the browser lands where it was going with a session.
    let ended = sso.sign_in(Person::new("  Ana@Corp.Example ", &["finance", "sales"]), "/catalog?q=x").await;
    assert_eq!(ended.location, "/catalog?q=x", "{ended:?}");
    let ana = ended.session.expect("a session cookie");
    let me = sso.me(&ana).await;
    assert_eq!(me["email"], "ana@corp.example");
    let ana_id = me["id"].as_str().unwrap().to_string();
    assert_eq!(
        sso.memberships(&admin, &ana_id).await,
        [("finance".into(), "acme_sync".into()), ("sales".into(), "acme_sync".into())]
    );
    let (_, groups) = sso.api.get("/api/admin/groups", &admin).await;
    let finance = groups.as_array().unwrap().iter().find(|g| g["name"] == "finance").unwrap().clone();
    assert_eq!((finance["origin"].as_str(), finance["is_google_managed"].as_bool()), (Some("acme"), Some(false)));

    // The same person in another case is the same account; the provider's list replaces
    // the synced rows, and an admin-added membership survives every sync.
    let (_, users_before) = sso.api.get("/api/users", &admin).await;
    let (status, _) = sso.api.post("/api/admin/groups", Some(&admin), json!({"name": "Support"})).await;
    assert_eq!(status, 201);
    let (status, added) = sso
        .api
        .post(&format!("/api/admin/users/{ana_id}/memberships"), Some(&admin), json!({"group_id": "Support"}))
        .await;
    assert!(status.is_success(), "{added}");
    let again = sso.sign_in(Person::new("ANA@corp.example", &["marketing"]), "/").await;
    assert!(again.session.is_some(), "{again:?}");
    let (_, users_after) = sso.api.get("/api/users", &admin).await;
    assert_eq!(
        users_before.as_array().unwrap().len(),
        users_after.as_array().unwrap().len(),
        "one person, one account"
    );
    assert_eq!(
        sso.memberships(&admin, &ana_id).await,
        [("Support".into(), "admin".into()), ("marketing".into(), "acme_sync".into())],
        "finance and sales left with the provider's list; Support is the admin's"
    );

    // The provider's admin group is agnes's Admin.
    let bob = sso.sign_in(Person::new("bob@partner.example", &["agnes-admins"]), "/").await;
    let (status, _) = sso.api.get("/api/admin/registry", bob.session.as_deref().unwrap()).await;
    assert_eq!(status, 200, "bob is an admin through his provider group");

    // Who may not enter: another domain, none of the required groups, an unverified
    // e-mail; nothing is created for them.
    let eve = sso.sign_in(Person::new("eve@corp.example.evil", &["finance"]), "/").await;
    assert_eq!((eve.refused_with(), eve.session.is_none()), (Some("domain_not_allowed"), true), "{eve:?}");
    let carol = sso.sign_in(Person::new("carol@corp.example", &["sales"]), "/").await;
    assert_eq!(carol.refused_with(), Some("not_in_allowed_group"));
    let mut unverified = Person::new("dan@corp.example", &["finance"]);
    unverified.email_verified = false;
    assert_eq!(sso.sign_in(unverified, "/").await.refused_with(), Some("email_not_verified"));
    let (_, users) = sso.api.get("/api/users", &admin).await;
    let emails: Vec<&str> = users.as_array().unwrap().iter().filter_map(|u| u["email"].as_str()).collect();
    assert!(
        !emails.iter().any(|e| e.starts_with("eve") || e.starts_with("carol") || e.starts_with("dan")),
        "{emails:?}"
    );

    // ID tokens that fail verification, each refused.
    for how in [Tamper::WrongAudience, Tamper::WrongIssuer, Tamper::Expired, Tamper::BadSignature, Tamper::NoNonce] {
        sso.fake.tamper_next(how);
        let ended = sso.sign_in(Person::new("ana@corp.example", &["finance"]), "/").await;
        assert_eq!(
            (ended.refused_with(), ended.session.is_none()),
            (Some("invalid_token"), true),
            "{how:?}: {ended:?}"
        );
    }

    // State: a callback used twice, one without its flow cookie, one with another flow's
    // cookie, and one whose state was changed are all refused.
    sso.fake.sign_in_as(Person::new("ana@corp.example", &["finance"]));
    let (callback, flow) = sso.to_callback("/").await;
    assert!(sso.callback(&callback, flow.as_deref()).await.session.is_some());
    assert_eq!(sso.callback(&callback, flow.as_deref()).await.refused_with(), Some("invalid_state"), "replayed");
    let (callback, _) = sso.to_callback("/").await;
    assert_eq!(sso.callback(&callback, None).await.refused_with(), Some("invalid_state"), "no flow cookie");
    let (callback, _) = sso.to_callback("/").await;
    let (_, other_flow) = sso.to_callback("/").await;
    assert_eq!(sso.callback(&callback, other_flow.as_deref()).await.refused_with(), Some("invalid_state"));
    let (callback, flow) = sso.to_callback("/").await;
    let forged = callback.replace("state=", "state=x");
    assert_eq!(sso.callback(&forged, flow.as_deref()).await.refused_with(), Some("invalid_state"));
    let before = sso.fake.token_requests();
    assert_eq!(
        sso.callback(&callback, flow.as_deref()).await.refused_with(),
        Some("invalid_state"),
        "the flow is spent"
    );
    assert_eq!(sso.fake.token_requests(), before, "no code is exchanged on a bad state");

    // Open redirects: `next` stays on this site.
    for next in ["//evil.example/x", "https://evil.example", "/\\evil.example"] {
        let ended = sso.sign_in(Person::new("ana@corp.example", &["finance"]), next).await;
        assert_eq!(ended.location, "/", "{next}");
    }

    // A deactivated account stays out; an unknown provider is said so.
    let (status, _) = sso.api.post(&format!("/api/users/{ana_id}/deactivate"), Some(&admin), json!({})).await;
    assert!(status.is_success());
    let ended = sso.sign_in(Person::new("ana@corp.example", &["finance"]), "/").await;
    assert_eq!((ended.refused_with(), ended.session.is_none()), (Some("account_deactivated"), true));
    let r = sso.browser.get(sso.server.url("/auth/oidc/nope/login")).send().await.unwrap();
    assert_eq!(location(&r), "/login?error=unknown_provider");
    let page = sso.browser.get(sso.server.url("/login?error=domain_not_allowed")).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("Your e-mail domain may not sign in here"));

    // Every refusal is in the audit log with its reason.
    let (_, log) = sso.api.get("/api/admin/audit?action=login_failed&limit=100", &admin).await;
    let refusals = log["events"].as_array().unwrap().len();
    assert!(refusals >= 14, "{refusals} refusals audited: {log}");
    let (_, ok) = sso.api.get("/api/admin/audit?action=login_sso&limit=100", &admin).await;
    assert!(ok["events"].as_array().unwrap().len() >= 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn google_sign_in_syncs_workspace_groups_from_the_admin_sdk() {
    let fake = FakeOidc::start("agnes-google-client", "google-secret");
    let directory =
        tokio::task::block_in_place(|| FakeDirectory::start("corp.example", "workspace-admin@corp.example"));
    directory.set_group("agnes-finance@corp.example", &["ana@corp.example"]);
    directory.set_group("agnes-ops@corp.example", &["ana@corp.example", "bob@corp.example"]);
    directory.set_group("it-admins@corp.example", &["ana@corp.example"]);
    directory.set_group("everyone@corp.example", &["ana@corp.example", "bob@corp.example"]);
    directory.set_group("sales@corp.example", &["ana@corp.example", "carol@corp.example"]);
    directory.add_user("dan@corp.example");
    // The provider's own groups claim is ignored: the directory decides.
    let instance = json!({"auth": {"allowed_domain": "corp.example", "oidc": {"google": {
        "issuer": fake.issuer(), "directory_endpoint": directory.url,
    }}}});
    let key = directory.key_file.clone();
    let sso = Sso::serve(fake, instance, "/auth/google", |c| {
        c.env("GOOGLE_CLIENT_ID", "agnes-google-client")
            .env("GOOGLE_CLIENT_SECRET", "google-secret")
            .env("GOOGLE_ADMIN_SDK_SUBJECT", "workspace-admin@corp.example")
            .env("GOOGLE_APPLICATION_CREDENTIALS", &key)
            .env("AGNES_GOOGLE_GROUP_PREFIX", "agnes-")
            .env("AGNES_GROUP_ADMIN_EMAIL", "it-admins@corp.example")
            .env("AGNES_GROUP_EVERYONE_EMAIL", "everyone@corp.example");
    })
    .await;
    let admin = sso.api.bootstrap().await;
    let providers: Value =
        sso.browser.get(sso.server.url("/auth/providers")).send().await.unwrap().json().await.unwrap();
    assert_eq!(providers[0]["login_url"], "/auth/google/login");

    // Ana's groups: the admin group is Admin, everyone@ needs no row, the prefix keeps
    // the agnes- groups (named by their e-mail) and drops sales@.
    let ended = sso.sign_in(Person::new("Ana@Corp.example", &["claimed-group"]), "/").await;
    let ana = ended.session.expect("ana signs in");
    let ana_id = sso.me(&ana).await["id"].as_str().unwrap().to_string();
    let synced = |groups: &[&str]| -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = groups.iter().map(|g| (g.to_string(), "google_sync".into())).collect();
        rows.sort();
        rows
    };
    assert_eq!(
        sso.memberships(&admin, &ana_id).await,
        synced(&["Admin", "agnes-finance@corp.example", "agnes-ops@corp.example"])
    );
    assert_eq!(directory.calls(), ["ana@corp.example"], "asked once, for the normalised e-mail");
    let (_, groups) = sso.api.get("/api/admin/groups", &admin).await;
    let finance =
        groups.as_array().unwrap().iter().find(|g| g["name"] == "agnes-finance@corp.example").unwrap().clone();
    assert_eq!((finance["origin"].as_str(), finance["is_google_managed"].as_bool()), (Some("google"), Some(true)));

    // An admin's row survives; the directory's changes replace the synced rows.
    let (status, _) = sso.api.post("/api/admin/groups", Some(&admin), json!({"name": "Support"})).await;
    assert_eq!(status, 201);
    let (status, _) = sso
        .api
        .post(&format!("/api/admin/users/{ana_id}/memberships"), Some(&admin), json!({"group_id": "Support"}))
        .await;
    assert!(status.is_success());
    directory.set_group("agnes-finance@corp.example", &["bob@corp.example"]);
    directory.set_group("it-admins@corp.example", &["bob@corp.example"]);
    assert!(sso.sign_in(Person::new("ana@corp.example", &[]), "/").await.session.is_some());
    let mut expected = synced(&["agnes-ops@corp.example"]);
    expected.insert(0, ("Support".into(), "admin".into()));
    assert_eq!(sso.memberships(&admin, &ana_id).await, expected);

    // A non-empty fetch with no group under the prefix keeps Carol out; Dan, in no group
    // at all (an empty fetch), enters with no rows.
    let carol = sso.sign_in(Person::new("carol@corp.example", &[]), "/").await;
    assert_eq!(carol.refused_with(), Some("not_in_allowed_group"));
    let dan = sso.sign_in(Person::new("dan@corp.example", &[]), "/").await;
    let dan_id = sso.me(dan.session.as_deref().expect("dan signs in")).await["id"].as_str().unwrap().to_string();
    assert!(sso.memberships(&admin, &dan_id).await.is_empty());

    // An empty fetch keeps the rows of the last sign-in: Ana leaves every group.
    for group in ["agnes-ops@corp.example", "everyone@corp.example", "sales@corp.example"] {
        directory.set_group(group, &["bob@corp.example"]);
    }
    assert!(sso.sign_in(Person::new("ana@corp.example", &[]), "/").await.session.is_some());
    assert_eq!(sso.memberships(&admin, &ana_id).await, expected, "an empty fetch keeps the prior rows");

    // Delegation revoked in the admin console: the read fails, she still enters on the
    // rows she had, and nothing is lost.
    directory.set_group("agnes-finance@corp.example", &["ana@corp.example"]);
    directory.accounts.delegate(GROUP_READONLY, false);
    let calls = directory.calls().len();
    assert!(sso.sign_in(Person::new("ana@corp.example", &[]), "/").await.session.is_some());
    assert_eq!(directory.calls().len(), calls, "no token, no directory call");
    assert_eq!(sso.memberships(&admin, &ana_id).await, expected);
}

/// The value of a hidden field in a page.
fn hidden(page: &str, name: &str) -> String {
    let at = page.find(&format!("name=\"{name}\" value=\"")).expect("the field") + name.len() + 15;
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn agnes_auth_login_goes_through_the_browser_on_an_sso_server() {
    use std::io::BufRead;
    let sso = Sso::start().await;
    let ended = sso.sign_in(Person::new("ana@corp.example", &["finance"]), "/").await;
    let cookie = format!("access_token={}", ended.session.expect("a browser session"));

    // No email, no password, a server with SSO: the browser flow. No opener on PATH here,
    // so the CLI says to open the page by hand.
    let config = tempfile::tempdir().unwrap();
    let mut cli = common::agnes()
        .env("AGNES_CONFIG_DIR", config.path())
        .env("PATH", "/nonexistent")
        .env_remove("AGNES_PASSWORD")
        .args(["auth", "login", "--server", &sso.server.url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(cli.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let page_url = line.trim().strip_prefix("Sign in in your browser: ").expect(&line).to_string();
    assert!(page_url.starts_with(&sso.server.url("/cli-login?port=")), "{page_url}");

    // The person, signed in, allows it; the browser lands on the CLI's listener.
    let page = sso.browser.get(&page_url).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("ana@corp.example"), "{page}");
    let form = [("_csrf", hidden(&page, "_csrf")), ("port", hidden(&page, "port")), ("state", hidden(&page, "state"))];
    let foreign = sso
        .browser
        .post(sso.server.url("/cli-login"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403, "another site cannot allow it");
    let allowed = sso
        .browser
        .post(sso.server.url("/cli-login"))
        .header("cookie", &cookie)
        .header("origin", &sso.server.url)
        .form(&form)
        .send()
        .await
        .unwrap();
    let back = location(&allowed);
    assert!(back.starts_with("http://127.0.0.1:") && back.contains("/callback?state="), "{back}");
    assert!(!back.contains("agnes_pat_"), "the token never travels in a URL");
    let landed = sso.browser.get(&back).send().await.unwrap();
    assert_eq!(landed.status(), 200);
    assert!(landed.text().await.unwrap().contains("agnes is signed in"));
    let status = tokio::task::spawn_blocking(move || cli.wait()).await.unwrap().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("as ana@corp.example (a personal access token for 90 days)"), "{rest}");

    // The saved token is a PAT of hers; the code was good once.
    let whoami =
        common::agnes().env("AGNES_CONFIG_DIR", config.path()).args(["auth", "whoami", "--json"]).output().unwrap();
    let me: Value = serde_json::from_slice(&whoami.stdout).unwrap();
    assert_eq!((me["email"].as_str(), me["type"].as_str()), (Some("ana@corp.example"), Some("pat")));
    let code = back.split("code=").nth(1).unwrap();
    let (status, _) = sso.api.post("/auth/cli/exchange", None, json!({"code": code})).await;
    assert_eq!(status, 400, "a code is used once");
}
