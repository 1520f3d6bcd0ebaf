//! Keyset pagination: every project exactly once, in id order, across page sizes and while
//! other requests insert projects concurrently.

use std::collections::HashSet;

use crate::both_backends;
use crate::support::*;

fn ids(items: &[serde_json::Value]) -> Vec<String> {
    items
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

async fn pages(backend: Backend) {
    let app = spawn_api(backend).await;
    let mut created = Vec::new();
    for i in 0..45 {
        let p = app
            .create(TEN, &format!("g{}", i % 10), &format!("p{i}"))
            .await;
        created.push(p["id"].as_str().unwrap().to_string());
    }
    for limit in [1, 7, 44, 45, 46, 200] {
        let all = ids(&app.list_all(TEN, limit).await);
        assert_eq!(all, created, "limit {limit}");
    }
    // The default page is 50; exactly 45 means no next page.
    let (_, page) = app.get(TEN, "/api/projects").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 45);
    assert!(page["next_cursor"].is_null());
    // One group only.
    let (_, page) = app.get(TEN, "/api/projects?group=g3&limit=200").await;
    let g3: Vec<String> = created.iter().skip(3).step_by(10).cloned().collect();
    assert_eq!(ids(page["items"].as_array().unwrap()), g3);
}
both_backends!(pages_in_id_order, pages);

async fn concurrent_inserts(backend: Backend) {
    let app = std::sync::Arc::new(spawn_api(backend).await);
    let mut before = Vec::new();
    for i in 0..60 {
        let p = app
            .create(TEN, &format!("g{}", i % 10), &format!("old{i}"))
            .await;
        before.push(p["id"].as_str().unwrap().to_string());
    }
    let writer = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..40 {
                let p = app
                    .create(TEN, &format!("g{}", i % 10), &format!("new{i}"))
                    .await;
                ids.push(p["id"].as_str().unwrap().to_string());
            }
            ids
        })
    };
    // Page slowly through while the writer inserts.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/projects?limit=5&cursor={c}"),
            None => "/api/projects?limit=5".to_string(),
        };
        let (status, page) = app.get(TEN, &path).await;
        assert_eq!(status, 200);
        seen.extend(ids(page["items"].as_array().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        tokio::task::yield_now().await;
    }
    let inserted = writer.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a project appeared twice");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "pages are not in id order");
    for id in &before {
        assert!(
            unique.contains(id),
            "a project that existed throughout was skipped"
        );
    }
    for id in &seen {
        assert!(
            before.contains(id) || inserted.contains(id),
            "an unknown project appeared"
        );
    }
    // After the writer is done, a fresh walk sees everything.
    let mut all = before.clone();
    all.extend(inserted);
    all.sort();
    assert_eq!(ids(&app.list_all(TEN, 13).await), all);
}
both_backends!(pagination_with_concurrent_inserts, concurrent_inserts);
