//! The route table: which Cedar action and resource a (method, path) pair stands for.
//! Loaded from `routes.toml` in the policy directory; a request that matches no route is denied.

use std::collections::{BTreeMap, BTreeSet};

use percent_encoding::percent_decode_str;
use serde::Deserialize;

/// Longest URI considered for matching; longer ones match no route.
pub const MAX_URI_LEN: usize = 8 * 1024;
/// Longest value a path capture may take, after percent-decoding.
pub const MAX_CAPTURE_LEN: usize = 128;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutesFile {
    #[serde(default, rename = "route")]
    routes: Vec<RouteSpec>,
    /// Resource type → the action that decides whether a caller may know it exists.
    #[serde(default)]
    visibility: BTreeMap<String, String>,
}

/// One `[[route]]` entry as written in `routes.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// HTTP methods, upper case.
    #[serde(deserialize_with = "one_or_many")]
    pub method: Vec<String>,
    /// Path pattern: literal segments and `{name}` captures, e.g. `/api/projects/{id}`; `/`
    /// alone is the root, with no segments.
    pub path: String,
    /// Cedar action id, e.g. `ReadProject` for `Action::"ReadProject"`.
    pub action: String,
    /// The resource the request acts on.
    pub resource: ResourceSpec,
    /// A second question the service asks about a resource the request names elsewhere
    /// (its body, say): creating a project is also `CreateProjectInGroup` on its group.
    #[serde(default)]
    pub target: Option<TargetSpec>,
}

/// The `target` of a route: an action on a resource type whose id the service supplies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub action: String,
    #[serde(rename = "type")]
    pub entity_type: String,
}

/// The resource of a route: an entity type and an id, which may use the path's captures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    #[serde(rename = "type")]
    pub entity_type: String,
    pub id: String,
}

/// Reads a string or a list of strings as a list (`method = "GET"` or `["GET", "HEAD"]`).
pub fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum IdPart {
    Literal(String),
    Capture(usize),
}

/// A route compiled for matching.
#[derive(Debug, Clone)]
pub struct Route {
    pub spec: RouteSpec,
    methods: BTreeSet<String>,
    segments: Vec<Segment>,
    id_template: Vec<IdPart>,
}

/// What a matched request stands for in Cedar terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    /// The route's pattern, for logs and metrics.
    pub pattern: String,
    /// The request's canonical path: the percent-decoded segments the route matched, joined
    /// with `/`, with only `%`, `?` and `#` written encoded (`%25`, `%3F`, `%23`) so that the
    /// path reads back as the same segments. Policies see it as `context.path`: however a
    /// request spells its path, the same route means the same `context.path`.
    pub path: String,
}

/// Why a routes file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error("route {index} (`{path}`): {message}")]
    Invalid {
        index: usize,
        path: String,
        message: String,
    },
}

/// All routes, in file order; the first match wins.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    visibility: BTreeMap<String, String>,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl RouteTable {
    /// Parses and compiles `routes.toml`.
    pub fn parse(text: &str) -> Result<Self, RouteError> {
        let file: RoutesFile = toml::from_str(text)?;
        let routes = file
            .routes
            .into_iter()
            .enumerate()
            .map(|(i, spec)| Route::compile(i + 1, spec))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            routes,
            visibility: file.visibility,
        })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The `[visibility]` table: resource type → the action that lets a caller see it.
    pub fn visibility_actions(&self) -> &BTreeMap<String, String> {
        &self.visibility
    }

    /// The action that decides whether a caller may know a resource of this type exists.
    pub fn visibility(&self, resource_type: &str) -> Option<&str> {
        self.visibility.get(resource_type).map(String::as_str)
    }

    /// The canonical path of the item route for `id` of `resource_type`: the `GET` route whose
    /// action is the type's `[visibility]` action and whose resource is `{capture}` alone
    /// (`/api/projects/{id}`). What a list asks about each item, it asks with this path.
    pub fn item_path(&self, resource_type: &str, id: &str) -> Option<String> {
        let action = self.visibility(resource_type)?;
        let route = self.routes.iter().find(|r| {
            r.methods.contains("GET")
                && r.spec.action == action
                && r.spec.resource.entity_type == resource_type
                && matches!(r.id_template.as_slice(), [IdPart::Capture(_)])
                && r.segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Capture(_)))
                    .count()
                    == 1
        })?;
        let segments: Vec<String> = route
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.clone(),
                Segment::Capture(_) => id.to_string(),
            })
            .collect();
        Some(canonical_path(&segments))
    }

    /// The `target` of the route a match came from.
    pub fn target_of(&self, m: &RouteMatch) -> Option<&TargetSpec> {
        self.routes
            .iter()
            .find(|r| r.spec.path == m.pattern && r.spec.action == m.action)?
            .spec
            .target
            .as_ref()
    }

    /// Finds the route for a method and a raw request URI (query and fragment ignored).
    /// Returns `None` for anything odd: dot segments, empty segments, encoded slashes,
    /// control characters, over-long values.
    pub fn matches(&self, method: &str, uri: &str) -> Option<RouteMatch> {
        if uri.len() > MAX_URI_LEN || !is_token(method) {
            return None;
        }
        let path = uri.split(['?', '#']).next().unwrap_or_default();
        let rest = path.strip_prefix('/')?;
        let raw_segments: Vec<&str> = rest.split('/').filter(|_| !rest.is_empty()).collect();
        let mut decoded = Vec::with_capacity(raw_segments.len());
        for raw in &raw_segments {
            decoded.push(decode_segment(raw)?);
        }
        let mut found = self
            .routes
            .iter()
            .find_map(|route| route.matches(method, &decoded))?;
        found.path = canonical_path(&decoded);
        Some(found)
    }
}

/// Joins decoded segments into the one path that stands for them (see `RouteMatch::path`).
fn canonical_path(decoded: &[String]) -> String {
    let mut path = String::new();
    for segment in decoded {
        path.push('/');
        for c in segment.chars() {
            match c {
                '%' => path.push_str("%25"),
                '?' => path.push_str("%3F"),
                '#' => path.push_str("%23"),
                c => path.push(c),
            }
        }
    }
    if path.is_empty() { "/".into() } else { path }
}

/// Percent-decodes one path segment, refusing what could change the path's meaning downstream.
fn decode_segment(raw: &str) -> Option<String> {
    if raw.is_empty() || raw.bytes().any(|b| b <= 0x20 || b == 0x7f || b == b'\\') {
        return None;
    }
    let text = percent_decode_str(raw).decode_utf8().ok()?;
    if text == "."
        || text == ".."
        || text
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return None;
    }
    Some(text.into_owned())
}

impl Route {
    fn compile(index: usize, spec: RouteSpec) -> Result<Self, RouteError> {
        let invalid = |message: String| RouteError::Invalid {
            index,
            path: spec.path.clone(),
            message,
        };
        if spec.method.is_empty() {
            return Err(invalid("`method` is empty".into()));
        }
        let mut methods = BTreeSet::new();
        for m in &spec.method {
            if !is_token(m) || m.to_ascii_uppercase() != *m {
                return Err(invalid(format!(
                    "method `{m}` is not an upper-case HTTP method"
                )));
            }
            methods.insert(m.clone());
        }
        let rest = spec
            .path
            .strip_prefix('/')
            .ok_or_else(|| invalid("the path must start with `/`".into()))?;
        let mut segments = Vec::new();
        for seg in rest.split('/').filter(|_| !rest.is_empty()) {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if !is_ident(name) {
                    return Err(invalid(format!("capture `{{{name}}}` is not a plain name")));
                }
                if segments.contains(&Segment::Capture(name.to_string())) {
                    return Err(invalid(format!("capture `{{{name}}}` appears twice")));
                }
                segments.push(Segment::Capture(name.to_string()));
            } else if seg.is_empty() || seg.contains(['{', '}', '?', '#', '%']) {
                return Err(invalid(format!(
                    "segment `{seg}` is not a literal or a `{{capture}}`"
                )));
            } else {
                segments.push(Segment::Literal(seg.to_string()));
            }
        }
        if !is_ident(&spec.action) {
            return Err(invalid(format!(
                "action `{}` is not a plain name",
                spec.action
            )));
        }
        if !spec.resource.entity_type.split("::").all(is_ident) {
            return Err(invalid(format!(
                "resource type `{}` is not a Cedar entity type name",
                spec.resource.entity_type
            )));
        }
        let id_template = compile_template(&spec.resource.id, &segments).map_err(invalid)?;
        Ok(Self {
            spec,
            methods,
            segments,
            id_template,
        })
    }

    fn matches(&self, method: &str, decoded: &[String]) -> Option<RouteMatch> {
        if !self.methods.contains(method) || decoded.len() != self.segments.len() {
            return None;
        }
        let mut captures: Vec<&str> = Vec::new();
        for (seg, value) in self.segments.iter().zip(decoded) {
            match seg {
                Segment::Literal(lit) if lit == value => {}
                Segment::Literal(_) => return None,
                Segment::Capture(_) if value.len() > MAX_CAPTURE_LEN => return None,
                Segment::Capture(_) => captures.push(value),
            }
        }
        let mut id = String::new();
        for part in &self.id_template {
            match part {
                IdPart::Literal(s) => id.push_str(s),
                IdPart::Capture(i) => id.push_str(captures.get(*i)?),
            }
        }
        Some(RouteMatch {
            action: self.spec.action.clone(),
            resource_type: self.spec.resource.entity_type.clone(),
            resource_id: id,
            pattern: self.spec.path.clone(),
            path: String::new(),
        })
    }

    pub fn methods(&self) -> impl Iterator<Item = &str> {
        self.methods.iter().map(String::as_str)
    }
}

/// Compiles a resource id such as `{id}` or `ipm` against the path's captures.
fn compile_template(template: &str, segments: &[Segment]) -> Result<Vec<IdPart>, String> {
    let names: Vec<&str> = segments
        .iter()
        .filter_map(|s| match s {
            Segment::Capture(n) => Some(n.as_str()),
            Segment::Literal(_) => None,
        })
        .collect();
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        if start > 0 {
            parts.push(IdPart::Literal(rest[..start].to_string()));
        }
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("resource id `{template}` has an unclosed `{{`"))?;
        let name = &rest[start + 1..start + end];
        let index = names.iter().position(|n| *n == name).ok_or_else(|| {
            format!("resource id uses `{{{name}}}`, which the path does not capture")
        })?;
        parts.push(IdPart::Capture(index));
        rest = &rest[start + end + 1..];
    }
    if rest.contains('}') {
        return Err(format!("resource id `{template}` has an unmatched `}}`"));
    }
    if !rest.is_empty() {
        parts.push(IdPart::Literal(rest.to_string()));
    }
    if parts.is_empty() {
        return Err("resource id is empty".into());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = r#"
        [[route]]
        method = ["GET", "HEAD"]
        path = "/api/projects"
        action = "ListProjects"
        resource = { type = "Application", id = "ipm" }

        [[route]]
        method = "GET"
        path = "/api/projects/{id}"
        action = "ReadProject"
        resource = { type = "Project", id = "{id}" }
    "#;

    fn table() -> RouteTable {
        RouteTable::parse(ROUTES).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn the_root_is_a_route_of_no_segments() {
        let t = RouteTable::parse(
            r#"
            [[route]]
            method = "GET"
            path = "/"
            action = "UseApp"
            resource = { type = "Application", id = "ipm" }
        "#,
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        for root in ["/", "/?next=/x", "/#top"] {
            let m = t
                .matches("GET", root)
                .unwrap_or_else(|| unreachable!("{root}"));
            assert_eq!((m.action.as_str(), m.path.as_str()), ("UseApp", "/"));
        }
        for other in ["", "//", "/x", "/%2F", "/.", "x"] {
            assert!(t.matches("GET", other).is_none(), "{other}");
        }
        // Without a root route, `/` matches nothing.
        assert!(table().matches("GET", "/").is_none());
    }

    #[test]
    fn matches_and_captures() {
        let t = table();
        let m = t
            .matches("GET", "/api/projects/p-1?x=/../y")
            .unwrap_or_else(|| unreachable!());
        assert_eq!(m.action, "ReadProject");
        assert_eq!(m.resource_id, "p-1");
        assert_eq!(
            t.matches("HEAD", "/api/projects").map(|m| m.resource_id),
            Some("ipm".into())
        );
        assert_eq!(
            t.matches("GET", "/api/projects/a%20b")
                .map(|m| m.resource_id),
            Some("a b".into())
        );
    }

    #[test]
    fn the_canonical_path_is_the_same_for_every_spelling() {
        let t = table();
        let path = |uri: &str| t.matches("GET", uri).map(|m| m.path);
        let want = Some("/api/projects/p-1".to_string());
        for uri in [
            "/api/projects/p-1",
            "/api/projects/%70-1",
            "/%61pi/projects/p%2D1",
            "/api/projects/p-1?x=/../y#z",
        ] {
            assert_eq!(path(uri), want, "{uri}");
        }
        assert_eq!(
            path("/api/projects/a%20b"),
            Some("/api/projects/a b".into())
        );
        // What would read back differently stays encoded, always the same way.
        for (uri, canonical) in [
            ("/api/projects/50%25", "/api/projects/50%25"),
            ("/api/projects/a%3fb", "/api/projects/a%3Fb"),
            ("/api/projects/a%23b", "/api/projects/a%23b"),
            ("/api/projects/a%2525", "/api/projects/a%2525"),
        ] {
            assert_eq!(path(uri).as_deref(), Some(canonical), "{uri}");
            let again = t
                .matches("GET", canonical)
                .unwrap_or_else(|| unreachable!());
            assert_eq!(again.path, canonical, "{uri} reads back the same");
            assert_eq!(
                again.resource_id,
                t.matches("GET", uri)
                    .map(|m| m.resource_id)
                    .unwrap_or_default()
            );
        }
    }

    #[test]
    fn refuses_odd_paths() {
        let t = table();
        for uri in [
            "/api/projects/",
            "/api//projects",
            "/api/projects/..",
            "/api/projects/%2e%2e",
            "/api/projects/a%2Fb",
            "/api/projects/a%5Cb",
            "/api/projects/a%00b",
            "/api/projects/%ff",
            "/api/./projects",
            "api/projects",
            "",
            "/API/projects",
        ] {
            assert_eq!(t.matches("GET", uri), None, "{uri}");
        }
        assert_eq!(t.matches("DELETE", "/api/projects"), None);
        assert_eq!(t.matches("get", "/api/projects"), None);
        assert_eq!(
            t.matches("GET", &format!("/api/projects/{}", "a".repeat(129))),
            None
        );
    }

    #[test]
    fn refuses_bad_specs() {
        for bad in [
            r#"[[route]]
               method = "GET"
               path = "/x/{id}"
               action = "A"
               resource = { type = "P", id = "{other}" }"#,
            r#"[[route]]
               method = "get"
               path = "/x"
               action = "A"
               resource = { type = "P", id = "x" }"#,
            r#"[[route]]
               method = "GET"
               path = "/x"
               action = "A"
               resource = { type = "P", id = "x" }
               extra = 1"#,
        ] {
            assert!(RouteTable::parse(bad).is_err(), "{bad}");
        }
    }
}
