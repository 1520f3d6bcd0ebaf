//! A real S3-compatible server for the tests: s3s-fs (`S3S_FS_BIN`, which `scripts/test`
//! installs) on a loopback port, storing objects as files under a temporary root.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::net::{free_port, loopback};
use crate::repo::files_under;
use crate::wait::wait_listening;

/// An s3s-fs server with one bucket, killed on drop.
pub struct S3Server {
    child: Option<Child>,
    pub root: tempfile::TempDir,
    pub port: u16,
}

impl S3Server {
    pub const ACCESS_KEY: &str = "ipm-test-access-key";
    pub const SECRET_KEY: &str = "ipm-test-secret-key-0123456789abcdef";
    pub const BUCKET: &str = "ipm-images";
    pub const REGION: &str = "us-east-1";

    /// Starts s3s-fs with an empty bucket and waits until it listens.
    pub async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(Self::BUCKET)).unwrap();
        let mut server = Self {
            child: None,
            root,
            port: free_port(),
        };
        server.spawn().await;
        server
    }

    /// Starts (again, after `kill`) on the same port and root.
    pub async fn spawn(&mut self) {
        let bin = std::env::var("S3S_FS_BIN").unwrap_or_else(|_| {
            panic!("S3S_FS_BIN is not set: run scripts/test, which installs s3s-fs")
        });
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--access-key",
                Self::ACCESS_KEY,
                "--secret-key",
                Self::SECRET_KEY,
            ])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_listening(loopback(port), Duration::from_secs(20))
                .await
                .is_some(),
            "s3s-fs did not listen on {port}"
        );
    }

    /// Stops the server, as an outage would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections are accepted by the kernel and never
    /// answered, as in a brown-out.
    pub fn pause(&self) {
        self.send("-STOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.send("-CONT");
    }

    fn send(&self, sig: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let ok = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {sig} {}", child.id());
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The stored images, as files under the bucket's folder (their thumbnails, `<key>.thumb`,
    /// left out: see `thumbnails`).
    pub fn objects(&self) -> Vec<PathBuf> {
        files_under(&self.root.path().join(Self::BUCKET))
            .into_iter()
            .filter(|f| f.extension().is_none_or(|e| e != "thumb"))
            .collect()
    }

    /// The stored thumbnails.
    pub fn thumbnails(&self) -> Vec<PathBuf> {
        files_under(&self.root.path().join(Self::BUCKET))
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "thumb"))
            .collect()
    }

    /// Parts of multipart uploads in progress.
    pub fn parts(&self) -> Vec<PathBuf> {
        files_under(self.root.path())
            .into_iter()
            .filter(|f| f.to_string_lossy().contains(".upload_id-"))
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}
