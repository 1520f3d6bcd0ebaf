//! The one entity vocabulary: how a Group, a Project and an Image look to Cedar. The live
//! resolvers (authz at the edge, the API in-process), `authz test` and the tests all build here.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use cedar_policy::{Entity, EntityUid, RestrictedExpression};
use uuid::Uuid;

use crate::identity::Email;
use crate::routes::RouteMatch;
use crate::snapshot::entity_uid;

/// Parses a resource id as a project's or an image's id. Only the canonical form (lower-case,
/// hyphenated) is accepted: Cedar compares ids as strings, so `{…}` or upper-case spellings of
/// the same UUID must not name a different resource.
pub fn parse_id(s: &str) -> Option<Uuid> {
    let id = Uuid::try_parse(s).ok()?;
    let mut buf = Uuid::encode_buffer();
    (id.hyphenated().encode_lower(&mut buf) == s).then_some(id)
}

/// The user (`User::"email"`, in its groups, with `email`, `domain` and `groups`) and its
/// groups: the principal of every routed decision, and of a direct evaluation about a `User`.
pub fn user_entities(user: &Email, groups: &[String]) -> Result<Vec<Entity>, String> {
    let mut group_uids = HashSet::with_capacity(groups.len());
    let mut entities = Vec::with_capacity(groups.len() + 1);
    for g in groups {
        let uid = entity_uid("Group", g)?;
        group_uids.insert(uid.clone());
        entities.push(Entity::new_no_attrs(uid, HashSet::new()));
    }
    let domain = user.as_str().rsplit('@').next().unwrap_or_default();
    let attrs = HashMap::from([
        (
            "email".to_string(),
            RestrictedExpression::new_string(user.to_string()),
        ),
        (
            "domain".to_string(),
            RestrictedExpression::new_string(domain.to_string()),
        ),
        (
            "groups".to_string(),
            RestrictedExpression::new_set(
                group_uids
                    .iter()
                    .cloned()
                    .map(RestrictedExpression::new_entity_uid),
            ),
        ),
    ]);
    let user = Entity::new(entity_uid("User", user.as_str())?, attrs, group_uids)
        .map_err(|e| e.to_string())?;
    entities.push(user);
    Ok(entities)
}

/// A group: no attributes, no parents.
pub fn group_entity(name: &str) -> Result<Entity, String> {
    Ok(Entity::new_no_attrs(
        entity_uid("Group", name)?,
        HashSet::new(),
    ))
}

fn entity(
    uid: EntityUid,
    attrs: Vec<(&str, EntityUid)>,
    parent: EntityUid,
) -> Result<Entity, String> {
    Entity::new(
        uid,
        attrs
            .into_iter()
            .map(|(k, v)| (k.to_string(), RestrictedExpression::new_entity_uid(v)))
            .collect::<HashMap<_, _>>(),
        HashSet::from([parent]),
    )
    .map_err(|e| e.to_string())
}

/// The entities Cedar needs for a project: the project (in its group, with a `group`
/// attribute) and the group.
pub fn project_entities(id: &str, group: &str) -> Result<Vec<Entity>, String> {
    let group_uid = entity_uid("Group", group)?;
    let project = entity(
        entity_uid("Project", id)?,
        vec![("group", group_uid.clone())],
        group_uid,
    )?;
    Ok(vec![project, group_entity(group)?])
}

/// Where an image sits: its project's id and that project's group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageParent {
    pub project: String,
    pub group: std::sync::Arc<str>,
}

/// The entities Cedar needs for an image: the image (in its project, with `project` and
/// `group` attributes), the project and the group.
pub fn image_entities(id: &str, parent: &ImageParent) -> Result<Vec<Entity>, String> {
    let mut entities = project_entities(&parent.project, &parent.group)?;
    let project_uid = entity_uid("Project", &parent.project)?;
    let image = entity(
        entity_uid("Image", id)?,
        vec![
            ("project", project_uid.clone()),
            ("group", entity_uid("Group", &parent.group)?),
        ],
        project_uid,
    )?;
    entities.insert(0, image);
    Ok(entities)
}

/// A boxed future, so resolvers can sit behind `dyn EntityResolver`.
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Entity>, String>> + Send + 'a>>;

/// Finds entities for a route's resource (a project and its group), for policies that need them.
/// An id that names nothing resolves to no entities; only an outage is an error.
pub trait EntityResolver: Send + Sync + 'static {
    fn resolve<'a>(&'a self, route: &'a RouteMatch) -> ResolveFuture<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_ids_parse() {
        let id = "0190f0c4-6c3e-7b3a-8f00-0123456789ab";
        assert!(parse_id(id).is_some());
        for bad in [
            "0190F0C4-6C3E-7B3A-8F00-0123456789AB",
            "0190f0c46c3e7b3a8f000123456789ab",
            "{0190f0c4-6c3e-7b3a-8f00-0123456789ab}",
            "urn:uuid:0190f0c4-6c3e-7b3a-8f00-0123456789ab",
            "",
            "x",
        ] {
            assert!(parse_id(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn image_entities_put_the_image_in_its_project() {
        let parent = ImageParent {
            project: "p".into(),
            group: "team-a".into(),
        };
        let e = image_entities("i", &parent).unwrap_or_else(|e| unreachable!("{e}"));
        let uids: Vec<String> = e.iter().map(|x| x.uid().to_string()).collect();
        assert_eq!(
            uids,
            [r#"Image::"i""#, r#"Project::"p""#, r#"Group::"team-a""#]
        );
        let (_, attrs, parents) = e[0].clone().into_inner();
        assert_eq!(
            parents.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [r#"Project::"p""#]
        );
        assert_eq!(attrs.len(), 2);
    }

    #[test]
    fn project_entities_put_the_project_in_its_group() {
        let e = project_entities("p", "team-a").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].uid().to_string(), r#"Project::"p""#);
        assert!(
            e[0].clone()
                .into_inner()
                .2
                .iter()
                .any(|p| p.to_string() == r#"Group::"team-a""#)
        );
    }
}
