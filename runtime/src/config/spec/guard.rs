//! The typo guard: a variable under a prefix only ipm reads, yet not in the spec, is a
//! misspelling, and silently ignoring it would run with a default the deployer did not want.

use super::{Program, Readers, all, find};
use crate::config::{ConfigError, Env, invalid};

/// The prefixes ipm owns, and which binaries refuse unknown names under them.
///
/// A prefix is owned only when no other common software reads variables that start with it:
/// the `.env` and the environment are often shared with other programs (a compose file, a pod),
/// and refusing their variables would stop ipm from starting. Hence not owned:
/// - `AUTH_`: Auth.js reads `AUTH_SECRET`, `AUTH_URL`, `AUTH_TRUST_HOST`, `AUTH_<PROVIDER>_ID`;
/// - `REDIS_`: Redis images, Sidekiq and hosting add-ons read `REDIS_URL`, `REDIS_PASSWORD`;
/// - `DB_`: `DB_HOST`, `DB_PASSWORD`, `DB_NAME` are in nearly every compose file;
/// - `S3_`: backup images (postgres-backup-s3 and the like) read `S3_BUCKET`, `S3_PREFIX`;
/// - `STORAGE_`: Supabase's storage server reads `STORAGE_BACKEND`, `STORAGE_S3_BUCKET`;
/// - `IMAGE_`: compose `.env` files commonly hold `IMAGE_TAG` or `IMAGE_NAME`;
/// - `POLICY_`, `GROUP_`, `X_`: too generic.
///
/// authz and ipm-api share one `.env`, so each refuses only its own `AUTHZ_` or `API_`
/// names (the API ignores a misspelt `AUTHZ_` name; authz will refuse it).
pub const OWNED_PREFIXES: &[(&str, Readers)] = &[
    // authz's since the beginning; the name says whose it is.
    ("AUTHZ_", Readers::Authz),
    // ipm-api's since the beginning. Generic (`API_KEY`, `API_URL`), but refused so far and
    // kept: a deployment that starts today must keep starting.
    ("API_", Readers::Api),
    // Only ipm caches groups under this name; both binaries read the cache settings.
    ("GROUP_CACHE_", Readers::Both),
    // The variants of ipm's secret: a misspelt `_PREVIOUS` during a rotation would lock out
    // every proxy still sending the old secret.
    ("PROXY_SHARED_SECRET_", Readers::Both),
];

/// Refuses the first (in name order) variable under a prefix `program` owns that the spec
/// does not know, naming it and the closest known name.
pub fn reject_unknown(env: &Env, program: Program) -> Result<(), ConfigError> {
    let owned = |name: &str| {
        OWNED_PREFIXES
            .iter()
            .find(|(prefix, readers)| readers.include(program) && name.starts_with(prefix))
            .map(|(prefix, _)| *prefix)
    };
    let unknown = env
        .keys()
        .filter_map(|k| Some((k.as_str(), owned(k)?)))
        .filter(|(k, _)| find(k).is_none())
        .min();
    let Some((name, prefix)) = unknown else {
        return Ok(());
    };
    let message = match closest(name) {
        Some(known) => format!("unknown variable; did you mean `{known}`?"),
        None => {
            let known: Vec<&str> = all()
                .map(|v| v.name())
                .filter(|n| n.starts_with(prefix))
                .collect();
            format!(
                "unknown variable; {} knows {}",
                program.name(),
                known.join(", ")
            )
        }
    };
    Err(invalid(name, message))
}

/// The known name `name` most likely meant: one it begins (a unit suffix left out, as in
/// `GROUP_CACHE_TTL`), else the nearest with at most a third of its letters changed.
fn closest(name: &str) -> Option<&'static str> {
    let truncated = all()
        .map(|v| v.name())
        .filter(|known| known.len() > name.len() && known.starts_with(name))
        .min_by_key(|known| known.len());
    truncated.or_else(|| {
        all()
            .map(|v| (edit_distance(name, v.name()), v.name()))
            .filter(|(d, _)| d * 3 <= name.len())
            .min()
            .map(|(_, known)| known)
    })
}

/// Edit distance between two variable names, ignoring case.
fn edit_distance(a: &str, b: &str) -> usize {
    ipm_policy::diagnostics::edit_distance(&a.to_ascii_uppercase(), &b.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn refusal(program: Program, pairs: &[(&str, &str)]) -> String {
        match reject_unknown(&env(pairs), program) {
            Ok(()) => "accepted".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn names_the_unknown_variable_and_the_one_meant() {
        assert_eq!(
            refusal(Program::Authz, &[("AUTHZ_LISTN", "x")]),
            "AUTHZ_LISTN is invalid: unknown variable; did you mean `AUTHZ_LISTEN`?"
        );
        assert_eq!(
            refusal(Program::Api, &[("API_POLICY_POLL_SECOND", "2")]),
            "API_POLICY_POLL_SECOND is invalid: unknown variable; did you mean \
             `API_POLICY_POLL_SECONDS`?"
        );
        assert_eq!(
            refusal(Program::Api, &[("GROUP_CACHE_TTL", "60")]),
            "GROUP_CACHE_TTL is invalid: unknown variable; did you mean \
             `GROUP_CACHE_TTL_SECONDS`?"
        );
        assert_eq!(
            refusal(Program::Authz, &[("PROXY_SHARED_SECRET_PREVIOS", "x")]),
            "PROXY_SHARED_SECRET_PREVIOS is invalid: unknown variable; did you mean \
             `PROXY_SHARED_SECRET_PREVIOUS`?"
        );
        // Nothing near: the known names under the prefix.
        let far = refusal(Program::Authz, &[("AUTHZ_SECRET", "x")]);
        assert!(
            far.starts_with("AUTHZ_SECRET is invalid: unknown variable; authz knows AUTHZ_LISTEN, AUTHZ_GRPC_LISTEN,"),
            "{far}"
        );
    }

    #[test]
    fn each_binary_guards_only_its_own_prefixes() {
        // One `.env` serves both: authz's names are not the API's business, and back.
        assert_eq!(refusal(Program::Api, &[("AUTHZ_LISTN", "x")]), "accepted");
        assert_eq!(refusal(Program::Authz, &[("API_LISTN", "x")]), "accepted");
        // Other software's variables under prefixes ipm does not own.
        let others = [
            ("AUTH_SECRET", "x"),
            ("REDIS_PASSWORD", "x"),
            ("DB_HOST", "x"),
            ("S3_PREFIX", "x"),
            ("STORAGE_S3_BUCKET", "x"),
            ("IMAGE_TAG", "x"),
            ("PROXY_HOST", "x"),
        ];
        assert_eq!(refusal(Program::Authz, &others), "accepted");
        assert_eq!(refusal(Program::Api, &others), "accepted");
        // Every known name passes, whichever binary reads it.
        let known: Vec<(&str, &str)> = all().map(|v| (v.name(), "")).collect();
        assert_eq!(refusal(Program::Authz, &known), "accepted");
        assert_eq!(refusal(Program::Api, &known), "accepted");
    }

    #[test]
    fn every_owned_name_is_read_by_its_owner() {
        for var in all() {
            for (prefix, readers) in OWNED_PREFIXES {
                if var.name().starts_with(prefix) {
                    for program in [Program::Authz, Program::Api] {
                        assert!(
                            !readers.include(program) || var.readers().include(program),
                            "{} is under {prefix}, which {} guards, but {} does not read it",
                            var.name(),
                            program.name(),
                            program.name()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("AUTHZ_LISTEN", "AUTHZ_LISTEN"), 0);
        assert_eq!(edit_distance("AUTHZ_LISTN", "AUTHZ_LISTEN"), 1);
        assert_eq!(edit_distance("authz_listen", "AUTHZ_LISTEN"), 0);
        assert_eq!(edit_distance("AUTHZ_LSITEN", "AUTHZ_LISTEN"), 2);
        assert_eq!(edit_distance("", "ABC"), 3);
    }
}
