//! The enforcer: the core's pure pipeline with its lookups (groups, resource entities) filled
//! in, each decision read from one snapshot, then counted and written as a `DecisionRecord`.
//! Questions asked directly (AuthZEN) go through it too, with the group source as a PIP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cedar_policy::Entity;
use ipm_policy::cedar::{CedarQuery, CedarVerdict, QueryError};
use ipm_policy::entities::{EntityResolver, user_entities};
use ipm_policy::evaluate::{EntityRef, Evaluation, Semantic, evaluate, refused};
use ipm_policy::groups::GroupSource;
use ipm_policy::identity::Email;
use ipm_policy::pipeline::{Decision, Prepared, conclude, prepare};
use ipm_policy::record::DecisionRecord;
use ipm_policy::request::AuthzRequest;
use ipm_policy::search::{Searched, permitted_actions, permitted_entities};
use ipm_policy::secret::SecretSet;
use ipm_policy::snapshot::PolicySnapshot;
use ipm_policy::store::PolicyStore;
use ipm_policy::visible::ProjectRows;
use ipm_policy::{Denial, record};

use crate::metrics::{DecisionLabels, Metrics, SourceLabels};

/// Sees every decision Cedar was asked for, with its exact query and verdict; never changes
/// it (shadow evaluation of a candidate policy set is one).
pub trait DecisionObserver: Send + Sync + 'static {
    fn observe(
        &self,
        snapshot: &PolicySnapshot,
        query: &CedarQuery<'_>,
        verdict: &Result<CedarVerdict, QueryError>,
    );
}

/// Everything a decision needs, shared by every adapter.
pub struct Enforcer {
    pub store: Arc<PolicyStore>,
    pub groups: Arc<dyn GroupSource>,
    pub resolver: Option<Arc<dyn EntityResolver>>,
    /// Where projects live, for the paged project search (`search_pages.rs`).
    pub(crate) projects: Option<Arc<dyn ProjectRows>>,
    observers: Vec<Arc<dyn DecisionObserver>>,
    /// `None` only in debug mode with `SKIP_HEADER_CHECK=true`.
    secrets: Option<SecretSet>,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Enforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcer")
            .field("policy_dir", &self.store.dir())
            .field("groups", &self.groups.kind())
            .field("skip_header_check", &self.secrets.is_none())
            .finish()
    }
}

impl Enforcer {
    pub fn new(
        store: Arc<PolicyStore>,
        groups: Arc<dyn GroupSource>,
        secrets: Option<SecretSet>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            groups,
            resolver: None,
            projects: None,
            observers: Vec::new(),
            secrets,
            metrics,
        }
    }

    pub fn with_resolver(mut self, resolver: Arc<dyn EntityResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    pub fn with_observer(mut self, observer: Arc<dyn DecisionObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    pub fn skips_secret_check(&self) -> bool {
        self.secrets.is_none()
    }

    /// Decides one request, then logs and counts the decision.
    pub async fn authorize(&self, req: &AuthzRequest<'_>, adapter: &'static str) -> Decision {
        let started = Instant::now();
        let decision = self.decide(req).await;
        let method = req.method.text().unwrap_or("");
        let uri = req.uri.text().unwrap_or("");
        self.record(adapter, &decision, method, uri, started.elapsed());
        decision
    }

    /// [`Self::authorize`], for a proxy that can answer 404 (Envoy): a policy denial on a
    /// resource, named by a well-formed id, that the caller may not even see (its type's
    /// `[visibility]` action in `routes.toml`) becomes [`Denial::NotFound`], as ipm-api answers
    /// it. The edge then tells a hidden resource from a missing one no more than the API does.
    /// The visibility question is recorded as a follow-up decision.
    pub async fn authorize_concealed(
        &self,
        req: &AuthzRequest<'_>,
        adapter: &'static str,
    ) -> Decision {
        let mut d = self.authorize(req, adapter).await;
        let well_formed = d
            .route
            .as_ref()
            .is_some_and(|r| ipm_policy::entities::parse_id(&r.resource_id).is_some());
        if !well_formed {
            return d;
        }
        if let Some(visible) = d.visibility() {
            let method = req.method.text().unwrap_or("");
            let uri = req.uri.text().unwrap_or("");
            self.record_follow_up(adapter, &visible, method, uri);
            if !visible.is_allowed() {
                d.denial = Some(Denial::NotFound);
            }
        }
        d
    }

    /// The pipeline: `prepare` on the snapshot in force, the lookups, `conclude` on that
    /// same snapshot, whatever reloads in between.
    async fn decide(&self, req: &AuthzRequest<'_>) -> Decision {
        let prepared = match prepare(self.store.snapshot_arc(), self.secrets.as_ref(), req) {
            Ok(p) => p,
            Err(denied) => return *denied,
        };
        self.lookup_and_conclude(prepared).await
    }

    /// The lookups and the conclusion for a prepared request.
    pub async fn lookup_and_conclude(&self, prepared: Prepared) -> Decision {
        let groups = match self.groups.groups(&prepared.user).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(source = self.groups.kind(), error = %e, "group lookup failed");
                return prepared.fail(Denial::GroupsUnavailable, None);
            }
        };
        let entities = match &self.resolver {
            None => Vec::new(),
            Some(r) => match r.resolve(&prepared.route).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "resource lookup failed");
                    return prepared.fail(Denial::ResourceUnavailable, Some(groups));
                }
            },
        };
        conclude(prepared, groups, entities, |snapshot, query, verdict| {
            for o in &self.observers {
                o.observe(snapshot, query, verdict);
            }
        })
    }

    /// Writes the record of a follow-up question (the API's visibility and target questions),
    /// asked on the decision's own snapshot; counted with the decision that raised it.
    pub fn record_follow_up(&self, adapter: &'static str, d: &Decision, method: &str, uri: &str) {
        self.log(&DecisionRecord::new(adapter, d, method, uri, 0));
    }

    /// Counts a decision and writes its record.
    pub fn record(
        &self,
        adapter: &'static str,
        d: &Decision,
        method: &str,
        uri: &str,
        latency: Duration,
    ) {
        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let r = DecisionRecord::new(adapter, d, method, uri, latency_us);
        self.metrics
            .decisions
            .get_or_create(&DecisionLabels {
                adapter,
                outcome: if d.is_allowed() { "allow" } else { "deny" },
                status: d.status(),
                reason: d.denial.map_or("policy_allowed", Denial::reason),
            })
            .inc();
        self.metrics.decision_seconds.observe(latency.as_secs_f64());
        if d.route.is_some() {
            let result = if d.denial == Some(Denial::GroupsUnavailable) {
                "error"
            } else {
                "ok"
            };
            self.metrics
                .group_lookups
                .get_or_create(&SourceLabels {
                    source: self.groups.kind(),
                    result,
                })
                .inc();
        }
        self.log(&r);
    }

    /// Decides questions asked directly, in order, on one snapshot, stopping as `semantic`
    /// says; each is counted and logged under `adapter`, with `endpoint` as its path.
    pub async fn evaluate(
        &self,
        items: &[Evaluation<'_>],
        semantic: Semantic,
        adapter: &'static str,
        endpoint: &str,
    ) -> Vec<CedarVerdict> {
        let snapshot = self.store.snapshot_arc();
        let mut known = KnownUsers::default();
        let mut out = Vec::with_capacity(items.len());
        for q in items {
            let started = Instant::now();
            let verdict = match known.entities(self, &snapshot, &q.subject).await {
                Ok(extra) => evaluate(&snapshot, q, extra),
                Err(e) => refused(e),
            };
            let latency = started.elapsed();
            let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            let r = DecisionRecord::evaluated(
                adapter,
                endpoint,
                q,
                &verdict,
                &snapshot.hash,
                latency_us,
            );
            self.metrics
                .decisions
                .get_or_create(&DecisionLabels {
                    adapter,
                    outcome: if verdict.allowed { "allow" } else { "deny" },
                    status: 200,
                    reason: match (verdict.allowed, verdict.errors.is_empty()) {
                        (true, _) => "policy_allowed",
                        (false, true) => Denial::PolicyDenied.reason(),
                        (false, false) => Denial::PolicyError.reason(),
                    },
                })
                .inc();
            self.metrics.decision_seconds.observe(latency.as_secs_f64());
            self.log(&r);
            let stop = semantic.stops_after(verdict.allowed);
            out.push(verdict);
            if stop {
                break;
            }
        }
        out
    }

    /// Searches on the snapshot in force: the ids of the searched position's type that `q`
    /// allows (`Some(searched)`), or the actions it allows (`None`). Candidates are the
    /// entities file's, plus the groups (for `Group` resources) and the users (for `User`
    /// subjects, with their groups) of a group source that can list its members.
    pub async fn search(
        &self,
        q: &Evaluation<'_>,
        searched: Option<Searched>,
    ) -> Result<Vec<String>, String> {
        let snapshot = self.store.snapshot_arc();
        let mut extra: Vec<Entity> = Vec::new();
        if searched != Some(Searched::Subject) {
            let mut users = KnownUsers::default();
            extra.extend_from_slice(users.entities(self, &snapshot, &q.subject).await?);
        }
        let members = self.groups.members().unwrap_or_default();
        let mut known: Vec<String> = Vec::new();
        match searched {
            Some(Searched::Resource) if q.resource.entity_type == "Group" => {
                let groups: std::collections::BTreeSet<&String> =
                    members.iter().flat_map(|(_, g)| g.iter()).collect();
                known.extend(groups.into_iter().cloned());
            }
            Some(Searched::Subject) if q.subject.entity_type == "User" => {
                let mut seen = std::collections::HashSet::new();
                for (user, groups) in &members {
                    known.push(user.to_string());
                    for e in user_entities(user, groups)? {
                        if seen.insert(e.uid()) {
                            extra.push(e);
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(match searched {
            Some(s) => permitted_entities(&snapshot, q, s, &known, &extra),
            None => permitted_actions(&snapshot, q, &extra),
        })
    }

    fn log(&self, r: &DecisionRecord) {
        macro_rules! emit {
            ($level:ident $(, $extra:ident = $value:expr)?) => {
                tracing::$level!(
                    target: record::TARGET,
                    adapter = r.adapter, user = r.user, groups = r.groups, method = r.method,
                    path = r.path, action = r.action, resource = r.resource,
                    decision = r.decision, status = r.status, reason = r.reason,
                    policies = r.policies, errors = r.errors, snapshot = r.snapshot,
                    latency_us = r.latency_us, $($extra = $value,)?
                    "decision"
                )
            };
        }
        if self.secrets.is_none() {
            emit!(
                warn,
                insecure = "SKIP_HEADER_CHECK=true: the proxy secret is not checked"
            );
        } else {
            emit!(info);
        }
    }
}

/// The group source as a PIP for direct questions about a `User` (an email, as routed
/// decisions name users): the user with its groups, as `/auth` sees it. Remembers the last
/// subject, so a batch about one user asks the source once.
#[derive(Default)]
struct KnownUsers {
    last: Option<(String, Vec<Entity>)>,
}

impl KnownUsers {
    async fn entities(
        &mut self,
        enforcer: &Enforcer,
        snapshot: &PolicySnapshot,
        subject: &EntityRef<'_>,
    ) -> Result<&[Entity], String> {
        if subject.entity_type != "User"
            || !snapshot
                .schema
                .entity_types()
                .any(|t| t.to_string() == "User")
        {
            return Ok(&[]);
        }
        // Only the canonical spelling names the user `/auth` knows.
        let Some(email) = subject
            .id
            .parse::<Email>()
            .ok()
            .filter(|e| e.as_str() == subject.id)
        else {
            return Ok(&[]);
        };
        if self.last.as_ref().is_none_or(|(id, _)| id != subject.id) {
            let groups = enforcer.groups.groups(&email).await.map_err(|e| {
                tracing::warn!(source = enforcer.groups.kind(), error = %e, "group lookup failed");
                format!("groups of `{email}`: {e}")
            })?;
            let entities = user_entities(&email, &groups)?;
            self.last = Some((subject.id.to_string(), entities));
        }
        Ok(self.last.as_ref().map_or(&[][..], |(_, e)| e.as_slice()))
    }
}
