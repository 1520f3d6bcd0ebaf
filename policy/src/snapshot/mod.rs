//! The policy snapshot: every Cedar policy, the schema, the route table and the entities file
//! of a policy directory, parsed and validated together, published as one immutable value.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use cedar_policy::{Entities, EntityId, EntityTypeName, EntityUid, PolicyId, PolicySet, Schema};
use sha2::{Digest, Sha256};

use crate::diagnostics::Problem;
use crate::memo::DecisionMemo;
use crate::routes::RouteTable;
use crate::slice::PolicyIndex;

mod entity_file;
mod files;
pub mod literals;
mod problems;
mod read;

pub use files::ParseCache;
use problems::{check_request_shape, duplicate_id, route_problem};
pub use read::{affects_dir, read_dir, read_dir_settled, read_dir_settled_with};

/// The schema file's name inside the policy directory.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// The routes file's name inside the policy directory.
pub const ROUTES_FILE: &str = "routes.toml";
/// The entities file's name inside the policy directory (optional): Cedar's entities JSON.
pub const ENTITIES_FILE: &str = "entities.json";
/// The annotation that names a policy.
pub const ID_ANNOTATION: &str = "id";

/// A policy directory that failed to load: every problem found, not just the first.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} problem(s) in `{}`: {}", problems.len(), dir.display(), summary(problems))]
pub struct LoadError {
    pub dir: PathBuf,
    pub problems: Vec<Problem>,
}

fn summary(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl LoadError {
    /// Every problem, rendered with its source line, for a terminal.
    pub fn render(&self) -> String {
        self.problems
            .iter()
            .map(|p| p.rendered.clone())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The text of the files that make up a snapshot, by file name.
pub type SourceFiles = BTreeMap<String, String>;

/// A validated, immutable set of policies, schema, routes and known entities.
#[derive(Debug)]
pub struct PolicySnapshot {
    pub policies: PolicySet,
    pub schema: Schema,
    pub routes: RouteTable,
    /// SHA-256 over the files' names and contents.
    pub hash: String,
    pub loaded_at: SystemTime,
    pub sources: SourceFiles,
    /// The file each policy id came from.
    pub policy_files: BTreeMap<String, String>,
    /// Schema validation warnings (policies that can never apply, and similar).
    pub warnings: Vec<Problem>,
    /// The schema's action entities (and their hierarchy), built once per snapshot so a
    /// decision only adds the request's own entities.
    pub action_entities: Entities,
    /// The policies grouped by the actions they can apply to.
    pub index: PolicyIndex,
    /// What the policies name, for lists that follow them (`visible`).
    pub literals: literals::Literals,
    /// The entities file's entities (validated against the schema, transitive closure
    /// computed) and the schema's action entities: what a direct evaluation knows beyond the
    /// request.
    pub entities: Entities,
    /// Decisions already made on this snapshot (`crate::memo`): a reload starts afresh.
    pub memo: DecisionMemo,
}

/// The hash that identifies a set of source files.
pub fn hash_sources(files: &SourceFiles) -> String {
    let mut h = Sha256::new();
    for (name, text) in files {
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update((text.len() as u64).to_be_bytes());
        h.update(text.as_bytes());
    }
    hex::encode(h.finalize())
}

impl PolicySnapshot {
    /// Loads and validates a policy directory.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let files = read_dir(dir)?;
        Self::from_sources(dir, files)
    }

    /// Builds a snapshot from file contents; `dir` is used only in messages.
    pub fn from_sources(dir: &Path, files: SourceFiles) -> Result<Self, LoadError> {
        Self::from_sources_with(dir, files, &mut ParseCache::default())
    }

    /// [`Self::from_sources`], reusing what `cache` kept of files that did not change since
    /// it last saw them (and keeping this load's files for the next).
    pub fn from_sources_with(
        dir: &Path,
        files: SourceFiles,
        cache: &mut ParseCache,
    ) -> Result<Self, LoadError> {
        let mut problems = Vec::new();
        let display = |name: &str| dir.join(name).display().to_string();

        let schema = match files.get(SCHEMA_FILE) {
            None => {
                problems.push(Problem::whole_file(
                    &display(SCHEMA_FILE),
                    "the schema file is missing",
                ));
                None
            }
            Some(text) => match Schema::from_cedarschema_str(text) {
                Ok((schema, _warnings)) => Some(schema),
                Err(e) => {
                    problems.push(Problem::from_diagnostic(&display(SCHEMA_FILE), text, &e));
                    None
                }
            },
        };

        let routes = match files.get(ROUTES_FILE) {
            None => {
                problems.push(Problem::whole_file(
                    &display(ROUTES_FILE),
                    "the routes file is missing",
                ));
                None
            }
            Some(text) => match RouteTable::parse(text) {
                Ok(r) => Some(r),
                Err(crate::routes::RouteError::Toml(e)) => {
                    let mut p = Problem::whole_file(&display(ROUTES_FILE), e.message());
                    if let Some(span) = e.span() {
                        let (line, col) = crate::diagnostics::line_col(text, span.start);
                        p.line = Some(line);
                        p.column = Some(col);
                        p.rendered = format!("{}:{line}:{col}: {e}", display(ROUTES_FILE));
                    }
                    problems.push(p);
                    None
                }
                Err(e) => {
                    problems.push(Problem::whole_file(&display(ROUTES_FILE), e.to_string()));
                    None
                }
            },
        };

        let mut policies = PolicySet::new();
        let mut policy_files: BTreeMap<String, String> = BTreeMap::new();
        let schema_text = files.get(SCHEMA_FILE).map(String::as_str);
        let parsed = cache.parse_all(dir, &files, schema.as_ref().zip(schema_text));
        let mut warnings = Vec::new();
        for (name, file) in &parsed {
            let text = files.get(name).map_or("", String::as_str);
            problems.extend(file.problems.iter().cloned());
            warnings.extend(file.warnings.iter().cloned());
            let mut seen_here: HashMap<&str, usize> = HashMap::new();
            for (id, policy) in &file.policies {
                let nth = seen_here.entry(id).or_insert(0);
                *nth += 1;
                if let Some(first) = policy_files.get(id) {
                    let first_text = files.get(first).map_or("", String::as_str);
                    problems.push(duplicate_id(
                        &display(name),
                        text,
                        id,
                        *nth - 1,
                        (first, first_text),
                    ));
                    continue;
                }
                if let Some(message) = problems::user_literal_case(policy) {
                    problems.push(Problem::whole_file(
                        &display(name),
                        format!("policy `{id}`: {message}"),
                    ));
                    continue;
                }
                if let Err(e) = policies.add(policy.clone()) {
                    problems.push(Problem::whole_file(&display(name), e.to_string()));
                    continue;
                }
                policy_files.insert(id.clone(), name.clone());
            }
        }

        if let Some(schema) = &schema
            && let Some(routes) = &routes
        {
            let text = files.get(ROUTES_FILE).map_or("", String::as_str);
            for (ty, action) in routes.visibility_actions() {
                if let Err(message) = check_request_shape(schema, action, ty) {
                    problems.push(Problem::whole_file(
                        &display(ROUTES_FILE),
                        format!("[visibility] `{ty} = \"{action}\"`: {message}"),
                    ));
                }
            }
            for (i, route) in routes.routes().iter().enumerate() {
                if let Some(t) = &route.spec.target
                    && let Err(message) = check_request_shape(schema, &t.action, &t.entity_type)
                {
                    problems.push(Problem::whole_file(
                        &display(ROUTES_FILE),
                        format!("route {} (`{}`) target: {message}", i + 1, route.spec.path),
                    ));
                }
                if let Err(message) = check_request_shape(
                    schema,
                    &route.spec.action,
                    &route.spec.resource.entity_type,
                ) {
                    problems.push(route_problem(
                        &display(ROUTES_FILE),
                        text,
                        schema,
                        i,
                        &route.spec,
                        format!("route {} (`{}`): {message}", i + 1, route.spec.path),
                    ));
                }
            }
        }

        let action_entities = match &schema {
            Some(schema) => match schema.action_entities() {
                Ok(a) => a,
                Err(e) => {
                    problems.push(Problem::whole_file(&display(SCHEMA_FILE), e.to_string()));
                    Entities::empty()
                }
            },
            None => Entities::empty(),
        };
        let entities = match &schema {
            Some(schema) => entity_file::load(
                &display(ENTITIES_FILE),
                files.get(ENTITIES_FILE),
                schema,
                &action_entities,
                &mut problems,
            ),
            None => Entities::empty(),
        };
        match (schema, routes) {
            (Some(schema), Some(routes)) if problems.is_empty() => Ok(Self {
                entities,
                index: PolicyIndex::new(&policies, &action_entities),
                literals: literals::Literals::of(&policies),
                action_entities,
                policies,
                schema,
                routes,
                hash: hash_sources(&files),
                loaded_at: SystemTime::now(),
                sources: files,
                policy_files,
                warnings,
                memo: DecisionMemo::default(),
            }),
            _ => Err(LoadError {
                dir: dir.to_path_buf(),
                problems,
            }),
        }
    }

    /// Number of policies in force.
    pub fn policy_count(&self) -> usize {
        self.policies.policies().count()
    }

    /// The same schema and routes with other policies, to ask about one policy at a time.
    pub fn with_policies(&self, policies: PolicySet) -> Self {
        Self {
            index: PolicyIndex::new(&policies, &self.action_entities),
            literals: literals::Literals::of(&policies),
            policies,
            schema: self.schema.clone(),
            routes: self.routes.clone(),
            hash: String::new(),
            loaded_at: self.loaded_at,
            sources: SourceFiles::new(),
            policy_files: self.policy_files.clone(),
            warnings: Vec::new(),
            action_entities: self.action_entities.clone(),
            entities: self.entities.clone(),
            // Asked a question or two, then dropped.
            memo: DecisionMemo::with_capacity(16),
        }
    }
}

/// The id a policy is known by: its `@id` annotation, else `file.cedar#N`.
fn stable_id(file: &str, default_id: &PolicyId, annotation: Option<&str>) -> String {
    if let Some(id) = annotation {
        return id.to_string();
    }
    let n = default_id
        .to_string()
        .strip_prefix("policy")
        .map(str::to_string)
        .unwrap_or_else(|| default_id.to_string());
    format!("{file}#{n}")
}

/// Builds `Type::"id"`.
pub fn entity_uid(entity_type: &str, id: &str) -> Result<EntityUid, String> {
    let ty = EntityTypeName::from_str(entity_type)
        .map_err(|e| format!("`{entity_type}` is not an entity type name: {e}"))?;
    Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
}

/// The first 12 hex digits of a snapshot's hash: enough to tell sets apart in logs.
pub fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn shipped() -> SourceFiles {
        read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")).unwrap()
    }

    fn load_with_routes(edit: impl Fn(&str) -> String) -> Result<PolicySnapshot, LoadError> {
        let mut files = shipped();
        let routes = files.get(ROUTES_FILE).cloned().unwrap_or_default();
        files.insert(ROUTES_FILE.into(), edit(&routes));
        PolicySnapshot::from_sources(Path::new("policies"), files)
    }

    #[test]
    fn only_changes_a_read_can_see_affect_the_directory() {
        let dir = Path::new("/srv/ipm/policies");
        let affects = |p: &str| affects_dir(dir, Path::new(p));
        // The directory, its ancestors, its entries, the ConfigMap swap, visible subfolders.
        for p in [
            "/srv/ipm/policies",
            "/srv/ipm",
            "/srv/ipm/policies/guards.cedar",
            "/srv/ipm/policies/schema.cedarschema",
            "/srv/ipm/policies/routes.toml",
            "/srv/ipm/policies/..data",
            "/srv/ipm/policies/..data_tmp",
            "/srv/ipm/policies/..2026_11_27_10_00_00.1/guards.cedar",
            "/srv/ipm/policies/shared/guards.cedar",
        ] {
            assert!(affects(p), "{p}");
        }
        // A log beside it, a sibling's files, editors' files, other names.
        for p in [
            "/srv/ipm/authz.log",
            "/srv/ipm/policies-candidate/guards.cedar",
            "/srv/ipm/other/policies/guards.cedar",
            "/srv/ipm/policies/.guards.cedar.swp",
            "/srv/ipm/policies/.guards.cedar.tmp",
            "/srv/ipm/policies/.git/index",
            "/srv/ipm/policies/4913",
            "/srv/ipm/policies/guards.cedar~",
            "/srv/ipm/policies/decisions.log",
        ] {
            assert!(!affects(p), "{p}");
        }
    }

    #[test]
    fn visibility_and_targets_are_read_and_checked_against_the_schema() {
        let s = load_with_routes(str::to_string).unwrap();
        assert_eq!(s.routes.visibility("Project"), Some("ReadProject"));
        assert_eq!(s.routes.visibility("Image"), Some("ReadImage"));
        assert_eq!(s.routes.visibility("Group"), None);

        let e = load_with_routes(|r| {
            r.replace("Project = \"ReadProject\"", "Project = \"ReadProjekt\"")
        })
        .unwrap_err();
        assert!(e.to_string().contains("[visibility] `Project"), "{e}");
        let e =
            load_with_routes(|r| r.replace("Image = \"ReadImage\"", "Image = \"ListProjects\""))
                .unwrap_err();
        assert!(e.to_string().contains("[visibility] `Image"), "{e}");
        let e = load_with_routes(|r| {
            r.replace(
                "target = { action = \"CreateProjectInGroup\", type = \"Group\" }",
                "target = { action = \"CreateProjectInGroup\", type = \"Project\" }",
            )
        })
        .unwrap_err();
        assert!(e.to_string().contains("target"), "{e}");
    }

    /// Principals compare in lower case: a policy naming `User::"Bob@example.com"` would
    /// never match anyone, so a per-user forbid written that way would silently not apply.
    #[test]
    fn a_user_written_in_a_case_no_principal_has_is_refused() {
        let load = |text: &str| {
            let mut files = shipped();
            files.insert("zz-user.cedar".into(), text.into());
            PolicySnapshot::from_sources(Path::new("policies"), files)
        };
        let e = load(
            "@id(\"bob-out\")\nforbid (principal == User::\"Bob@example.com\", action, resource);\n",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("zz-user.cedar"), "{text}");
        assert!(text.contains("User::\"bob@example.com\""), "{text}");
        let e = load(
            "@id(\"bob-out\")\nforbid (principal, action, resource) when { principal == User::\"BOB@example.com\" };\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("bob-out"), "{e}");
        load("@id(\"bob-out\")\nforbid (principal == User::\"bob@example.com\", action, resource);\n")
            .unwrap();
    }
}
