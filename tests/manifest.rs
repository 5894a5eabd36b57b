//! `spin.toml` must route every API path to the component and declare every
//! variable the code reads: Spin would otherwise answer its own 404, or the
//! variable would silently keep its default.

use secure_backend::{config, router};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use toml::Value;
use yaml_serde::Value as Yaml;

const COMPONENT: &str = "secure-backend";

fn manifest() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/spin.toml")).unwrap();
    Value::Table(toml::from_str(&text).unwrap())
}

#[test]
fn every_api_path_and_a_catch_all_route_to_the_component() {
    let manifest = manifest();
    let routes: Vec<(&str, &str)> = manifest["trigger"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["route"].as_str().unwrap(),
                t["component"].as_str().unwrap(),
            )
        })
        .collect();
    for path in router::paths() {
        // A path with parameters is routed by its fixed prefix's wildcard.
        let route = match path.split_once("/{") {
            Some((prefix, _)) => format!("{prefix}/..."),
            None => path.to_owned(),
        };
        assert!(
            routes.contains(&(route.as_str(), COMPONENT)),
            "{path} is not routed in spin.toml (as {route})"
        );
    }
    // So that unknown paths get the API's JSON 404, not Spin's empty one.
    assert!(routes.contains(&("/...", COMPONENT)));
}

#[test]
fn every_variable_is_declared_and_mapped() {
    let manifest = manifest();
    let declared = manifest["variables"].as_table().unwrap();
    let mapped = manifest["component"][COMPONENT]["variables"]
        .as_table()
        .unwrap();
    for name in config::VARIABLES {
        assert!(declared.contains_key(name), "{name} not under [variables]");
        assert_eq!(
            mapped.get(name).and_then(Value::as_str),
            Some(format!("{{{{ {name} }}}}").as_str()),
            "{name} not mapped into the component"
        );
    }
    for secret in ["jwt_secret", "admin_bootstrap_token", "mfa_encryption_key"] {
        assert_eq!(
            declared[secret]["secret"].as_bool(),
            Some(true),
            "{secret} must be secret"
        );
    }
    assert_eq!(
        declared.len(),
        config::VARIABLES.len(),
        "a declared variable nobody reads"
    );
}

#[test]
fn the_component_uses_the_default_store_and_builds_for_wasip1() {
    let manifest = manifest();
    let component = &manifest["component"][COMPONENT];
    assert_eq!(
        component["key_value_stores"].as_array().unwrap(),
        &[Value::from("default")]
    );
    assert_eq!(
        component["source"].as_str(),
        Some("target/wasm32-wasip1/release/secure_backend.opt.wasm")
    );
    assert_eq!(
        component["build"]["command"].as_str(),
        Some("tools/build-component")
    );
}

// ---------------------------------------------------------------------------
// Deployment files (deploy/, runtime-config/): every variable they set must be
// declared in spin.toml, or the platform would reject the deploy (Spin refuses
// undeclared variables) or, worse, the value would silently go nowhere.

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every file under `dir`, relative to the repository, sorted.
fn files_under(dir: &str) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo_path(dir), &mut out);
    let root = repo_path("");
    let mut rel: Vec<String> = out
        .iter()
        .map(|p| {
            p.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    rel.sort();
    rel
}

fn is_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The text from `at` on, for an error message.
fn near(text: &str, at: usize) -> String {
    text[at..].chars().take(40).collect()
}

/// The names in every `--variable NAME=...` (or `--variable=NAME=...`). Every
/// `--variable` must be followed by a name and `=`: a form this does not
/// understand is an error rather than a silent skip.
fn cli_variables(text: &str) -> Result<Vec<String>, String> {
    text.match_indices("--variable")
        .map(|(at, flag)| {
            let rest = &text[at + flag.len()..];
            rest.strip_prefix('=')
                .or_else(|| Some(rest.strip_prefix(' ')?.trim_start_matches(' ')))
                .and_then(|rest| rest.split_once('='))
                .map(|(name, _)| name.to_owned())
                .filter(|name| is_variable_name(name))
                .ok_or_else(|| format!("--variable without NAME=: {:?}", near(text, at)))
        })
        .collect()
}

/// The variable names behind every `SPIN_VARIABLE_NAME` mentioned.
fn env_variables(text: &str) -> Result<Vec<String>, String> {
    text.match_indices("SPIN_VARIABLE_")
        .map(|(at, prefix)| {
            let name: String = text[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .map(|c| c.to_ascii_lowercase())
                .collect();
            Some(name)
                .filter(|name| is_variable_name(name))
                .ok_or_else(|| format!("SPIN_VARIABLE_ without a name: {:?}", near(text, at)))
        })
        .collect()
}

/// The names in `spin cloud variables set|delete --app APP NAME[=VALUE]...`.
fn cloud_variables_commands(text: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let Some((_, rest)) = line
            .split_once("spin cloud variables set")
            .or_else(|| line.split_once("spin cloud variables delete"))
        else {
            continue;
        };
        let mut tokens = rest.split('`').next().unwrap().split_whitespace();
        let before = names.len();
        while let Some(token) = tokens.next() {
            let name = token.split('=').next().unwrap();
            if token == "--app" {
                tokens.next();
            } else if !is_variable_name(name) {
                return Err(format!("not a variable name {token:?} in: {line}"));
            } else {
                names.push(name.to_owned());
            }
        }
        if names.len() == before {
            return Err(format!("no variable named in: {line}"));
        }
    }
    Ok(names)
}

/// Shell commands with their `\` continuation lines joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        match line.trim_end().strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out.push(current);
    out
}

#[test]
fn the_command_line_readers_are_strict() {
    let text = "spin aka deploy --variable jwt_secret=\"$X\" \\\n  --variable=bcrypt_cost=10\n\
                export SPIN_VARIABLE_LOGIN_RATE_LIMIT=3\n\
                spin cloud variables delete --app app admin_bootstrap_token\n";
    assert_eq!(cli_variables(text).unwrap(), ["jwt_secret", "bcrypt_cost"]);
    assert_eq!(env_variables(text).unwrap(), ["login_rate_limit"]);
    assert_eq!(
        cloud_variables_commands(text).unwrap(),
        ["admin_bootstrap_token"]
    );
    assert_eq!(
        logical_lines(text)[0],
        "spin aka deploy --variable jwt_secret=\"$X\"   --variable=bcrypt_cost=10"
    );
    assert!(cli_variables("use --variables a=b").is_err());
    assert!(cli_variables("spin up --variable @vars.toml").is_err());
    assert!(cli_variables("--variable NAME=value").is_err());
    assert!(env_variables("set SPIN_VARIABLE_<NAME>").is_err());
    assert!(cloud_variables_commands("spin cloud variables set --app a").is_err());
    assert!(cloud_variables_commands("spin cloud variables set --app a -x n=1").is_err());
}

// The SpinKube manifests, read with a YAML parser.

const SPINAPP: &str = "deploy/spinkube/spinapp.yaml";
const SECRETS: &str = "deploy/spinkube/secrets.yaml";
const DEPLOY_README: &str = "deploy/README.md";

/// The documents of a multi-document YAML file.
fn yaml_documents(rel: &str) -> Vec<Yaml> {
    yaml_serde::Deserializer::from_str(&read(rel))
        .map(|doc| Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .collect()
}

/// The one SpinApp in spinapp.yaml.
fn spinapp() -> Yaml {
    let mut apps: Vec<Yaml> = yaml_documents(SPINAPP)
        .into_iter()
        .filter(|doc| doc["kind"] == "SpinApp")
        .collect();
    assert_eq!(apps.len(), 1, "{SPINAPP}: not exactly one SpinApp");
    apps.remove(0)
}

/// The SpinApp's `spec.variables`.
fn spinapp_variables(app: &Yaml) -> Vec<(&str, &Yaml)> {
    let vars = app["spec"]["variables"].as_sequence();
    let vars = vars.unwrap_or_else(|| panic!("{SPINAPP}: no spec.variables"));
    vars.iter()
        .map(|var| match var["name"].as_str() {
            Some(name) => (name, var),
            None => panic!("{SPINAPP}: a variable without a name: {var:?}"),
        })
        .collect()
}

/// `(secret name, key)` of every `secretKeyRef` anywhere under `yaml`.
fn secret_key_refs(yaml: &Yaml, refs: &mut Vec<(String, String)>) {
    match yaml {
        Yaml::Mapping(map) => {
            for (field, value) in map {
                if field == "secretKeyRef" {
                    let get = |f: &str| value[f].as_str().map(str::to_owned);
                    let (Some(name), Some(key)) = (get("name"), get("key")) else {
                        panic!("a secretKeyRef without name and key: {value:?}");
                    };
                    refs.push((name, key));
                }
                secret_key_refs(value, refs);
            }
        }
        Yaml::Sequence(items) => items.iter().for_each(|item| secret_key_refs(item, refs)),
        _ => {}
    }
}

/// `(secret name, key)` of every key (`stringData` or `data`) of every Secret in secrets.yaml.
fn secret_keys() -> BTreeSet<(String, String)> {
    let mut keys = BTreeSet::new();
    let docs = yaml_documents(SECRETS);
    for secret in docs.iter().filter(|doc| doc["kind"] == "Secret") {
        let name = secret["metadata"]["name"].as_str();
        let name = name.unwrap_or_else(|| panic!("{SECRETS}: a Secret without metadata.name"));
        for data in ["stringData", "data"].map(|field| secret[field].as_mapping()) {
            for key in data.into_iter().flat_map(|data| data.keys()) {
                keys.insert((name.to_owned(), key.as_str().unwrap().to_owned()));
            }
        }
    }
    keys
}

#[test]
fn every_spinkube_manifest_parses_and_has_api_version_kind_and_name() {
    let files: Vec<String> = files_under("deploy/spinkube")
        .into_iter()
        .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
        .collect();
    for must in [SPINAPP, SECRETS] {
        assert!(files.iter().any(|f| f == must), "{must} is missing");
    }
    for file in &files {
        for doc in yaml_documents(file) {
            for field in [&doc["apiVersion"], &doc["kind"], &doc["metadata"]["name"]] {
                assert!(
                    field.is_string(),
                    "{file}: a document without apiVersion, kind or metadata.name"
                );
            }
        }
    }
}

#[test]
fn the_spinapp_is_a_spinkube_app_run_by_the_spin_shim() {
    let app = spinapp();
    assert_eq!(app["apiVersion"], "core.spinkube.dev/v1alpha1");
    assert_eq!(app["spec"]["executor"], "containerd-shim-spin");
}

#[test]
fn the_spinapp_sets_exactly_the_variables_spin_toml_declares() {
    let manifest = manifest();
    let declared: BTreeSet<&str> = manifest["variables"]
        .as_table()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let app = spinapp();
    let names: Vec<&str> = spinapp_variables(&app).iter().map(|v| v.0).collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "{SPINAPP}: a variable set twice: {names:?}"
    );
    // Every tunable is listed, so a new variable in spin.toml shows up here.
    assert_eq!(
        unique, declared,
        "{SPINAPP} (left) must list exactly spin.toml's variables (right)"
    );
}

#[test]
fn secret_variables_come_from_a_secret_and_the_others_are_plain_values() {
    let manifest = manifest();
    let declared = manifest["variables"].as_table().unwrap();
    let app = spinapp();
    for (name, var) in spinapp_variables(&app) {
        let Some(declared) = declared.get(name) else {
            continue; // the_spinapp_sets_exactly_the_variables_spin_toml_declares fails
        };
        if declared.get("secret").and_then(Value::as_bool) == Some(true) {
            assert!(
                var.get("value").is_none() && var["valueFrom"]["secretKeyRef"].is_mapping(),
                "{SPINAPP}: secret {name} must come from valueFrom.secretKeyRef, never a value"
            );
        } else {
            assert!(
                var["value"].is_string() && var.get("valueFrom").is_none(),
                "{SPINAPP}: {name} must be a plain string value"
            );
        }
    }
}

#[test]
fn every_secret_the_spinapp_reads_is_in_secrets_yaml() {
    let mut refs = Vec::new();
    secret_key_refs(&spinapp(), &mut refs);
    // jwt_secret, admin_bootstrap_token, mfa_encryption_key and the Redis
    // URL of the runtime config.
    assert_eq!(refs.len(), 4, "{refs:?}");
    let secrets = secret_keys();
    for (name, key) in &refs {
        assert!(
            secrets.contains(&(name.clone(), key.clone())),
            "{SECRETS} has no Secret {name} with key {key}: {secrets:?}"
        );
    }
}

#[test]
fn every_variable_the_deployment_files_set_is_declared() {
    let manifest = manifest();
    let declared = manifest["variables"].as_table().unwrap();
    let mut files = files_under("deploy");
    files.extend(files_under("runtime-config"));
    for must in [SPINAPP, DEPLOY_README, "runtime-config/redis.toml"] {
        assert!(files.iter().any(|f| f == must), "{must} is missing");
    }

    let mut per_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let text = read(file);
        let mut names = Vec::new();
        for found in [
            cli_variables(&text),
            env_variables(&text),
            cloud_variables_commands(&text),
        ] {
            names.extend(found.unwrap_or_else(|e| panic!("{file}: {e}")));
        }
        for name in &names {
            assert!(
                declared.contains_key(name),
                "{file} sets {name}, which spin.toml does not declare"
            );
        }
        per_file.insert(file.clone(), names);
    }

    // The files that must set variables do: a reader that silently finds
    // nothing fails here instead of passing.
    let readme = &per_file[DEPLOY_README];
    for name in ["jwt_secret", "admin_bootstrap_token"] {
        assert!(
            readme.iter().any(|n| n == name),
            "{DEPLOY_README} sets no {name}: {readme:?}"
        );
    }
    for script in files.iter().filter(|f| f.ends_with(".sh")) {
        assert!(!per_file[script].is_empty(), "{script} sets no variable");
    }

    // jwt_secret in every command that deploys to a multi-instance platform.
    let text = read(DEPLOY_README);
    let mut deploys = 0;
    for line in logical_lines(&text) {
        let command = line.trim_start();
        if command.starts_with("spin cloud deploy") || command.starts_with("spin aka deploy") {
            deploys += 1;
            assert!(
                command.contains("--variable jwt_secret="),
                "{DEPLOY_README}: a deploy without jwt_secret: {command}"
            );
        }
    }
    assert!(
        deploys >= 2,
        "{DEPLOY_README}: found {deploys} deploy commands"
    );
}

#[test]
fn the_redis_runtime_config_points_the_default_store_at_redis() {
    let text = read("runtime-config/redis.toml");
    let config: Value = Value::Table(toml::from_str(&text).unwrap());
    let store = &config["key_value_store"]["default"];
    assert_eq!(store["type"].as_str(), Some("redis"));
    assert!(store["url"].as_str().unwrap().starts_with("redis://"));
    // Any other runtime config here must at least parse.
    for file in files_under("runtime-config") {
        if file.ends_with(".toml") {
            toml::from_str::<toml::Table>(&read(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
}
