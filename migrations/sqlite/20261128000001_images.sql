-- Images, each in one project. The bytes live in storage under `storage_key`, a key the
-- server generated. A row is inserted only after its object is stored; deleting a row and
-- its object happen in one transaction that commits only once the object is gone.
CREATE TABLE images (
    id BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    -- Deleting a project deletes its rows; the API removes their objects (gc catches any left).
    project_id BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    storage_key TEXT NOT NULL UNIQUE CHECK (length(storage_key) BETWEEN 1 AND 200),
    filename TEXT NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    content_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL CHECK (size_bytes > 0),
    sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
    -- NULL only for an SVG without a plain size.
    width INTEGER CHECK (width > 0),
    height INTEGER CHECK (height > 0),
    uploaded_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- A project's images, in id (creation) order.
CREATE INDEX images_project_id ON images (project_id, id);
