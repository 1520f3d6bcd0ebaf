//! Fuzzing, as properties over generated input, of the parsers an upload or a download meets:
//! content sniffing and the header probe, the `Range` header, and the body guard in front of
//! multipart parsing. Each runs a fixed number of cases, so the suite stays bounded;
//! `PROPTEST_CASES` raises them for a longer hunt.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use headers::{HeaderMapExt, Range};
use proptest::prelude::*;
use warp::http::{HeaderMap, HeaderValue};

use crate::images::download::{RangeRequest, range_request};
use crate::sniff::{HeaderProbe, ImageType, sniff};
use crate::upload::{BodyError, BodyLimits, GuardedBody};

/// The cases per property: `default`, or `PROPTEST_CASES` for a longer hunt.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Bytes that often start like an image, then anything.
fn file() -> impl Strategy<Value = Vec<u8>> {
    let magic = prop_oneof![
        Just(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec()),
        Just(b"\xff\xd8\xff\xe0".to_vec()),
        Just(b"GIF89a".to_vec()),
        Just(b"RIFF\0\0\0\0WEBPVP8 ".to_vec()),
        Just(b"II*\0".to_vec()),
        Just(b"MM\0*".to_vec()),
        Just(b"\0\0\0\x1cftypavif".to_vec()),
        Just(b"<svg ".to_vec()),
        Just(Vec::new()),
    ];
    (magic, proptest::collection::vec(any::<u8>(), 0..2048)).prop_map(|(mut m, rest)| {
        m.extend(rest);
        m
    })
}

/// `bytes` cut into pieces at the given points.
fn pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for p in points {
        out.push(bytes[at..p].to_vec());
        at = p;
    }
    out.push(bytes[at..].to_vec());
    out
}

fn probe(kind: ImageType, chunks: &[Vec<u8>]) -> Option<crate::sniff::Dimensions> {
    let mut p = HeaderProbe::new(kind);
    for c in chunks {
        p.feed(c);
    }
    p.dimensions()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Reads a multipart body through the guard as an upload does, counting what was taken
/// from the client; the file part's bytes, or the error.
async fn read_multipart(chunks: Vec<Vec<u8>>, limit: u64) -> (u64, Result<u64, String>) {
    let taken = Arc::new(AtomicU64::new(0));
    let counter = taken.clone();
    let source = futures_util::stream::iter(chunks).map(move |c| {
        counter.fetch_add(c.len() as u64, Ordering::Relaxed);
        Ok::<_, BodyError>(Bytes::from(c))
    });
    let limits = BodyLimits {
        max_bytes: limit,
        idle: Duration::from_secs(60),
        drain_bytes: 0,
        drain_time: Duration::ZERO,
    };
    let body = GuardedBody::new(Box::pin(source), limits);
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
    let mut form = multer::Multipart::with_constraints(body, "b0und", constraints);
    let result = async {
        let mut file = 0u64;
        while let Some(mut field) = form.next_field().await.map_err(|e| e.to_string())? {
            while let Some(c) = field.chunk().await.map_err(|e| e.to_string())? {
                file += c.len() as u64;
            }
        }
        Ok(file)
    }
    .await;
    (taken.load(Ordering::Relaxed), result)
}

/// Multipart bodies of every shape: well-formed parts, part headers that never end,
/// preambles, garbage.
fn multipart_body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"--b0und\r\n".to_vec()),
        Just(b"Content-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n".to_vec()),
        Just(b"X-Padding: ".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r\n--b0und--\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..600),
        (1usize..4000).prop_map(|n| vec![b'a'; n]),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(5_000), ..ProptestConfig::default() })]

    #[test]
    fn sniffing_and_probing_do_not_depend_on_how_the_bytes_arrive(
        bytes in file(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let Some(kind) = sniff(&bytes) else {
            return Ok(());
        };
        let whole = probe(kind, std::slice::from_ref(&bytes));
        let split = probe(kind, &pieces(&bytes, &cuts));
        prop_assert_eq!(whole, split);
        if let Some(d) = whole {
            prop_assert!(d.width > 0 && d.height > 0);
        }
    }

    #[test]
    fn a_range_is_inside_the_object_or_refused(
        spec in prop_oneof![
            "bytes=[0-9]{0,20}-[0-9]{0,20}",
            "bytes=-[0-9]{0,20}",
            "bytes=[0-9]{0,5}-[0-9]{0,5}(,[0-9]{0,5}-[0-9]{0,5}){0,3}",
            "[ -~]{0,40}",
        ],
        size in prop_oneof![Just(0u64), Just(1), 0u64..10_000, any::<u64>()],
    ) {
        let Ok(value) = HeaderValue::from_str(&spec) else {
            return Ok(());
        };
        let mut headers = HeaderMap::new();
        headers.insert("range", value);
        let Some(range) = headers.typed_get::<Range>() else {
            return Ok(());
        };
        match range_request(&range, size) {
            RangeRequest::Partial(r) => {
                prop_assert!(r.first <= r.last && r.last < size, "{spec} of {size}: {r:?}");
            }
            RangeRequest::Unsatisfiable => {}
            RangeRequest::Full => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2_000), ..ProptestConfig::default() })]

    #[test]
    fn a_multipart_body_of_any_shape_stops_at_the_limit(
        body in multipart_body(),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
        limit in 1u64..8_000,
    ) {
        let chunks = pieces(&body, &cuts);
        let largest = chunks.iter().map(Vec::len).max().unwrap_or(0) as u64;
        let (taken, result) = runtime().block_on(read_multipart(chunks, limit));
        // Never more than the limit and the chunk that crossed it is read from the client.
        prop_assert!(taken <= limit + largest, "took {taken} of a {limit}-byte limit");
        // What a form hands over never exceeds the limit. (A form may end, at its closing
        // boundary, within the limit while the chunk after it, which is never parsed, was
        // already taken: the bound above covers that.)
        if let Ok(file) = result {
            prop_assert!(file <= limit);
        }
    }
}
