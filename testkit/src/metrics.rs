//! Reading one sample out of a Prometheus text exposition (what `/metrics` serves), so a test
//! asserts on a counter's value rather than on a line's spelling.

/// The value of the sample `name{labels}` in `text`, or `None` when there is none. `labels`
/// must be the sample's whole label set, in any order: `&[]` matches only the unlabelled sample.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_sample)
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .and_then(|s| s.value.parse().ok())
}

struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: &'a str,
}

/// `name{k="v",…} value [timestamp]`, with `\\`, `\"` and `\n` escapes in label values.
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.trim(), value));
            rest = &after[end + 1..];
        }
    }
    let value = rest.split_whitespace().next()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::metric_value;

    const TEXT: &str = r#"# HELP authz_decisions_total Decisions.
# TYPE authz_decisions_total counter
authz_decisions_total{adapter="nginx",outcome="allow",status="200",reason="policy_allowed"} 3
authz_decisions_total{adapter="nginx",outcome="deny",status="401",reason="invalid_proxy_secret"} 1
authz_group_cache_lookups_total{result="hit"} 2
authz_odd_total{path="a \"quoted\", comma\\ and }"} 7
authz_up 1 1700000000000
"#;

    #[test]
    fn finds_a_sample_by_its_whole_label_set_in_any_order() {
        let v = |name, labels: &[(&str, &str)]| metric_value(TEXT, name, labels);
        assert_eq!(
            v(
                "authz_decisions_total",
                &[
                    ("reason", "policy_allowed"),
                    ("adapter", "nginx"),
                    ("status", "200"),
                    ("outcome", "allow")
                ]
            ),
            Some(3.0)
        );
        assert_eq!(
            v("authz_group_cache_lookups_total", &[("result", "hit")]),
            Some(2.0)
        );
        assert_eq!(
            v("authz_group_cache_lookups_total", &[("result", "miss")]),
            None
        );
        assert_eq!(v("authz_decisions_total", &[("adapter", "nginx")]), None);
        assert_eq!(
            v(
                "authz_odd_total",
                &[("path", "a \"quoted\", comma\\ and }")]
            ),
            Some(7.0)
        );
        assert_eq!(v("authz_up", &[]), Some(1.0));
        assert_eq!(v("authz_decisions", &[]), None);
    }
}
