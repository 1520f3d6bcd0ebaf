//! Policy test files (`policies/tests/*.toml`): who asks for what, and the answer expected,
//! evaluated through the same `decide` the server uses. Shared by `test`, `diff` and `explain`.

mod cases;
mod resolve;
mod runner;

pub use cases::{Case, CaseSpec, TESTS_DIR, Verdict, load_cases, render_problems, test_files};
pub use resolve::{CaseError, Outcome, Resolved, evaluate, resolve};
pub use runner::{CaseResult, TestReport, describe_entity, render, run};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::path::Path;

    use ipm_policy::snapshot::PolicySnapshot;

    fn shipped() -> PolicySnapshot {
        PolicySnapshot::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")).unwrap()
    }

    fn spec(toml_text: &str) -> CaseSpec {
        toml::from_str(toml_text).unwrap()
    }

    fn refusal(toml_text: &str) -> String {
        match resolve(&shipped(), &spec(toml_text)) {
            Ok(_) => "accepted".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn cases_that_cannot_be_asked_say_why() {
        let base = "user = \"alice@example.com\"\n";
        for (extra, want) in [
            ("", "give `method` and `path`"),
            ("method = \"GET\"\n", "give `method` and `path`"),
            (
                "action = \"ReadProject\"\n",
                "`action` and `resource` go together",
            ),
            (
                "action = \"ReadProject\"\nresource = \"p1\"\n",
                "`resource`: `p1` is not an entity",
            ),
            (
                "method = \"GET\"\npath = \"/api/projects\"\nresource_group = \"g\"\n",
                "`resource_group` describes a Project or an Image",
            ),
            (
                "method = \"GET\"\npath = \"/api/projects/p\"\ngroups = [\"a b\"]\n",
                "`groups`: `a b` is not a group name",
            ),
            (
                "method = \"GET\"\npath = \"/api/projects/p\"\nresource_group = \"g\"\nentities = []\n",
                "not both",
            ),
            (
                "method = \"GET\"\npath = \"/api/projects/p\"\nentities = '[{\"uid\": {\"type\": \"Project\", \"id\": \"p\"}, \"attrs\": {}, \"parents\": []}]'\n",
                "`entities`:",
            ),
        ] {
            let got = refusal(&format!("{base}{extra}"));
            assert!(got.contains(want), "{extra}: {got}");
        }
        assert!(refusal("user = \"x\"\nmethod = \"GET\"\npath = \"/\"\n").starts_with("`user`:"));
    }

    #[test]
    fn entities_in_toml_or_json_reach_the_decision() {
        let s = shipped();
        let in_toml = spec(
            r#"
user = "alice@example.com"
groups = ["photographers"]
method = "GET"
path = "/api/images/i1"
entities = [
  { uid = { type = "Group", id = "photographers" }, attrs = {}, parents = [] },
  { uid = { type = "Project", id = "p1" }, attrs = { group = { type = "Group", id = "photographers" } }, parents = [{ type = "Group", id = "photographers" }] },
  { uid = { type = "Image", id = "i1" }, attrs = { project = { type = "Project", id = "p1" }, group = { type = "Group", id = "photographers" } }, parents = [{ type = "Project", id = "p1" }] },
]
"#,
        );
        let o = evaluate(&s, &in_toml).unwrap();
        assert_eq!(o.verdict, Verdict::Allow, "{o:?}");
        assert_eq!(o.policies, ["members-read-write-own-group"]);
        let by_group = spec(
            "user = \"alice@example.com\"\ngroups = [\"photographers\"]\nmethod = \"GET\"\npath = \"/api/images/i1\"\nresource_group = \"photographers\"\n",
        );
        assert_eq!(evaluate(&s, &by_group).unwrap(), o);
        let elsewhere = spec(
            "user = \"alice@example.com\"\ngroups = [\"photographers\"]\nmethod = \"GET\"\npath = \"/api/images/i1\"\nresource_group = \"editors\"\n",
        );
        assert_eq!(evaluate(&s, &elsewhere).unwrap().verdict, Verdict::Deny);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = toml::from_str::<CaseSpec>("user = \"a@example.com\"\nexpected = \"allow\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `expected`"), "{e}");
    }

    #[test]
    fn an_image_in_a_group_sits_in_a_project_of_its_own_id() {
        let case = "user = \"alice@example.com\"\nmethod = \"GET\"\npath = \"/api/images/i1\"\nresource_group = \"g\"\n";
        let resolved = resolve(&shipped(), &spec(case)).unwrap();
        let uids: Vec<String> = resolved
            .entities
            .iter()
            .map(|e| e.uid().to_string())
            .collect();
        assert_eq!(
            uids,
            [
                r#"Image::"i1""#,
                r#"Project::"i1-project""#,
                r#"Group::"g""#
            ]
        );
    }
}
