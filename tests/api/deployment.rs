//! The deployment files can only mention variables the service knows, and `.env.example`
//! documents every one of them. (There is no Docker engine here to run them.)

use std::{collections::BTreeSet, path::PathBuf};

use payymo::config::Config;

fn read(file: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap()
}

fn known() -> BTreeSet<&'static str> {
    Config::variable_names().collect()
}

/// Variables the Postgres and Redis images read, not ours.
const IMAGE_VARIABLES: &[&str] = &["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"];

#[test]
fn env_example_is_generated_from_the_config() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".env.example");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, Config::env_example()).unwrap();
    }
    assert!(
        read(".env.example") == Config::env_example(),
        ".env.example is out of date with src/config.rs; regenerate it with `UPDATE_SNAPSHOTS=1 cargo test env_example`"
    );
}

#[test]
fn compose_sets_only_known_variables() {
    let mut compose: serde_yaml::Value = serde_yaml::from_str(&read("docker-compose.yml")).unwrap();
    compose.apply_merge().unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let mut payymo_services = 0;
    for (name, service) in services {
        let image = service["image"].as_str().unwrap_or("");
        let ours = service.get("build").is_some() || image.starts_with("payymo");
        let Some(environment) = service.get("environment").and_then(|e| e.as_mapping()) else { continue };
        for key in environment.keys() {
            let key = key.as_str().unwrap();
            if ours {
                assert!(
                    known().contains(key),
                    "docker-compose.yml service {name:?} sets {key}, which the config does not know"
                );
                assert!(read(".env.example").contains(&format!("{key}=")), "{key} is not in .env.example");
            } else {
                assert!(IMAGE_VARIABLES.contains(&key) || !key.starts_with("PAYYMO_"), "{name:?}: {key}");
            }
        }
        payymo_services += usize::from(ours);
    }
    assert!(payymo_services >= 2, "compose runs at least two payymo replicas");
}

#[test]
fn dockerfile_sets_only_known_variables() {
    let dockerfile = read("Dockerfile");
    let mut seen = 0;
    for line in dockerfile.lines().filter(|l| l.trim_start().starts_with("ENV ")) {
        for pair in line.trim_start()[4..].split_whitespace() {
            let key = pair.split('=').next().unwrap();
            assert!(known().contains(key), "Dockerfile sets {key}, which the config does not know");
            seen += 1;
        }
    }
    assert!(seen > 0, "the Dockerfile sets the listen address for containers");
}
