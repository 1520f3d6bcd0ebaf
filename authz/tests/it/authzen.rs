//! The AuthZEN endpoint (Authorization API 1.0) on the interop example set: the interop
//! decision files, the wire contract, the entities file as PIP, search, and an independent
//! client in Python.

mod api;
mod conformance;
mod pip;
mod projects;
mod python_client;
mod search;

use serde_json::{Value, json};

/// The five users of the interop scenario, by their opaque subject ids.
pub const RICK: &str = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
pub const MORTY: &str = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
pub const SUMMER: &str = "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
pub const BETH: &str = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";

/// A Todo question: `who` doing `action` on the todo `id` owned by `owner`.
pub fn todo_question(who: &str, action: &str, id: &str, owner: &str) -> Value {
    json!({
        "subject": { "type": "user", "id": who },
        "action": { "name": action },
        "resource": { "type": "todo", "id": id, "properties": { "ownerID": owner } },
    })
}
