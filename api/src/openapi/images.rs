//! The image routes of the OpenAPI document: listing, uploading, reading, downloading,
//! thumbnails and deleting, with their schemas.

use serde_json::{Value, json};

use super::{auth_errors, error, id_param, merge, ok};
use crate::models::{DEFAULT_LIMIT, MAX_LIMIT};

fn image_id_param() -> Value {
    json!({
        "name": "id", "in": "path", "required": true,
        "description": "The image's id (lower-case hyphenated UUID)",
        "schema": { "type": "string", "format": "uuid" }
    })
}

/// `auth_errors`, and storage among what can be unavailable.
fn image_errors(responses: Value) -> Value {
    let mut responses = auth_errors(responses);
    responses["503"] = error("Group membership, the database or image storage is unavailable");
    responses
}

fn upload_errors(responses: Value) -> Value {
    let mut responses = image_errors(responses);
    responses["503"] = error(
        "Group membership, the database or image storage is unavailable, or the server has \
         `API_MAX_CONCURRENT_UPLOADS` uploads in progress (with `Retry-After`)",
    );
    responses
}

/// The image routes and schemas.
pub(super) fn add_images(doc: &mut Value) {
    let paths = json!({
        "/api/projects/{id}/images": {
            "parameters": [ id_param() ],
            "get": {
                "operationId": "listImages",
                "summary": "A project's images, oldest first, one page at a time",
                "parameters": [
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT } },
                    { "name": "cursor", "in": "query", "description": "`next_cursor` of the previous page, unchanged", "schema": { "type": "string" } }
                ],
                "responses": image_errors(json!({
                    "200": ok("One page of images", "ImagePage"),
                    "400": error("A bad `limit`, `cursor` or unknown parameter, or an id that is not a UUID"),
                    "404": error("No such project, or one the caller may not see")
                }))
            },
            "post": {
                "operationId": "uploadImage",
                "summary": "Upload an image: multipart/form-data with the file in a part named `file`, or the raw bytes with `?filename=`",
                "description": "The body streams to storage. The type is read from the bytes (PNG, JPEG, GIF, WebP, TIFF, AVIF; SVG only when the server allows it), never from the name or the declared type; a raw body must still declare a type no HTML form sends (not `text/plain` or `application/x-www-form-urlencoded`).",
                "parameters": [
                    { "name": "filename", "in": "query", "description": "The file's name; required with a raw body, overrides a part's filename. Paths and control characters are dropped.", "schema": { "type": "string" } }
                ],
                "requestBody": {
                    "required": true,
                    "content": {
                        "multipart/form-data": { "schema": { "type": "object", "required": ["file"], "properties": { "file": { "type": "string", "format": "binary" } } } },
                        "application/octet-stream": { "schema": { "type": "string", "format": "binary" } },
                        "image/*": { "schema": { "type": "string", "format": "binary" } }
                    }
                },
                "responses": upload_errors(json!({
                    "201": ok("The stored image; `Location` points at it", "Image"),
                    "400": error("A bad id or parameter, a missing `filename`, or an interrupted upload"),
                    "404": error("No such project, or one the caller may not see"),
                    "408": error("Nothing of the upload arrived for `API_UPLOAD_IDLE_TIMEOUT_SECONDS`"),
                    "413": error("The file is larger than the server's limit (`MAX_UPLOAD_BYTES`), or a multipart body is larger than it and 64 KiB"),
                    "415": error("The bytes are not an accepted image type, or a raw body has no `Content-Type` or one a form sends (`text/plain`, `application/x-www-form-urlencoded`)"),
                    "422": error("An empty file, a multipart body without a file part, or a malformed one"),
                    "429": error("The caller has `API_MAX_CONCURRENT_UPLOADS_PER_USER` uploads in progress; `Retry-After` says when to try again")
                }))
            }
        },
        "/api/images/{id}": {
            "parameters": [ image_id_param() ],
            "get": {
                "operationId": "getImage",
                "summary": "One image's metadata",
                "responses": image_errors(json!({
                    "200": ok("The image", "Image"),
                    "400": error("The id is not a UUID"),
                    "404": error("No such image, or one the caller may not see")
                }))
            },
            "delete": {
                "operationId": "deleteImage",
                "summary": "Delete an image: its row and its stored bytes, or neither",
                "responses": image_errors(json!({
                    "204": { "description": "Deleted" },
                    "400": error("The id is not a UUID"),
                    "404": error("No such image, or one the caller may not see")
                }))
            }
        },
        "/api/images/{id}/content": {
            "parameters": [ image_id_param() ],
            "get": {
                "operationId": "getImageContent",
                "summary": "The image's bytes, as an attachment",
                "description": "Streamed with `Content-Type`, `Content-Length`, `ETag` (the SHA-256) and `Content-Disposition`. One `Range` per request (`If-Range` honoured); `If-None-Match` answers 304. With S3 storage and `IMAGE_DOWNLOAD=redirect`, answers 302 to a short-lived presigned URL instead.",
                "parameters": [
                    { "name": "Range", "in": "header", "schema": { "type": "string", "example": "bytes=0-1023" } }
                ],
                "responses": image_errors(json!({
                    "200": { "description": "The whole image", "content": { "image/*": { "schema": { "type": "string", "format": "binary" } } } },
                    "206": { "description": "The requested range (`Content-Range`)", "content": { "image/*": { "schema": { "type": "string", "format": "binary" } } } },
                    "302": { "description": "A presigned URL of the object (`Location`)" },
                    "304": { "description": "The client's copy (`If-None-Match`) is current" },
                    "400": error("The id is not a UUID"),
                    "404": error("No such image, or one the caller may not see; or its bytes are missing from storage (`image_content_missing`)"),
                    "416": error("The range starts past the end (`Content-Range: bytes */size`)")
                }))
            }
        },
        "/api/images/{id}/thumbnail": {
            "parameters": [ image_id_param() ],
            "get": {
                "operationId": "getImageThumbnail",
                "summary": "A small JPEG (PNG when transparent) of the image, at most 320 pixels a side",
                "description": "Made when the image is uploaded, or on first request for one stored before; kept beside the image and removed with it. `Cache-Control: private, max-age=86400` and an `ETag`; `If-None-Match` answers 304. None is made of AVIF or SVG images, of images over `API_THUMBNAIL_MAX_PIXELS` pixels, or of bytes that do not decode (404 `no_thumbnail`).",
                "responses": image_errors(json!({
                    "200": { "description": "The thumbnail", "content": { "image/jpeg": { "schema": { "type": "string", "format": "binary" } }, "image/png": { "schema": { "type": "string", "format": "binary" } } } },
                    "304": { "description": "The client's copy (`If-None-Match`) is current" },
                    "400": error("The id is not a UUID"),
                    "404": error("No such image, or one the caller may not see; or no thumbnail can be made of it (`no_thumbnail`, with why in `message`)")
                }))
            }
        }
    });
    let schemas = json!({
        "Image": {
            "type": "object",
            "required": ["id", "project_id", "filename", "content_type", "size_bytes", "sha256", "width", "height", "uploaded_by", "created_at"],
            "properties": {
                "id": { "type": "string", "format": "uuid" },
                "project_id": { "type": "string", "format": "uuid" },
                "filename": { "type": "string", "maxLength": crate::filename::MAX_FILENAME_CHARS },
                "content_type": { "type": "string", "enum": ["image/png", "image/jpeg", "image/gif", "image/webp", "image/tiff", "image/avif", "image/svg+xml"] },
                "size_bytes": { "type": "integer", "minimum": 1 },
                "sha256": { "type": "string", "pattern": "^[0-9a-f]{64}$" },
                "width": { "type": ["integer", "null"], "description": "Null only for an SVG without a plain size" },
                "height": { "type": ["integer", "null"] },
                "uploaded_by": { "type": "string", "format": "email" },
                "created_at": { "type": "string", "format": "date-time" }
            }
        },
        "ImagePage": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": { "$ref": "#/components/schemas/Image" } },
                "next_cursor": { "type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last" }
            }
        }
    });
    merge(doc, paths, schemas);
}
