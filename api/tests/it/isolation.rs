//! Group isolation: a user in one group never sees another group's projects, whether by
//! listing, by id, by guessing ids, by filtering or by forging cursors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;

use crate::both_backends;
use crate::support::*;

async fn isolation(backend: Backend) {
    let app = spawn_api(backend).await;
    let mut a_ids = Vec::new();
    let mut b_ids = Vec::new();
    for i in 0..6 {
        // Interleaved, so B's ids sit between A's in id order.
        a_ids.push(
            app.create(ALICE, "team-a", &format!("a{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        b_ids.push(
            app.create(BOB, "team-b", &format!("b{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let ids = |items: &[serde_json::Value]| -> Vec<String> {
        items
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };

    // By list, in any page size.
    for limit in [1, 4, 50] {
        assert_eq!(
            ids(&app.list_all(ALICE, limit).await),
            a_ids,
            "limit {limit}"
        );
        assert_eq!(ids(&app.list_all(BOB, limit).await), b_ids, "limit {limit}");
    }

    // By id: another group's project answers exactly as a project that does not exist.
    let missing = format!("/api/projects/{}", uuid::Uuid::now_v7());
    let (status, not_found) = app.get(ALICE, &missing).await;
    assert_eq!(status, 404);
    for id in &b_ids {
        let path = format!("/api/projects/{id}");
        assert_eq!(app.get(ALICE, &path).await, (404, not_found.clone()));
        assert_eq!(
            app.call(ALICE, Method::PATCH, &path, Some(r#"{"name":"mine"}"#))
                .await,
            (404, not_found.clone())
        );
        assert_eq!(
            app.call(ALICE, Method::DELETE, &path, None).await,
            (404, not_found.clone())
        );
    }
    assert_eq!(
        ids(&app.list_all(BOB, 50).await),
        b_ids,
        "B's projects are untouched"
    );
    assert!(
        app.list_all(BOB, 50)
            .await
            .iter()
            .all(|p| p["name"] != "mine")
    );

    // By guessing: ids next to B's (same time prefix) are no better than random ones.
    for id in &b_ids {
        let mut bytes = *uuid::Uuid::parse_str(id).unwrap().as_bytes();
        bytes[15] ^= 1;
        let guess = uuid::Uuid::from_bytes(bytes);
        assert_eq!(
            app.get(ALICE, &format!("/api/projects/{guess}")).await,
            (404, not_found.clone())
        );
    }

    // By filter: naming B's group gives nothing.
    let (status, page) = app.get(ALICE, "/api/projects?group=team-b").await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    let (_, page) = app.get(ALICE, "/api/projects?group=team-a&limit=200").await;
    assert_eq!(ids(page["items"].as_array().unwrap()), a_ids);

    // By cursor: a cursor forged from B's ids only moves the starting point within A's.
    for (i, b) in b_ids.iter().enumerate() {
        let mut raw = vec![1u8];
        raw.extend_from_slice(uuid::Uuid::parse_str(b).unwrap().as_bytes());
        let cursor = URL_SAFE_NO_PAD.encode(raw);
        let (status, page) = app
            .get(ALICE, &format!("/api/projects?limit=200&cursor={cursor}"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            ids(page["items"].as_array().unwrap()),
            a_ids[i + 1..].to_vec()
        );
    }
    // A cursor from B's listing, replayed by A, shows only A's projects too.
    let (_, page) = app.get(BOB, "/api/projects?limit=1").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = app
        .get(ALICE, &format!("/api/projects?limit=200&cursor={cursor}"))
        .await;
    assert!(
        ids(page["items"].as_array().unwrap())
            .iter()
            .all(|id| a_ids.contains(id))
    );
    // A tampered cursor is refused, not interpreted.
    let (status, v) = app
        .get(
            ALICE,
            &format!("/api/projects?cursor={}x", &cursor[..cursor.len() - 1]),
        )
        .await;
    assert_eq!((status, v["field"].as_str()), (400, Some("cursor")), "{v}");
}
both_backends!(group_isolation, isolation);
