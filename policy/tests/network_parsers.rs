//! Fuzzing, as properties over generated input, of the parsers that read what a client sends:
//! the route matcher (method and raw URI) and the identity header's address. Each runs a fixed
//! number of cases, so the suite stays bounded; `PROPTEST_CASES` raises it for a longer hunt.
//!
//! Properties: nothing panics; what is accepted is in the one canonical form the rest of the
//! system relies on (a route's `path` reads back as itself, an address parses back as itself);
//! spelling the same request differently (percent-encoding, case) never changes the answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ipm_policy::identity::{Email, MAX_EMAIL_LEN};
use ipm_policy::routes::RouteTable;
use proptest::prelude::*;

/// The cases per property: `default`, or `PROPTEST_CASES` for a longer hunt.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn routes() -> &'static RouteTable {
    static ROUTES: std::sync::OnceLock<RouteTable> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/routes.toml");
        RouteTable::parse(&std::fs::read_to_string(file).unwrap()).unwrap()
    })
}

/// Paths the shipped routes know, with ids of any shape, and noise.
fn uri() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("api".to_string()),
        Just("projects".to_string()),
        Just("images".to_string()),
        Just("content".to_string()),
        Just("openapi.json".to_string()),
        Just("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        "[a-zA-Z0-9%._~-]{1,12}",
        "%[0-9a-fA-F]{2}",
        any::<String>(),
    ];
    (
        proptest::collection::vec(segment, 0..6),
        prop_oneof![Just(""), Just("?limit=1"), Just("#x"), Just("?a=%2F")],
    )
        .prop_map(|(segments, tail)| format!("/{}{tail}", segments.join("/")))
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_string()),
        Just("HEAD".to_string()),
        Just("POST".to_string()),
        Just("PATCH".to_string()),
        Just("DELETE".to_string()),
        "[A-Za-z]{0,8}",
        any::<String>(),
    ]
}

/// `path` with characters of its segments percent-encoded (every byte of each) where `mask`
/// says so; slashes and the escapes already there stay as they are.
fn reencode(path: &str, mask: &[bool]) -> String {
    let mut out = String::new();
    let mut chars = path.chars().enumerate();
    while let Some((i, c)) = chars.next() {
        if c == '%' {
            out.push(c);
            out.extend(chars.by_ref().take(2).map(|(_, c)| c));
        } else if c != '/' && mask[i % mask.len()] {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(20_000), ..ProptestConfig::default() })]

    #[test]
    fn the_route_matcher_accepts_only_canonical_unambiguous_paths(
        method in method(),
        uri in uri(),
        mask in proptest::collection::vec(any::<bool>(), 1..8),
    ) {
        let Some(m) = routes().matches(&method, &uri) else {
            return Ok(());
        };
        prop_assert!(!m.resource_id.is_empty());
        prop_assert!(!m.path.contains("/../") && !m.path.ends_with("/.."), "{m:?}");
        prop_assert!(!m.resource_id.chars().any(|c| c.is_control() || c == '/' || c == '\\'), "{m:?}");
        // The canonical path matches the same route and is its own canonical form.
        let again = routes().matches(&method, &m.path).unwrap();
        prop_assert_eq!(&again, &m);
        // Any other spelling of the same path (bytes percent-encoded) is the same request.
        let spelled = reencode(&m.path, &mask);
        let other = routes().matches(&method, &spelled);
        prop_assert_eq!(other.as_ref(), Some(&m), "{}", spelled);
    }

    #[test]
    fn an_accepted_address_is_canonical_and_case_never_makes_another_user(
        raw in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            "[a-zA-Z0-9.+_-]{1,20}@[a-zA-Z0-9-]{1,10}\\.[a-zA-Z]{2,6}".prop_map(String::into_bytes),
            "[ -~]{0,40}@[ -~]{0,40}".prop_map(String::into_bytes),
        ],
        flips in proptest::collection::vec(any::<bool>(), 1..16),
    ) {
        let Ok(email) = Email::parse_bytes(&raw) else {
            return Ok(());
        };
        let s = email.as_str();
        prop_assert!(s.len() <= MAX_EMAIL_LEN);
        prop_assert!(s.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{s}");
        prop_assert_eq!(s.matches('@').count(), 1, "{}", s);
        prop_assert_eq!(s.to_ascii_lowercase(), s, "lower case by default");
        let again = Email::parse_bytes(s.as_bytes()).unwrap();
        prop_assert_eq!(again.as_str(), s);
        // The raw value with its letters' case flipped anywhere is the same user.
        let flipped: Vec<u8> = raw
            .iter()
            .enumerate()
            .map(|(i, b)| if flips[i % flips.len()] { b.to_ascii_uppercase() } else { *b })
            .collect();
        prop_assert_eq!(Email::parse_bytes(&flipped).unwrap(), email);
    }
}
