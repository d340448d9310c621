//! The Workspace directory client against the fake Admin SDK and Google accounts.

use super::directory::{Directory, DirectoryConfig};
use agnes_fakes::google_directory::{FakeDirectory, GROUP_READONLY};

const ADMIN: &str = "workspace-admin@corp.example";

fn config(fake: &FakeDirectory, credentials_env: &str) -> DirectoryConfig {
    DirectoryConfig {
        credentials_env: credentials_env.into(),
        api_endpoint: fake.url.clone(),
        iam_endpoint: fake.url.clone(),
        token_uri: format!("{}/token", fake.url),
        ..DirectoryConfig::new(ADMIN)
    }
}

#[test]
fn a_key_file_reads_every_page_of_a_users_groups() {
    let fake = FakeDirectory::start("corp.example", ADMIN);
    let mut expected: Vec<String> = (0..230).map(|i| format!("team-{i:03}@corp.example")).collect();
    for g in &expected {
        fake.set_group(g, &["ana@corp.example", "bob@corp.example"]);
    }
    fake.set_group("Bob-Only@Corp.example", &["bob@corp.example"]);
    fake.add_user("dan@corp.example");
    std::env::set_var("AGNES_TEST_DIRECTORY_KEY", &fake.key_file);
    let directory = Directory::connect(&config(&fake, "AGNES_TEST_DIRECTORY_KEY")).unwrap();

    assert_eq!(directory.groups_of("ana@corp.example").unwrap(), expected, "230 groups over two pages");
    assert_eq!(fake.calls(), ["ana@corp.example", "ana@corp.example"]);
    expected.insert(0, "bob-only@corp.example".into());
    expected.sort();
    assert_eq!(directory.groups_of("bob@corp.example").unwrap(), expected);
    assert!(directory.groups_of("dan@corp.example").unwrap().is_empty(), "a user in no group");
    assert_eq!(fake.accounts.token_requests(), 1, "one delegated token serves every call");

    let unknown = directory.groups_of("nobody@corp.example").unwrap_err().to_string();
    assert!(unknown.contains("404") && unknown.contains("Resource Not Found"), "{unknown}");
    let foreign = directory.groups_of("eve@elsewhere.example").unwrap_err().to_string();
    assert!(foreign.contains("403") && foreign.contains("Not Authorized"), "{foreign}");
}

#[test]
fn delegation_must_be_authorized_and_act_as_an_admin() {
    let fake = FakeDirectory::start("corp.example", ADMIN);
    fake.set_group("agnes-finance@corp.example", &["ana@corp.example"]);
    std::env::set_var("AGNES_TEST_DIRECTORY_KEY", &fake.key_file);

    fake.accounts.delegate(GROUP_READONLY, false);
    let refused = Directory::connect(&config(&fake, "AGNES_TEST_DIRECTORY_KEY"))
        .unwrap()
        .groups_of("ana@corp.example")
        .unwrap_err()
        .to_string();
    assert!(refused.contains("401") && refused.contains("unauthorized to retrieve access tokens"), "{refused}");
    assert!(fake.calls().is_empty());

    fake.accounts.delegate(GROUP_READONLY, true);
    let not_admin = DirectoryConfig { subject: "ana@corp.example".into(), ..config(&fake, "AGNES_TEST_DIRECTORY_KEY") };
    let refused = Directory::connect(&not_admin).unwrap().groups_of("ana@corp.example").unwrap_err().to_string();
    assert!(refused.contains("403") && refused.contains("Not Authorized"), "{refused}");
    let key = std::fs::read_to_string(&fake.key_file).unwrap();
    assert!(!refused.contains("PRIVATE KEY") && !key.is_empty());
}

#[test]
fn without_a_key_the_metadata_servers_account_signs_through_iam_credentials() {
    let fake = FakeDirectory::start("corp.example", ADMIN);
    fake.set_group("agnes-finance@corp.example", &["ana@corp.example"]);
    std::env::set_var("GCE_METADATA_HOST", fake.metadata_host());
    let directory = Directory::connect(&config(&fake, "AGNES_TEST_DIRECTORY_NO_KEY")).unwrap();
    assert_eq!(directory.groups_of("ana@corp.example").unwrap(), ["agnes-finance@corp.example"]);
    assert_eq!(fake.accounts.token_requests(), 2, "the metadata token, then the delegated one");

    // User credentials cannot act as anyone: said before any call.
    std::env::set_var("GCE_METADATA_HOST", "127.0.0.1:9");
    let gcloud = tempfile::tempdir().unwrap();
    std::fs::copy(&fake.adc_file, gcloud.path().join("application_default_credentials.json")).unwrap();
    std::env::set_var("CLOUDSDK_CONFIG", gcloud.path());
    let refused = Directory::connect(&config(&fake, "AGNES_TEST_DIRECTORY_NO_KEY")).err().unwrap().to_string();
    assert!(refused.contains("domain-wide delegation needs a service account"), "{refused}");
}
