//! `ipm-api gc`: finds what a crash can leave behind (objects and thumbnails without a row,
//! rows without an object, unfinished uploads) and, with `--apply`, removes it. A dry run by
//! default.

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, SystemTime};

use crate::config::DbSettings;
use crate::db::{Db, DbError};
use crate::image_config::StorageConfig;
use crate::image_store::ImageStore;
use crate::storage::{ObjectKey, Storage, StorageError};

/// How gc runs.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Remove what is found; otherwise only report it.
    pub apply: bool,
    /// Objects and unfinished uploads younger than this are left alone: they may belong to
    /// an upload whose row is about to be written.
    pub min_age: Duration,
    /// Remove rows even when every row's object seems missing (which usually means the
    /// storage settings point at the wrong place), and objects even when most have no row
    /// (which usually means the database is the wrong one).
    pub force: bool,
}

/// What gc found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Image objects (thumbnails are counted apart).
    pub objects: usize,
    pub thumbnails: usize,
    pub rows: usize,
    /// Objects of deleted rows still queued for removal (a crash or an outage after the delete).
    pub queued_deletions: usize,
    /// Objects without a row: images, and thumbnails whose image has no row.
    pub orphan_objects: usize,
    pub young_objects: usize,
    pub missing_objects: usize,
    pub incomplete_uploads: usize,
    pub removed: usize,
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
    #[error(
        "refusing to remove {orphans} of {objects} stored objects: most have no row, which usually \
         means DATABASE_URL (or STORAGE_BACKEND, STORAGE_DIR, S3_BUCKET, S3_KEY_PREFIX) points at \
         the wrong place; nothing was removed; pass --force to remove them anyway"
    )]
    Refused { orphans: usize, objects: usize },
}

/// At most this many objects without a row are removed whatever their share: a crash leaves a
/// few, a wrong database leaves them all.
const HANDFUL: usize = 5;

/// Whether removing `orphans` of `objects` looks like a wrong database rather than leftovers:
/// all of them (more than one), or more than half and more than a handful.
fn too_many(orphans: usize, objects: usize) -> bool {
    (orphans > 1 && orphans == objects) || (orphans > HANDFUL && orphans * 2 > objects)
}

/// `ipm-api gc`: opens the database (without migrating it) and the storage, then `run`s.
pub async fn collect(
    db: &DbSettings,
    storage: &StorageConfig,
    opts: GcOptions,
    out: &mut dyn Write,
) -> Result<GcReport, GcError> {
    let db = Db::open(&db.url, db.max_connections, db.acquire_timeout)?;
    let storage = crate::storage::open(storage).await?;
    writeln!(
        out,
        "ipm-api gc: {} storage, {} database{}",
        storage.backend(),
        db.backend(),
        if opts.apply { "" } else { " (dry run)" }
    )?;
    let report = run(&ImageStore::new(db.clone()), storage.as_ref(), opts, out).await;
    db.close().await;
    report
}

fn age(t: SystemTime, now: SystemTime) -> String {
    let s = now.duration_since(t).unwrap_or_default().as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

/// Compares storage with the rows and reports, one line per finding, to `out`. Each finding
/// is checked again just before it is removed, so a concurrent upload or delete is never
/// undone.
pub async fn run(
    store: &ImageStore,
    storage: &dyn Storage,
    opts: GcOptions,
    out: &mut dyn Write,
) -> Result<GcReport, GcError> {
    let now = SystemTime::now();
    let cutoff = now
        .checked_sub(opts.min_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = GcReport::default();
    // Deleted rows' objects first: their removal is already decided, whatever else is found.
    let queued = store.queued_deletions(u32::MAX).await?;
    report.queued_deletions = queued.len();
    let mut left_queued = false;
    if opts.apply && !queued.is_empty() {
        let swept = crate::deletions::sweep(store, storage)
            .await
            .map_err(|e| match e {
                crate::deletions::SweepError::Db(e) => GcError::Db(e),
                crate::deletions::SweepError::Storage(e) => GcError::Storage(e),
            })?;
        report.removed += swept.removed;
        left_queued = swept.left;
    }
    for key in &queued {
        let mark = match (opts.apply, left_queued) {
            (false, _) => "",
            (true, false) => "  [removed]",
            (true, true) => "  [queued]",
        };
        writeln!(out, "object of a deleted image: {key}{mark}")?;
    }
    if left_queued {
        report.failed += 1;
        writeln!(
            out,
            "storage refused a queued removal; the rest stays queued"
        )?;
    }
    let queued: HashSet<&str> = queued.iter().map(String::as_str).collect();
    // Objects next: an upload finishing in between then shows as a young object without
    // a row (left alone), never as a row without an object.
    let objects = storage.list().await?;
    let rows = store.all_keys().await?;
    let images = objects.iter().filter(|o| !o.key.is_thumbnail()).count();
    report.objects = images;
    report.thumbnails = objects.len() - images;
    report.rows = rows.len();
    let row_keys: HashSet<&str> = rows.iter().map(|(_, k)| k.as_str()).collect();
    let object_keys: HashSet<&str> = objects
        .iter()
        .filter(|o| !o.key.is_thumbnail())
        .map(|o| o.key.as_str())
        .collect();
    // A thumbnail belongs to its image's row.
    let (young, orphans): (Vec<_>, Vec<_>) = objects
        .iter()
        .filter(|o| {
            let image = o.key.image();
            !row_keys.contains(image.as_str()) && !queued.contains(image.as_str())
        })
        .partition(|o| o.modified > cutoff);
    report.young_objects = young.len();
    report.orphan_objects = orphans.len();
    // Decided before anything is removed: a refused run removes nothing at all, rows and
    // unfinished uploads included, and reports what it would have removed. Images alone are
    // compared: thumbnails come and go with them.
    let orphan_images = orphans.iter().filter(|o| !o.key.is_thumbnail()).count();
    let refuse = opts.apply && !opts.force && too_many(orphan_images, images);
    let refused = refuse.then_some(GcError::Refused {
        orphans: orphan_images,
        objects: images,
    });
    let apply = opts.apply && refused.is_none();
    let done = |ok: bool, report: &mut GcReport| {
        if !apply {
            ""
        } else if ok {
            report.removed += 1;
            "  [removed]"
        } else {
            report.failed += 1;
            "  [NOT removed]"
        }
    };

    for o in orphans {
        let mut removed = true;
        if apply {
            removed = match store.key_in_use(o.key.image().as_str()).await {
                Ok(true) => false,
                Ok(false) => storage.delete(&o.key).await.is_ok(),
                Err(_) => false,
            };
        }
        let mark = done(removed, &mut report);
        let what = if o.key.is_thumbnail() {
            "thumbnail without a row"
        } else {
            "object without a row"
        };
        writeln!(
            out,
            "{what}: {} ({} bytes, {} old){mark}",
            o.key,
            o.size,
            age(o.modified, now)
        )?;
    }

    let mut missing = Vec::new();
    for (id, key) in rows
        .iter()
        .filter(|(_, k)| !object_keys.contains(k.as_str()))
    {
        let gone = match ObjectKey::parse(key) {
            // Stored after the listing?
            Some(k) => !storage.exists(&k).await?,
            None => true,
        };
        if gone {
            missing.push((*id, key.clone()));
        }
    }
    report.missing_objects = missing.len();
    let suspicious = !opts.force && missing.len() > 1 && missing.len() == rows.len();
    for (id, key) in &missing {
        let mark = if apply && suspicious {
            report.failed += 1;
            "  [kept: see below]"
        } else {
            let removed = if apply {
                // The row goes, and the thumbnail that was made of its lost object with it.
                store.delete_row(*id).await.is_ok()
                    && match ObjectKey::parse(key) {
                        Some(k) => storage.delete(&k.thumbnail()).await.is_ok(),
                        None => true,
                    }
            } else {
                true
            };
            done(removed, &mut report)
        };
        writeln!(out, "row without an object: image {id} (key {key}){mark}")?;
    }
    if apply && suspicious {
        writeln!(
            out,
            "every image's object is missing: check STORAGE_BACKEND, STORAGE_DIR, S3_BUCKET and S3_KEY_PREFIX; \
             pass --force to remove the rows anyway"
        )?;
    }

    // Some S3-compatible servers cannot list multipart uploads; the rest of the report
    // still stands.
    let incomplete = match storage.incomplete(cutoff).await {
        Ok(found) => found,
        Err(e) => {
            writeln!(out, "cannot list unfinished uploads: {e}")?;
            Vec::new()
        }
    };
    report.incomplete_uploads = incomplete.len();
    for item in &incomplete {
        let removed = if apply {
            storage.remove_incomplete(item).await.is_ok()
        } else {
            true
        };
        let mark = done(removed, &mut report);
        writeln!(out, "unfinished upload: {item}{mark}")?;
    }

    writeln!(
        out,
        "checked {} objects, {} thumbnails and {} rows: {} queued removals of deleted images, {} \
         objects without a row ({} younger than {} s left alone), {} rows without an object, {} \
         unfinished uploads",
        report.objects,
        report.thumbnails,
        report.rows,
        report.queued_deletions,
        report.orphan_objects,
        report.young_objects,
        opts.min_age.as_secs(),
        report.missing_objects,
        report.incomplete_uploads
    )?;
    if let Some(refused) = refused {
        writeln!(out, "{refused}")?;
        return Err(refused);
    }
    let found = report.queued_deletions
        + report.orphan_objects
        + report.missing_objects
        + report.incomplete_uploads;
    if !apply && found > 0 {
        writeln!(
            out,
            "dry run: nothing was removed; run `ipm-api gc --apply` to remove them"
        )?;
    } else if apply {
        writeln!(out, "removed {}, failed {}", report.removed, report.failed)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::too_many;

    #[test]
    fn a_few_leftovers_pass_a_wrong_database_does_not() {
        assert!(!too_many(0, 0));
        assert!(!too_many(1, 1));
        assert!(too_many(2, 2));
        assert!(!too_many(5, 6));
        assert!(too_many(6, 10));
        assert!(!too_many(6, 12));
        assert!(!too_many(40, 1000));
    }
}
