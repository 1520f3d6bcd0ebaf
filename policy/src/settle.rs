//! Reading files that someone may be writing: read, pause, read again, and accept only two
//! identical reads, so a half-written file or a half-done deploy is never loaded.

use std::time::Duration;

/// The pause between two reads: longer than an editor's or `cp`'s write, short for a reload.
pub const PAUSE: Duration = Duration::from_millis(40);
/// Reads after the first before giving up: the bound on a reload's wait is `RETRIES * PAUSE`.
pub const RETRIES: usize = 5;

/// Why no two successive reads agreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsettled<T, E> {
    /// The last read failed.
    Failed(E),
    /// The content was still changing at the last read: the last two reads (the one before
    /// may have failed).
    Changing { before: Option<T>, after: T },
}

/// Reads with `read` until two successive reads, `pause` apart, are both good and identical,
/// at most `retries` times after the first. Never returns content seen only once.
pub fn read_settled<T: PartialEq, E>(
    mut read: impl FnMut() -> Result<T, E>,
    mut pause: impl FnMut(),
    retries: usize,
) -> Result<T, Unsettled<T, E>> {
    let mut before = read();
    let mut attempt = 0;
    loop {
        attempt += 1;
        pause();
        let after = read();
        let last = attempt >= retries;
        before = match (before, after) {
            (Ok(a), Ok(b)) if a == b => return Ok(b),
            (_, Err(e)) if last => return Err(Unsettled::Failed(e)),
            (a, Ok(b)) if last => {
                return Err(Unsettled::Changing {
                    before: a.ok(),
                    after: b,
                });
            }
            (_, after) => after,
        };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// A reader that returns `script` one entry per call, then repeats the last.
    fn scripted(
        script: &[Result<&'static str, &'static str>],
    ) -> impl FnMut() -> Result<String, String> {
        let script: Vec<_> = script.to_vec();
        let mut n = 0;
        move || {
            let r = script[n.min(script.len() - 1)];
            n += 1;
            r.map(str::to_string).map_err(str::to_string)
        }
    }

    #[test]
    fn accepts_only_two_identical_reads_in_a_row() {
        let mut pauses = 0;
        let got = read_settled(
            scripted(&[Ok("half"), Ok("full"), Ok("full")]),
            || pauses += 1,
            RETRIES,
        );
        assert_eq!(got, Ok("full".to_string()));
        assert_eq!(pauses, 2);

        let got = read_settled(scripted(&[Ok("same")]), || {}, RETRIES);
        assert_eq!(got, Ok("same".to_string()));
    }

    #[test]
    fn a_read_error_in_between_is_retried() {
        let got = read_settled(
            scripted(&[Ok("old"), Err("gone"), Ok("new"), Ok("new")]),
            || {},
            RETRIES,
        );
        assert_eq!(got, Ok("new".to_string()));
    }

    #[test]
    fn content_that_keeps_changing_is_refused_after_the_bound() {
        let mut n = 0;
        let mut pauses = 0;
        let got: Result<String, Unsettled<String, String>> = read_settled(
            || {
                n += 1;
                Ok(format!("version {n}"))
            },
            || pauses += 1,
            3,
        );
        assert_eq!(
            got,
            Err(Unsettled::Changing {
                before: Some("version 3".into()),
                after: "version 4".into()
            })
        );
        assert_eq!(pauses, 3);
    }

    #[test]
    fn a_lasting_error_is_reported() {
        let got = read_settled(scripted(&[Err("dangling")]), || {}, 2);
        assert_eq!(got, Err(Unsettled::Failed("dangling".to_string())));
    }
}
