//! `authz test --watch`: run the policy tests, then again after every save, until interrupted.

use std::path::Path;
use std::time::Duration;

/// The exit code when the files cannot be watched.
const EXIT_ERROR: i32 = 2;

/// Events that mean a file changed; reading the files ourselves must not count.
fn is_change(event: &notify::Event) -> bool {
    use notify::EventKind;
    use notify::event::ModifyKind;
    let kind = matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any
    ) || matches!(event.kind, EventKind::Modify(m) if !matches!(m, ModifyKind::Metadata(_)));
    let visible = event.paths.iter().any(|p| {
        p.file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
    });
    kind && visible
}

/// Calls `run` and prints its report, then again after each save under `dir` or `tests`,
/// until interrupted.
pub fn watch(dir: &Path, tests: &Path, run: impl Fn() -> String) -> i32 {
    use notify::{RecursiveMode, Watcher};
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok_and(|e| is_change(&e)) {
            let _ = tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: cannot watch files: {e}");
            return EXIT_ERROR;
        }
    };
    for path in [dir, tests] {
        if let Err(e) = watcher.watch(path, RecursiveMode::Recursive) {
            eprintln!("error: cannot watch `{}`: {e}", path.display());
            return EXIT_ERROR;
        }
    }
    loop {
        let out = run();
        println!("{out}");
        println!(
            "watching `{}` and `{}`; Ctrl-C stops",
            dir.display(),
            tests.display()
        );
        if rx.recv().is_err() {
            return EXIT_ERROR;
        }
        // An editor's save is several events; run once it settles.
        while rx.recv_timeout(Duration::from_millis(100)).is_ok() {}
        println!("\n--- files changed: running again ---\n");
    }
}
