//! Application variables: resolution at start-up and the guest-facing
//! `fermyon:spin/variables@2.0.0` and `wasi:config/store` interfaces.
//!
//! Mirrors Spin's `spin-expressions` and variables factor: names must be
//! lower-case `[a-z][a-z0-9_]*` without `__` or a trailing `_`
//! (`invalid-name` otherwise); a name the component does not map in
//! `[component.NAME.variables]` is `undefined`; templates are literal text
//! with `{{ name }}` expressions. A value comes from the per-test override,
//! then `SPIN_VARIABLE_<NAME>`, then the manifest default; a required
//! variable with no value fails start-up with Spin's message
//! ("no provider resolved required variable ...").

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context as _};

use crate::bindings::spin::variables as spin_vars;
use crate::bindings::wasi_config::store as wasi_config;
use crate::instance::InstanceState;
use crate::manifest::Manifest;

/// The component's variables, every template already resolved.
#[derive(Clone, Debug, Default)]
pub struct ResolvedVariables {
    component_id: String,
    values: BTreeMap<String, String>,
}

/// Why a guest's lookup failed (Spin's `spin_expressions::Error`, as seen by
/// the guest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    InvalidName(String),
    Undefined(String),
}

/// Checks a variable name the way Spin's `Key::validate` does.
pub fn validate_name(key: &str) -> Result<(), String> {
    let reason = if key.is_empty() {
        Some("must not be empty".to_string())
    } else if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        Some(format!(
            "invalid character {c:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        ))
    } else if !key.as_bytes()[0].is_ascii_lowercase() {
        Some("must start with a lowercase ASCII letter".to_string())
    } else if !key.as_bytes()[key.len() - 1].is_ascii_alphanumeric() {
        Some("must end with a lowercase ASCII letter or digit".to_string())
    } else if key.contains("__") {
        Some("must not contain multiple consecutive underscores".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(format!("{key:?}: {reason}")),
        None => Ok(()),
    }
}

/// One piece of a `{{ name }}` template.
enum Part<'a> {
    Literal(&'a str),
    Variable(&'a str),
}

fn parse_template(template: &str) -> anyhow::Result<Vec<Part<'_>>> {
    let mut parts = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(after_open) = rest.strip_prefix("{{") {
            let Some((expr, after)) = after_open.split_once("}}") else {
                bail!("unmatched '{{{{' in template {template:?}");
            };
            parts.push(Part::Variable(expr.trim()));
            rest = after;
        } else {
            let end = rest.find("{{").unwrap_or(rest.len());
            parts.push(Part::Literal(&rest[..end]));
            rest = &rest[end..];
        }
    }
    Ok(parts)
}

impl ResolvedVariables {
    /// Resolves every application variable (failing like `spin up` when a
    /// required one has no value), then the component's templates.
    pub fn resolve(
        manifest: &Manifest,
        component_id: &str,
        overrides: &HashMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        for name in overrides.keys() {
            if !manifest.variables.contains_key(name) {
                bail!("variable override {name:?} is not declared in the manifest's [variables]");
            }
        }
        let mut app_values = BTreeMap::new();
        for (name, decl) in &manifest.variables {
            let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            let value = overrides
                .get(name)
                .cloned()
                .or_else(|| env(&env_name))
                .or_else(|| decl.default.clone());
            match value {
                Some(value) => app_values.insert(name.clone(), value),
                None => bail!("no provider resolved required variable {name:?}"),
            };
        }
        let mut values = BTreeMap::new();
        if let Some(component) = manifest.components.get(component_id) {
            for (key, template) in &component.variables {
                validate_name(key)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("[component.{component_id}.variables] {key}"))?;
                let mut value = String::new();
                for part in parse_template(template)? {
                    match part {
                        Part::Literal(text) => value.push_str(text),
                        Part::Variable(name) => match app_values.get(name) {
                            Some(v) => value.push_str(v),
                            None => bail!(
                                "invalid variable template: [component.{component_id}.variables] \
                                 {key}: unknown variable {name:?}"
                            ),
                        },
                    }
                }
                values.insert(key.clone(), value);
            }
        }
        Ok(Self {
            component_id: component_id.to_string(),
            values,
        })
    }

    /// What `fermyon:spin/variables.get` answers.
    pub fn get(&self, key: &str) -> Result<String, LookupError> {
        validate_name(key).map_err(LookupError::InvalidName)?;
        self.values.get(key).cloned().ok_or_else(|| {
            LookupError::Undefined(format!("no variable for {:?}.{key:?}", self.component_id))
        })
    }

    /// Every variable the component maps, for `wasi:config/store.get-all`.
    pub fn all(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl spin_vars::Host for InstanceState {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, spin_vars::Error>> {
        Ok(self.variables.get(&name).map_err(|e| match e {
            LookupError::InvalidName(m) => spin_vars::Error::InvalidName(m),
            LookupError::Undefined(m) => spin_vars::Error::Undefined(m),
        }))
    }
}

impl wasi_config::Host for InstanceState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, wasi_config::Error>> {
        // Spin answers `none` for both undefined and invalid names.
        Ok(Ok(self.variables.get(&key).ok()))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, wasi_config::Error>> {
        Ok(Ok(self.variables.all()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
            spin_manifest_version = 2
            [variables]
            greeting = { default = "hello" }
            token = { required = true, secret = true }
            [[trigger.http]]
            route = "/..."
            component = "app"
            [component.app.variables]
            greeting = "{{ greeting }}, world"
            token = "{{token}}"
            literal = "plain"
            "#,
        )
        .unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn override_beats_environment_beats_default() {
        let overrides = HashMap::from([("token".to_string(), "from-test".to_string())]);
        let env = |name: &str| (name == "SPIN_VARIABLE_GREETING").then(|| "hi".to_string());
        let vars = ResolvedVariables::resolve(&manifest(), "app", &overrides, env).unwrap();
        assert_eq!(vars.get("greeting").unwrap(), "hi, world");
        assert_eq!(vars.get("token").unwrap(), "from-test");
        assert_eq!(vars.get("literal").unwrap(), "plain");
    }

    #[test]
    fn a_required_variable_without_value_fails_start_up() {
        let err =
            ResolvedVariables::resolve(&manifest(), "app", &HashMap::new(), no_env).unwrap_err();
        assert!(err
            .to_string()
            .contains("no provider resolved required variable"));
    }

    #[test]
    fn unmapped_and_invalid_names_are_reported_like_spin() {
        let overrides = HashMap::from([("token".to_string(), "t".to_string())]);
        let vars = ResolvedVariables::resolve(&manifest(), "app", &overrides, no_env).unwrap();
        assert!(matches!(
            vars.get("missing"),
            Err(LookupError::Undefined(_))
        ));
        assert!(matches!(
            vars.get("Bad-Name"),
            Err(LookupError::InvalidName(_))
        ));
    }
}
