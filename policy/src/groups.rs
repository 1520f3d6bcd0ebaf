//! Group membership: the `GroupSource` trait and the groups file source.
//! A source answers a user's groups or says it cannot; it never guesses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Deserialize;

use crate::identity::Email;
use crate::settle::{PAUSE, RETRIES, Unsettled, read_settled};

/// Longest group name accepted.
pub const MAX_GROUP_LEN: usize = 128;

/// A user's groups, sorted and without duplicates. Cheap to clone.
pub type Groups = Arc<[String]>;

/// True for names that are safe as a Cedar id and inside a comma-separated header.
pub fn is_valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_GROUP_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/+=".contains(&b))
}

/// Why a source could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupError {
    #[error("the group source is unavailable: {0}")]
    Unavailable(String),
}

/// A boxed future, so sources can sit behind `dyn GroupSource`.
pub type GroupFuture<'a> = Pin<Box<dyn Future<Output = Result<Groups, GroupError>> + Send + 'a>>;

/// Where a user's groups come from.
pub trait GroupSource: Send + Sync + 'static {
    /// The user's groups; an unknown user has none.
    fn groups<'a>(&'a self, user: &'a Email) -> GroupFuture<'a>;
    /// A short name for logs and `/readyz`.
    fn kind(&self) -> &'static str;
    /// Every member the source can list, with its groups, for searches; `None` when it
    /// answers one user at a time (a directory).
    fn members(&self) -> Option<Vec<(Email, Groups)>> {
        None
    }
}

/// Why a groups file was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupsFileError {
    #[error("cannot read `{path}`: {message}")]
    Read { path: PathBuf, message: String },
    #[error("`{path}`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "`{path}` kept changing while being read; the membership in force stays until it holds still"
    )]
    Unsettled { path: PathBuf },
}

/// A groups file's text; anything but a regular file (after symlinks) is refused.
fn read_text(path: &Path) -> Result<String, GroupsFileError> {
    let err = |message: String| GroupsFileError::Read {
        path: path.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    std::fs::read_to_string(path).map_err(|e| err(e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsDoc {
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
}

/// Membership indexed by user.
#[derive(Debug, Default)]
pub struct GroupIndex {
    by_user: HashMap<Email, Groups>,
    pub hash: String,
}

impl GroupIndex {
    /// Parses a groups file: `[groups]` mapping each group name to its members' emails.
    pub fn parse(path: &Path, text: &str) -> Result<Self, GroupsFileError> {
        let err = |message: String| GroupsFileError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let doc: GroupsDoc = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut by_user: HashMap<Email, BTreeSet<String>> = HashMap::new();
        for (group, members) in doc.groups {
            if !is_valid_group_name(&group) {
                return Err(err(format!(
                    "group `{group}`: names use letters, digits and `-_.:@/+=`, at most {MAX_GROUP_LEN} bytes"
                )));
            }
            for member in members {
                let email: Email = member
                    .parse()
                    .map_err(|e| err(format!("group `{group}`, member `{member}`: {e}")))?;
                by_user.entry(email).or_default().insert(group.clone());
            }
        }
        Ok(Self {
            by_user: by_user
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect::<Vec<_>>().into()))
                .collect(),
            hash: crate::snapshot::hash_sources(&BTreeMap::from([(
                String::new(),
                text.to_string(),
            )])),
        })
    }

    pub fn load(path: &Path) -> Result<Self, GroupsFileError> {
        Self::parse(path, &read_text(path)?)
    }

    pub fn groups(&self, user: &Email) -> Groups {
        self.by_user
            .get(user)
            .cloned()
            .unwrap_or_else(|| Arc::from([]))
    }

    pub fn user_count(&self) -> usize {
        self.by_user.len()
    }
}

/// Groups from a TOML file, swapped whole on reload.
#[derive(Debug)]
pub struct FileGroups {
    path: PathBuf,
    index: ArcSwap<GroupIndex>,
}

impl FileGroups {
    /// Loads the file; a file that does not load refuses the start.
    pub fn load(path: &Path) -> Result<Self, GroupsFileError> {
        Ok(Self {
            path: path.to_path_buf(),
            index: ArcSwap::from_pointee(GroupIndex::load(path)?),
        })
    }

    pub fn from_index(path: &Path, index: GroupIndex) -> Self {
        Self {
            path: path.to_path_buf(),
            index: ArcSwap::from_pointee(index),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file, once it holds still. On error the previous membership stays in
    /// force. Returns whether the content changed.
    pub fn reload(&self) -> Result<bool, GroupsFileError> {
        self.reload_with(read_text, || std::thread::sleep(PAUSE))
    }

    /// `reload` with the file read by `read` and the pause between reads by `pause`: a
    /// half-written file is never loaded, since two reads a moment apart must agree.
    pub fn reload_with(
        &self,
        mut read: impl FnMut(&Path) -> Result<String, GroupsFileError>,
        pause: impl FnMut(),
    ) -> Result<bool, GroupsFileError> {
        let text = read_settled(|| read(&self.path), pause, RETRIES).map_err(|u| match u {
            Unsettled::Failed(e) => e,
            Unsettled::Changing { .. } => GroupsFileError::Unsettled {
                path: self.path.clone(),
            },
        })?;
        let next = GroupIndex::parse(&self.path, &text)?;
        if next.hash == self.index.load().hash {
            return Ok(false);
        }
        self.index.store(Arc::new(next));
        Ok(true)
    }

    pub fn current(&self) -> Arc<GroupIndex> {
        self.index.load_full()
    }
}

impl GroupSource for FileGroups {
    fn groups<'a>(&'a self, user: &'a Email) -> GroupFuture<'a> {
        let groups = self.index.load().groups(user);
        Box::pin(std::future::ready(Ok(groups)))
    }

    fn kind(&self) -> &'static str {
        "file"
    }

    fn members(&self) -> Option<Vec<(Email, Groups)>> {
        let index = self.index.load();
        let mut members: Vec<_> = index
            .by_user
            .iter()
            .map(|(user, groups)| (user.clone(), groups.clone()))
            .collect();
        members.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Some(members)
    }
}

/// A fixed membership, for `authz explain --groups` and tests.
#[derive(Debug, Clone)]
pub struct StaticGroups(pub Groups);

impl GroupSource for StaticGroups {
    fn groups<'a>(&'a self, _user: &'a Email) -> GroupFuture<'a> {
        Box::pin(std::future::ready(Ok(self.0.clone())))
    }

    fn kind(&self) -> &'static str {
        "static"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_members_and_refuses_bad_entries() {
        let p = Path::new("groups.toml");
        let idx = GroupIndex::parse(
            p,
            "[groups]\nadmins = [\"a@example.com\"]\nteam-a = [\"a@EXAMPLE.com\", \"b@example.com\"]\n",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let a: Email = "a@example.com"
            .parse()
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            &*idx.groups(&a),
            &["admins".to_string(), "team-a".to_string()]
        );
        assert!(GroupIndex::parse(p, "[groups]\n\"a,b\" = []\n").is_err());
        assert!(GroupIndex::parse(p, "[groups]\nx = [\"not-an-email\"]\n").is_err());
        assert!(GroupIndex::parse(p, "[other]\n").is_err());
    }

    const FULL: &str = "[groups]\nsuspended = [\"mallory@example.com\"]\n";

    fn suspended(groups: &FileGroups) -> bool {
        let mallory: Email = "mallory@example.com"
            .parse()
            .unwrap_or_else(|e| unreachable!("{e}"));
        groups
            .current()
            .groups(&mallory)
            .contains(&"suspended".to_string())
    }

    fn file_groups() -> FileGroups {
        let p = Path::new("groups.toml");
        FileGroups::from_index(
            p,
            GroupIndex::parse(p, FULL).unwrap_or_else(|e| unreachable!("{e}")),
        )
    }

    #[test]
    fn a_half_written_groups_file_is_not_loaded() {
        let groups = file_groups();
        let next = format!("{FULL}admins = [\"a@example.com\"]\n");
        // A slow writer: the header is there, the members not yet.
        let script = ["[groups]\n".to_string(), next.clone(), next];
        let mut n = 0;
        let changed = groups.reload_with(
            |_| {
                n += 1;
                Ok(script[(n - 1).min(2)].clone())
            },
            || {},
        );
        assert!(matches!(changed, Ok(true)), "{changed:?}");
        assert!(suspended(&groups));
        assert_eq!(groups.current().user_count(), 2);
    }

    #[test]
    fn a_groups_file_that_keeps_changing_keeps_the_membership() {
        let groups = file_groups();
        let mut n = 0;
        let changed = groups.reload_with(
            |_| {
                n += 1;
                Ok(format!("[groups]\n# {n}\n"))
            },
            || {},
        );
        assert!(
            matches!(changed, Err(GroupsFileError::Unsettled { .. })),
            "{changed:?}"
        );
        assert!(suspended(&groups));
    }
}
