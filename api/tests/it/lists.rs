//! Lists follow the policies: for random policy sets (per-project and per-image forbids and
//! permits, group rules, admin exceptions, attribute conditions, hierarchy, rules on
//! `context.path`) added to the shipped ones, every user's project list, and every project's
//! image list, show exactly the items the item route answers 200 for, page after page.

use std::collections::BTreeSet;
use std::time::Duration;

use ipm_testkit::eventually;
use reqwest::Method;
use serde_json::Value;

use crate::images::{png, upload_raw};
use crate::support::*;

const USERS: [&str; 6] = [ADMIN, ALICE, BOB, TEN, MALLORY, NOBODY];
const GROUPS: [&str; 6] = ["team-a", "team-b", "g0", "g1", "admins", "solo"];
/// Random policy sets per backend.
const SETS: usize = 14;

/// A small deterministic generator (xorshift), so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[(self.next() % from.len() as u64) as usize]
    }
}

struct Data {
    projects: Vec<String>,
    /// (project, image) pairs.
    images: Vec<(String, String)>,
}

async fn populate(app: &TestApp) -> Data {
    let mut projects = Vec::new();
    let mut images = Vec::new();
    for (i, group) in GROUPS.iter().cycle().take(18).enumerate() {
        let p = app.create(ADMIN, group, &format!("p{i}")).await;
        projects.push(p["id"].as_str().unwrap().to_string());
    }
    for p in projects.iter().take(3) {
        for n in 0..4 {
            let (status, img) =
                upload_raw(app, ADMIN, p, &format!("i{n}.png"), png(2, 2, 300)).await;
            assert_eq!(status, 201, "{img}");
            images.push((p.clone(), img["id"].as_str().unwrap().to_string()));
        }
    }
    Data { projects, images }
}

/// One random rule, with id `id`.
fn rule(rng: &mut Rng, d: &Data, id: usize) -> String {
    let p = rng.pick(&d.projects).clone();
    let (ip, i) = rng.pick(&d.images).clone();
    let g = *rng.pick(&GROUPS);
    let g2 = *rng.pick(&GROUPS);
    let u = *rng.pick(&USERS);
    let c = *rng.pick(&[
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f",
    ]);
    let body = match rng.next() % 12 {
        0 => format!("forbid (principal, action == Action::\"ReadProject\", resource == Project::\"{p}\") unless {{ principal in Group::\"admins\" }};"),
        1 => format!("permit (principal == User::\"{u}\", action == Action::\"ReadProject\", resource == Project::\"{p}\");"),
        2 => format!("permit (principal, action == Action::\"ReadProject\", resource) when {{ resource.group == Group::\"{g}\" }};"),
        3 => format!("forbid (principal in Group::\"{g2}\", action in [Action::\"Read\"], resource) when {{ resource has group && resource.group == Group::\"{g}\" }};"),
        4 => format!("permit (principal in Group::\"{g2}\", action == Action::\"ReadImage\", resource == Image::\"{i}\");"),
        5 => format!("forbid (principal, action == Action::\"ReadImage\", resource == Image::\"{i}\");"),
        6 => format!("forbid (principal == User::\"{u}\", action == Action::\"ReadImage\", resource in Project::\"{ip}\");"),
        7 => format!("permit (principal, action == Action::\"ReadProject\", resource) when {{ context.path like \"*{c}\" }};"),
        8 => format!("forbid (principal, action in [Action::\"Read\"], resource) when {{ context.path like \"*{c}\" && !(principal in Group::\"admins\") }};"),
        9 => "forbid (principal, action == Action::\"ReadProject\", resource) unless { principal in resource.group };".to_string(),
        10 => format!("permit (principal in Group::\"{g2}\", action in [Action::\"Read\"], resource in Group::\"{g}\");"),
        _ => format!("forbid (principal == User::\"{u}\", action, resource == Project::\"{p}\");"),
    };
    format!("@id(\"r{id}\")\n{body}\n")
}

async fn policy_hash(app: &TestApp) -> String {
    let r = app.raw(Method::GET, "/readyz", &[], None).await;
    let v: Value = r.json().await.unwrap();
    v["policies"]["hash"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Writes the rules and waits until the API has them in force.
async fn install(app: &TestApp, rules: &str) {
    let file = app.policy_dir.join("zz-random.cedar");
    let tmp = app.policy_dir.join(".zz-random.tmp");
    std::fs::write(&tmp, rules).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let files = ipm_policy::snapshot::read_dir(&app.policy_dir).unwrap();
    if let Err(e) = ipm_policy::PolicySnapshot::from_sources(&app.policy_dir, files.clone()) {
        panic!("a generated policy set does not load:\n{rules}\n{e}");
    }
    let want = ipm_policy::snapshot::hash_sources(&files);
    let loaded = eventually(Duration::from_secs(20), || async {
        policy_hash(app).await == want
    })
    .await;
    assert!(loaded.is_some(), "the API did not load:\n{rules}");
}

/// Every item id a list route shows `user`, page by page; `None` when the list is refused.
async fn listed(app: &TestApp, user: &str, base: &str, limit: u32) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{base}?limit={limit}&cursor={c}"),
            None => format!("{base}?limit={limit}"),
        };
        let (status, page) = app.get(user, &path).await;
        if status != 200 {
            assert!(out.is_empty(), "a later page refused: {status} {page}");
            return None;
        }
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit as usize);
        for item in items {
            assert!(
                out.insert(item["id"].as_str().unwrap().to_string()),
                "listed twice"
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert!(!items.is_empty(), "a cursor after an empty page");
                cursor = Some(c.to_string());
            }
            None => return Some(out),
        }
    }
}

/// The ids among `ids` whose item route answers 200 for `user`.
async fn readable(app: &TestApp, user: &str, route: &str, ids: &[&String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for id in ids {
        let (status, _) = app.get(user, &format!("{route}/{id}")).await;
        assert!(status == 200 || status == 404 || status == 403, "{status}");
        if status == 200 {
            out.insert(id.to_string());
        }
    }
    out
}

async fn lists_match_item_routes(backend: Backend) {
    let app = spawn_api(backend).await;
    let data = populate(&app).await;
    let mut rng = Rng(0x5eed_1157_0000_0001);
    let mut compared = 0usize;
    for set in 0..SETS {
        let count = 1 + (rng.next() % 5) as usize;
        let rules: String = (0..count)
            .map(|n| rule(&mut rng, &data, set * 10 + n))
            .collect();
        install(&app, &rules).await;
        let projects: Vec<&String> = data.projects.iter().collect();
        for user in USERS {
            let limit = 1 + (rng.next() % 4) as u32;
            if let Some(list) = listed(&app, user, "/api/projects", limit).await {
                let items = readable(&app, user, "/api/projects", &projects).await;
                assert_eq!(list, items, "set {set}, {user}, projects:\n{rules}");
                compared += projects.len();
            }
            for p in data.projects.iter().take(3) {
                let base = format!("/api/projects/{p}/images");
                let Some(list) = listed(&app, user, &base, limit).await else {
                    continue;
                };
                let images: Vec<&String> = data
                    .images
                    .iter()
                    .filter(|(ip, _)| ip == p)
                    .map(|(_, i)| i)
                    .collect();
                let items = readable(&app, user, "/api/images", &images).await;
                assert_eq!(list, items, "set {set}, {user}, images of {p}:\n{rules}");
                compared += images.len();
            }
        }
    }
    // Every set compared something: the lists were not all refused.
    assert!(compared > SETS * 20, "{compared}");
    eprintln!("lists matched the item routes on {SETS} policy sets, {compared} items compared");
}
crate::both_backends!(lists_follow_policies, lists_match_item_routes);
