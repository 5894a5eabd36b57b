//! HTTP routing and the `spin-*` request headers, as Spin's `spin-http`
//! router and `trigger-http/src/headers.rs` do them.
//!
//! Routes are matched with the same `routefinder` crate Spin uses, after the
//! same rewrite (`/foo/...` → `/foo/*`; exact routes as written; a trailing
//! `/` stripped), so "most specific wins" ranks exactly as in Spin: segment
//! by segment, exact > `:param` > wildcard. A later duplicate of a route
//! replaces an earlier one, as in Spin.

use std::net::SocketAddr;

use anyhow::anyhow;

use crate::manifest::HttpTrigger;

/// The routes of an application.
pub struct Router {
    routes: routefinder::Router<RouteHandler>,
}

#[derive(Clone, Debug)]
struct RouteHandler {
    component_id: String,
    /// The route as written in the manifest.
    raw_route: String,
    /// The route with the (always `/`) base applied: Spin's "based route".
    based_route: String,
}

/// The outcome of routing one request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    pub component_id: String,
    pub raw_route: String,
    pub based_route: String,
    /// The part of the path matched by a trailing wildcard (`spin-path-info`).
    pub path_info: String,
    /// `:name` segments, for `spin-path-match-<name>`.
    pub named_wildcards: Vec<(String, String)>,
}

impl Router {
    /// Builds the router from the manifest's HTTP triggers.
    pub fn build(triggers: &[HttpTrigger]) -> anyhow::Result<Self> {
        let mut unique: Vec<RouteHandler> = Vec::new();
        for trigger in triggers {
            let handler = RouteHandler {
                component_id: trigger.component.clone(),
                raw_route: trigger.route.clone(),
                based_route: with_base(&trigger.route),
            };
            match unique.iter_mut().find(|h| h.raw_route == handler.raw_route) {
                Some(existing) => *existing = handler,
                None => unique.push(handler),
            }
        }
        let mut routes = routefinder::Router::new();
        for handler in unique {
            let spec = match handler.based_route.strip_suffix("/...") {
                Some(prefix) => format!("{prefix}/*"),
                None => handler.based_route.clone(),
            };
            routes.add(spec.as_str(), handler.clone()).map_err(|e| {
                anyhow!(
                    "Error parsing route {} associated with component {}: {e}",
                    handler.based_route,
                    handler.component_id
                )
            })?;
        }
        Ok(Self { routes })
    }

    /// The best route for `path`, or `None` (Spin answers a plain 404).
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let best = self.routes.best_match(path)?;
        let handler = best.handler();
        let captures = best.captures();
        // Spin's backward-compatible rendering of the trailing wildcard.
        let path_info = captures
            .wildcard()
            .map(|s| match (s.is_empty(), path.ends_with('/')) {
                (true, false) => s.to_owned(),
                (true, true) => "/".to_owned(),
                (false, false) => format!("/{s}"),
                (false, true) => format!("/{s}/"),
            })
            .unwrap_or_default();
        let named_wildcards = captures
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(RouteMatch {
            component_id: handler.component_id.clone(),
            raw_route: handler.raw_route.clone(),
            based_route: handler.based_route.clone(),
            path_info,
            named_wildcards,
        })
    }
}

/// Spin's `sanitize_with_base("/", route)`: absolute, one trailing `/` removed.
fn with_base(route: &str) -> String {
    let route = if route.starts_with('/') {
        route.to_string()
    } else {
        format!("/{route}")
    };
    route.strip_suffix('/').map(str::to_string).unwrap_or(route)
}

impl RouteMatch {
    /// The headers Spin appends to the client's, in Spin's order.
    /// `host` is the client's `Host` header (Spin falls back to `localhost`).
    pub fn spin_headers(
        &self,
        path_and_query: &str,
        host: &str,
        client_addr: SocketAddr,
    ) -> Vec<(String, String)> {
        let component_route = self
            .raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route)
            .to_string();
        let mut headers = vec![
            ("spin-path-info".to_string(), self.path_info.clone()),
            (
                "spin-full-url".to_string(),
                format!("http://{host}{path_and_query}"),
            ),
            ("spin-matched-route".to_string(), self.based_route.clone()),
            ("spin-base-path".to_string(), "/".to_string()),
            (
                "spin-raw-component-route".to_string(),
                self.raw_route.clone(),
            ),
            ("spin-component-route".to_string(), component_route),
            ("spin-client-addr".to_string(), client_addr.to_string()),
        ];
        for (name, value) in &self.named_wildcards {
            headers.push((
                format!("spin-path-match-{}", name.to_ascii_lowercase()),
                value.clone(),
            ));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router {
        let triggers: Vec<HttpTrigger> = routes
            .iter()
            .map(|r| HttpTrigger {
                route: r.to_string(),
                component: format!("c{r}"),
            })
            .collect();
        Router::build(&triggers).unwrap()
    }

    #[test]
    fn exact_beats_wildcard_and_longest_prefix_wins() {
        let r = router(&["/...", "/one", "/one/two/...", "/one/..."]);
        assert_eq!(r.route("/one").unwrap().raw_route, "/one");
        assert_eq!(r.route("/one/two/three").unwrap().raw_route, "/one/two/...");
        assert_eq!(r.route("/one/x").unwrap().raw_route, "/one/...");
        assert_eq!(r.route("/elsewhere").unwrap().raw_route, "/...");
    }

    #[test]
    fn unrouted_paths_have_no_match() {
        let r = router(&["/api/...", "/health"]);
        assert!(r.route("/nothing").is_none());
        assert!(r.route("/healthz").is_none());
    }

    #[test]
    fn headers_match_spin_for_the_catch_all_route() {
        let m = router(&["/..."]).route("/foo/bar").unwrap();
        let addr: SocketAddr = "127.0.0.9:58516".parse().unwrap();
        let headers = m.spin_headers("/foo/bar?x=1&y=2", "127.0.0.1:3000", addr);
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(
            get("spin-full-url"),
            "http://127.0.0.1:3000/foo/bar?x=1&y=2"
        );
        assert_eq!(get("spin-path-info"), "/foo/bar");
        assert_eq!(get("spin-matched-route"), "/...");
        assert_eq!(get("spin-raw-component-route"), "/...");
        assert_eq!(get("spin-component-route"), "");
        assert_eq!(get("spin-base-path"), "/");
        assert_eq!(get("spin-client-addr"), "127.0.0.9:58516");
    }

    #[test]
    fn headers_match_spin_for_a_named_wildcard_route() {
        let m = router(&["/api/:name/..."])
            .route("/api/alice/rest/of/path")
            .unwrap();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let headers = m.spin_headers("/api/alice/rest/of/path?q=1", "h", addr);
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(get("spin-path-info"), "/rest/of/path");
        assert_eq!(get("spin-component-route"), "/api/:name");
        assert_eq!(get("spin-path-match-name"), "alice");
    }
}
