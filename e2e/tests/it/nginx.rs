//! A real nginx on the shipped configs: a prefix directory holding everything it reads and
//! writes, the documented substitutions, a test certificate authority, start and stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use ipm_testkit::{eventually, free_port, loopback};

use crate::support::{DEADLINE, LAYER_IP, nginx_bin, shipped_nginx};

/// The two identity setups, each a shipped file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// `nginx/ipm.conf`: the identity layer in front; authz and ipm-api on loopback TCP.
    IdentityLayer,
    /// `nginx/ipm-basic-auth.conf`: nginx's own Basic authentication; unix sockets.
    BasicAuth,
}

impl Setup {
    pub fn file(self) -> &'static str {
        match self {
            Self::IdentityLayer => "ipm.conf",
            Self::BasicAuth => "ipm-basic-auth.conf",
        }
    }
}

/// Where nginx finds authz and ipm-api.
#[derive(Debug, Clone)]
pub enum Upstreams {
    Tcp { authz: SocketAddr, api: SocketAddr },
    Unix { authz: PathBuf, api: PathBuf },
}

/// The documented substitutions (nginx/README.md, "What to change"), as the tests make them.
/// Each `from` must occur in the shipped file, so an edit there cannot silently leave a
/// production address in a test.
fn substitutions(
    setup: Setup,
    prefix: &Path,
    upstreams: &Upstreams,
    https: u16,
    http: u16,
) -> Vec<(&'static str, String)> {
    let p = |rel: &str| prefix.join(rel).display().to_string();
    let mut subs = vec![
        (
            "listen 443 ssl http2;",
            format!("listen 127.0.0.1:{https} ssl http2;"),
        ),
        ("listen [::]:443 ssl http2;", String::new()),
        ("listen 80;", format!("listen 127.0.0.1:{http};")),
        ("listen [::]:80;", String::new()),
        ("/etc/ssl/certs/ipm.example.com.pem", p("tls/server.pem")),
        ("/etc/ssl/private/ipm.example.com.key", p("tls/server.key")),
    ];
    match (setup, upstreams) {
        (Setup::IdentityLayer, Upstreams::Tcp { authz, api }) => {
            subs.push(("127.0.0.1:8181", authz.to_string()));
            subs.push(("127.0.0.1:8000", api.to_string()));
            subs.push(("10.0.0.5", LAYER_IP.to_string()));
        }
        (Setup::BasicAuth, Upstreams::Unix { authz, api }) => {
            subs.push((
                "unix:/run/ipm/authz.sock",
                format!("unix:{}", authz.display()),
            ));
            subs.push(("unix:/run/ipm/api.sock", format!("unix:{}", api.display())));
        }
        (setup, upstreams) => panic!("{setup:?} ships with other upstreams than {upstreams:?}"),
    }
    subs
}

/// `text` with every `from` replaced; each must occur at least once.
pub fn render(name: &str, text: &str, subs: &[(&str, String)]) -> String {
    let mut text = text.to_string();
    for (from, to) in subs {
        assert!(text.contains(from), "`{from}` is not in nginx/{name}");
        text = text.replace(from, to);
    }
    text
}

/// nginx's prefix directory: the rendered setup, the shipped `ipm/` snippets, the secret,
/// certificates, logs, pid and temporary files.
pub struct Prefix {
    pub dir: PathBuf,
    /// The test authority's certificate, which clients trust.
    pub ca_pem: Vec<u8>,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A certificate authority and a server certificate for 127.0.0.1 and localhost.
fn make_certs(tls: &Path) -> Vec<u8> {
    std::fs::create_dir_all(tls).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(Command::new("openssl")
        .args(["req", "-x509", "-days", "2", "-subj", "/CN=ipm-e2e-ca"])
        .args(ec)
        .arg("-keyout")
        .arg(tls.join("ca.key"))
        .arg("-out")
        .arg(tls.join("ca.pem")));
    run(Command::new("openssl")
        .args(["req", "-subj", "/CN=localhost"])
        .args(ec)
        .arg("-keyout")
        .arg(tls.join("server.key"))
        .arg("-out")
        .arg(tls.join("server.csr")));
    std::fs::write(
        tls.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-set_serial", "1"])
        .arg("-in")
        .arg(tls.join("server.csr"))
        .arg("-CA")
        .arg(tls.join("ca.pem"))
        .arg("-CAkey")
        .arg(tls.join("ca.key"))
        .arg("-extfile")
        .arg(tls.join("server.ext"))
        .arg("-out")
        .arg(tls.join("server.pem")));
    std::fs::read(tls.join("ca.pem")).unwrap()
}

/// Stands in for Debian's `/etc/nginx/nginx.conf`, which includes the setup at the http level.
/// One process (`master_process off`): killed with one signal, no workers left behind, and
/// no switch to another user when the tests run as root.
fn main_config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\n\
         master_process off;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n\
         \x20   access_log {d}/access.log;\n\
         \x20   client_body_temp_path {d}/temp/client_body;\n\
         \x20   proxy_temp_path {d}/temp/proxy;\n\
         \x20   fastcgi_temp_path {d}/temp/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/temp/uwsgi;\n\
         \x20   scgi_temp_path {d}/temp/scgi;\n\
         \x20   types {{ text/html html; application/javascript js; text/css css; }}\n\
         \x20   default_type application/octet-stream;\n\
         \x20   include site.conf;\n\
         }}\n"
    )
}

/// The line `ipm/proxy-secret.conf.example` tells deployers to generate.
pub fn secret_file(secret: &str) -> String {
    format!("map \"\" $ipm_proxy_secret {{ default \"{secret}\"; }}\n")
}

impl Prefix {
    /// Lays out `dir` with nginx sending `secret` to authz and the API.
    pub fn create(dir: PathBuf, secret: &str) -> Self {
        std::fs::create_dir_all(dir.join("ipm")).unwrap();
        std::fs::create_dir_all(dir.join("temp")).unwrap();
        for entry in std::fs::read_dir(shipped_nginx().join("ipm")).unwrap() {
            let entry = entry.unwrap();
            if !entry.file_type().unwrap().is_file() {
                continue;
            }
            std::fs::copy(entry.path(), dir.join("ipm").join(entry.file_name())).unwrap();
        }
        std::fs::write(dir.join("ipm/proxy-secret.conf"), secret_file(secret)).unwrap();
        std::fs::write(dir.join("nginx.conf"), main_config(&dir)).unwrap();
        let ca_pem = make_certs(&dir.join("tls"));
        Self { dir, ca_pem }
    }

    /// Writes `ipm/htpasswd` with `openssl passwd -apr1`, as a deployer without apache2-utils would.
    pub fn write_htpasswd(&self, users: &[(&str, &str)]) {
        let mut file = String::new();
        for (user, password) in users {
            let out = run(Command::new("openssl").args(["passwd", "-apr1", password]));
            let hash = String::from_utf8(out.stdout).unwrap();
            file.push_str(&format!("{user}:{}\n", hash.trim()));
        }
        std::fs::write(self.dir.join("ipm/htpasswd"), file).unwrap();
    }

    /// Renders the setup into `site.conf` for these ports, with `extra` substitutions after
    /// the documented ones.
    pub fn render_site(
        &self,
        setup: Setup,
        upstreams: &Upstreams,
        https: u16,
        http: u16,
        extra: &[(&'static str, String)],
    ) {
        let name = setup.file();
        let text = std::fs::read_to_string(shipped_nginx().join(name)).unwrap();
        let mut subs = substitutions(setup, &self.dir, upstreams, https, http);
        subs.extend(extra.iter().cloned());
        std::fs::write(self.dir.join("site.conf"), render(name, &text, &subs)).unwrap();
    }

    /// `nginx -t` on the prefix as it stands.
    pub fn test_config(&self) -> Output {
        Command::new(nginx_bin())
            .arg("-t")
            .arg("-p")
            .arg(&self.dir)
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .output()
            .expect("NGINX_BIN runs")
    }
}

/// A running nginx. Killed on drop.
pub struct Nginx {
    child: Child,
    pub https: SocketAddr,
    pub http: SocketAddr,
    pub dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// Renders `setup` on free loopback ports and starts nginx; when another process took a
    /// port first, tries again with fresh ones.
    pub async fn start(
        prefix: &Prefix,
        setup: Setup,
        upstreams: &Upstreams,
        extra: &[(&'static str, String)],
    ) -> Self {
        for _ in 0..5 {
            let (https, http) = (free_port(), free_port());
            prefix.render_site(setup, upstreams, https, http, extra);
            let _ = std::fs::remove_file(prefix.dir.join("error.log"));
            let child = Command::new(nginx_bin())
                .arg("-p")
                .arg(&prefix.dir)
                .arg("-e")
                .arg(prefix.dir.join("error.log"))
                .arg("-c")
                .arg(prefix.dir.join("nginx.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("NGINX_BIN starts");
            let mut nginx = Self {
                child,
                https: loopback(https),
                http: loopback(http),
                dir: prefix.dir.clone(),
            };
            match nginx.wait_ready().await {
                Ok(()) => return nginx,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("nginx did not start:\n{log}"),
            }
        }
        panic!("nginx found no free ports in five tries");
    }

    /// Waits until both listeners accept, or returns the error log if nginx exits first.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let (https, http) = (self.https, self.http);
        let child = &mut self.child;
        let mut exited = None;
        let up = eventually(DEADLINE, || {
            exited = child.try_wait().unwrap();
            let gone = exited.is_some();
            async move {
                gone || (tokio::net::TcpStream::connect(https).await.is_ok()
                    && tokio::net::TcpStream::connect(http).await.is_ok())
            }
        })
        .await;
        match (exited, up) {
            (Some(status), _) => Err(format!("{status}\n{}", self.error_log())),
            (None, Some(_)) => Ok(()),
            (None, None) => Err(format!(
                "not listening after {DEADLINE:?}\n{}",
                self.error_log()
            )),
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.https)
    }
}
