-- Objects whose image rows are gone but whose bytes storage may still hold. Deleting an image
-- row (one image, or a project's images by cascade) queues its key here in the same
-- statement, so no storage call ever runs inside a write transaction: the API removes the
-- object after the delete has committed, then the entry. What a storage outage or a crash
-- leaves queued, the API's sweeper and `ipm-api gc --apply` finish.
CREATE TABLE object_deletions (
    storage_key TEXT PRIMARY KEY NOT NULL CHECK (length(storage_key) BETWEEN 1 AND 200),
    queued_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TRIGGER images_queue_object_deletion AFTER DELETE ON images
BEGIN
    INSERT OR IGNORE INTO object_deletions (storage_key) VALUES (old.storage_key);
END;
