//! The API's data: projects as stored and as sent, request bodies, and their validation.
//! Validation errors name the field, so a client can point at what to fix.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;

/// Longest project name, in characters.
pub const MAX_NAME_CHARS: usize = 120;
/// Longest project description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page a client may ask for.
pub const MAX_LIMIT: u32 = 200;

/// A project: owned by one group, named uniquely within it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// The owning group; policies decide from it who may see and change the project.
    pub meta_group_id: String,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One page of projects and where the next one starts.
#[derive(Debug, Serialize)]
pub struct ProjectPage {
    pub items: Vec<Project>,
    /// Opaque; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /api/projects`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub meta_group_id: String,
}

/// `PATCH /api/projects/{id}`: only the fields present change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A project ready to insert.
#[derive(Debug, Clone)]
pub struct NewProject {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub meta_group_id: String,
    pub created_by: String,
    pub at: OffsetDateTime,
}

/// A validated change.
#[derive(Debug, Clone)]
pub struct ProjectChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub at: OffsetDateTime,
}

/// The query of `GET /api/projects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: u32,
    pub after: Option<Uuid>,
    pub group: Option<String>,
}

/// A name without surrounding spaces, not empty, not too long, no control characters.
pub fn validate_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ApiError::invalid_field("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid_field(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

pub fn validate_description(raw: &str) -> Result<String, ApiError> {
    let d = raw.trim();
    if d.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid_field(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if d.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ApiError::invalid_field(
            "description",
            "must not contain control characters other than newlines and tabs",
        ));
    }
    Ok(d.to_string())
}

/// The current time, at the database's precision (microseconds), so what is returned
/// after a write equals what a later read returns.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    let micros = t.microsecond();
    t.replace_microsecond(micros).unwrap_or(t)
}

impl CreateProject {
    pub fn validate(self, created_by: &str) -> Result<NewProject, ApiError> {
        let name = validate_name(&self.name)?;
        let description = validate_description(self.description.as_deref().unwrap_or(""))?;
        if !ipm_policy::groups::is_valid_group_name(&self.meta_group_id) {
            return Err(ApiError::invalid_field(
                "meta_group_id",
                "must be a group name: letters, digits and `-_.:@/+=`, at most 128 bytes",
            ));
        }
        Ok(NewProject {
            id: Uuid::now_v7(),
            name,
            description,
            meta_group_id: self.meta_group_id,
            created_by: created_by.to_string(),
            at: now(),
        })
    }
}

impl UpdateProject {
    pub fn validate(self) -> Result<ProjectChange, ApiError> {
        if self.name.is_none() && self.description.is_none() {
            return Err(ApiError::invalid_field(
                "name",
                "give at least one of `name` and `description`",
            ));
        }
        Ok(ProjectChange {
            name: self.name.as_deref().map(validate_name).transpose()?,
            description: self
                .description
                .as_deref()
                .map(validate_description)
                .transpose()?,
            at: now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("  a b ").ok().as_deref(), Some("a b"));
        assert!(validate_name("   ").is_err());
        assert!(validate_name(&"é".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(validate_name(&"é".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(validate_name("a\u{7}b").is_err());
    }

    #[test]
    fn now_keeps_microseconds_only() {
        assert_eq!(now().nanosecond() % 1000, 0);
    }
}
