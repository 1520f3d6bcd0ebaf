-- Projects, each owned by one group. Ids are UUIDv7 stored as 16 bytes: ordering by id
-- is ordering by creation time, which keyset pagination relies on.
CREATE TABLE projects (
    id BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    meta_group_id TEXT NOT NULL CHECK (length(meta_group_id) BETWEEN 1 AND 128),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    description TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT projects_name_unique_in_group UNIQUE (meta_group_id, name)
);

-- The list: the caller's groups, in id order.
CREATE INDEX projects_group_id ON projects (meta_group_id, id);
