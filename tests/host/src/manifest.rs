//! Reading `spin.toml` (manifest version 2): the HTTP triggers, the
//! application variables, and per component its variable templates,
//! key-value labels and environment. Parsing and Spin's load-time checks
//! only; routing and resolution live in [`crate::routing`] and
//! [`crate::variables`].

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _};
use serde::Deserialize;

/// The parts of a Spin application manifest the host acts on.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// `[variables]`, by name.
    pub variables: BTreeMap<String, VariableDecl>,
    /// `[[trigger.http]]`, in manifest order.
    pub http_triggers: Vec<HttpTrigger>,
    /// `[component.NAME]`, by name.
    pub components: BTreeMap<String, ComponentDecl>,
}

/// One `[variables]` entry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct VariableDecl {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

/// One `[[trigger.http]]` entry that routes to a component.
#[derive(Clone, Debug)]
pub struct HttpTrigger {
    /// The route as written, e.g. `/...`, `/api/:name/...`, `/health`.
    pub route: String,
    pub component: String,
}

/// One `[component.NAME]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ComponentDecl {
    /// `[component.NAME.variables]`: name → template such as `"{{ jwt_secret }}"`.
    pub variables: BTreeMap<String, String>,
    pub key_value_stores: Vec<String>,
    pub environment: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, ComponentDecl>,
}

#[derive(Default, Deserialize)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: RawRoute,
    component: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private { private: bool },
}

impl Manifest {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in manifest {}", path.display()))
    }

    /// Parses manifest text and applies the checks Spin makes when loading.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let raw: RawManifest = toml::from_str(text)?;
        if raw.spin_manifest_version.as_integer() != Some(2) {
            bail!(
                "only spin_manifest_version = 2 is supported, found {}",
                raw.spin_manifest_version
            );
        }
        for (name, decl) in &raw.variables {
            crate::variables::validate_name(name)
                .map_err(|reason| anyhow::anyhow!("[variables] invalid variable name {reason}"))?;
            match (&decl.default, decl.required) {
                (Some(_), true) => {
                    bail!("variable {name:?} has both a default and required = true")
                }
                (None, false) => bail!("variable {name:?} needs a default or required = true"),
                _ => {}
            }
        }
        let mut http_triggers = Vec::new();
        for trigger in raw.trigger.http {
            let route = match trigger.route {
                RawRoute::Path(route) => route,
                // Private endpoints are reachable only by service chaining.
                RawRoute::Private { private: true } => continue,
                RawRoute::Private { private: false } => {
                    bail!("route must be a string pattern or `{{ private = true }}`")
                }
            };
            let component = match trigger.component {
                Some(toml::Value::String(id)) => id,
                Some(_) => bail!("route {route:?}: inline components are not supported"),
                None => bail!("route {route:?}: static responses are not supported"),
            };
            if !raw.component.contains_key(&component) {
                bail!("route {route:?} refers to unknown component {component:?}");
            }
            http_triggers.push(HttpTrigger { route, component });
        }
        for (id, component) in &raw.component {
            for label in &component.key_value_stores {
                // Spin refuses to start when a label has no store configured;
                // without a runtime config only `default` exists.
                if label != "default" {
                    bail!(
                        "component {id:?}: key_value_stores label {label:?} is not configured \
                         (only \"default\" exists without a runtime config)"
                    );
                }
            }
        }
        Ok(Self {
            variables: raw.variables,
            http_triggers,
            components: raw.component,
        })
    }

    /// Picks the component the served wasm is: `wanted`, or else the only
    /// component any route leads to.
    pub fn served_component(&self, wanted: Option<&str>) -> anyhow::Result<String> {
        if let Some(id) = wanted {
            if !self.components.contains_key(id) {
                bail!("manifest has no component {id:?}");
            }
            return Ok(id.to_string());
        }
        let mut routed: Vec<&str> = self
            .http_triggers
            .iter()
            .map(|t| t.component.as_str())
            .collect();
        routed.sort_unstable();
        routed.dedup();
        match routed.as_slice() {
            [only] => Ok(only.to_string()),
            [] => bail!("manifest has no [[trigger.http]] routes"),
            many => bail!(
                "manifest routes to several components ({}); say which one the wasm is \
                 (HostConfig::component / --component)",
                many.join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
        spin_manifest_version = 2
        [application]
        name = "app"
        [variables]
        greeting = { default = "hello" }
        jwt_secret = { required = true, secret = true }
        [[trigger.http]]
        route = "/..."
        component = "app"
        [[trigger.http]]
        route = { private = true }
        component = "app"
        [component.app]
        source = "app.wasm"
        key_value_stores = ["default"]
        [component.app.variables]
        greeting = "{{ greeting }}"
    "#;

    #[test]
    fn routes_variables_and_stores_are_read() {
        let manifest = Manifest::parse(MANIFEST).unwrap();
        assert_eq!(manifest.http_triggers.len(), 1);
        assert_eq!(manifest.http_triggers[0].route, "/...");
        assert!(manifest.variables["jwt_secret"].secret);
        assert_eq!(
            manifest.variables["greeting"].default.as_deref(),
            Some("hello")
        );
        assert_eq!(manifest.components["app"].key_value_stores, ["default"]);
        assert_eq!(manifest.served_component(None).unwrap(), "app");
    }

    #[test]
    fn a_store_label_other_than_default_is_rejected() {
        let text = MANIFEST.replace(r#"["default"]"#, r#"["default", "cache"]"#);
        let err = Manifest::parse(&text).unwrap_err();
        assert!(format!("{err:#}").contains("\"cache\""), "{err:#}");
    }

    #[test]
    fn a_variable_without_default_or_required_is_rejected() {
        let text = MANIFEST.replace(r#"{ default = "hello" }"#, "{ secret = true }");
        assert!(Manifest::parse(&text).is_err());
    }
}
