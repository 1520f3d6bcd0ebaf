//! The shipped configs as files: every one passes `nginx -t` with the documented substitutions,
//! and the TLS they set up refuses old protocols and redirects plain HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::nginx::{Nginx, Prefix, Setup, Upstreams};
use crate::support::{SECRET, shipped_nginx};

fn tcp() -> Upstreams {
    Upstreams::Tcp {
        authz: "127.0.0.1:18181".parse().unwrap(),
        api: "127.0.0.1:18000".parse().unwrap(),
    }
}

fn upstreams(setup: Setup, prefix: &Prefix) -> Upstreams {
    match setup {
        Setup::IdentityLayer => tcp(),
        Setup::BasicAuth => Upstreams::Unix {
            authz: prefix.dir.join("authz.sock"),
            api: prefix.dir.join("api.sock"),
        },
    }
}

#[test]
#[ignore = "needs nginx: run scripts/test"]
fn every_shipped_nginx_config_passes_nginx_t() {
    // Every nginx config in nginx/ is one of the setups below, so none ships untested.
    let mut shipped: Vec<String> = std::fs::read_dir(shipped_nginx())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".conf") && !n.starts_with("apache-"))
        .collect();
    shipped.sort();
    let setups = [Setup::IdentityLayer, Setup::BasicAuth];
    let mut tested: Vec<String> = setups.iter().map(|s| s.file().to_string()).collect();
    tested.sort();
    assert_eq!(shipped, tested);

    for setup in setups {
        let root = tempfile::tempdir().unwrap();
        let prefix = Prefix::create(root.path().join("nginx"), SECRET);
        prefix.write_htpasswd(&[("alice", "pw")]);
        prefix.render_site(setup, &upstreams(setup, &prefix), 18443, 18080, &[]);
        let out = prefix.test_config();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", setup.file());
        assert!(stderr.contains("test is successful"), "{stderr}");
        assert!(!stderr.contains("[warn]"), "{}: {stderr}", setup.file());
    }
}

#[test]
#[ignore = "needs nginx: run scripts/test"]
fn the_shipped_secret_example_is_valid_nginx() {
    let root = tempfile::tempdir().unwrap();
    let prefix = Prefix::create(root.path().join("nginx"), SECRET);
    std::fs::copy(
        shipped_nginx().join("ipm/proxy-secret.conf.example"),
        prefix.dir.join("ipm/proxy-secret.conf"),
    )
    .unwrap();
    prefix.render_site(Setup::IdentityLayer, &tcp(), 18443, 18080, &[]);
    let out = prefix.test_config();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `curl` on `url` limited to one TLS version; the exit code and the HTTP status.
fn curl_tls(prefix: &Prefix, url: &str, version: &str) -> (Option<i32>, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg("--cacert")
        .arg(prefix.dir.join("tls/ca.pem"))
        .args([&format!("--tlsv{version}"), "--tls-max", version])
        // Lets the client offer old protocols; refusing them is the server's job.
        .args(["--ciphers", "DEFAULT@SECLEVEL=0"])
        .arg(url)
        .output()
        .expect("curl runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn tls_is_1_2_or_newer_and_plain_http_is_redirected() {
    let root = tempfile::tempdir().unwrap();
    let prefix = Prefix::create(root.path().join("nginx"), SECRET);
    let nginx = Nginx::start(&prefix, Setup::IdentityLayer, &tcp(), &[]).await;
    // Nothing listens behind this nginx: `/healthz` is nginx's own 502, over the TLS it set up.
    let url = nginx.url("/healthz");
    assert_eq!(curl_tls(&prefix, &url, "1.3"), (Some(0), "502".into()));
    assert_eq!(curl_tls(&prefix, &url, "1.2"), (Some(0), "502".into()));
    // curl's "SSL connect error": the handshake is refused.
    assert_eq!(curl_tls(&prefix, &url, "1.1").0, Some(35));

    let r = crate::support::http_client()
        .get(format!("http://{}/api/projects?x=1", nginx.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(
        r.headers()["location"],
        "https://127.0.0.1/api/projects?x=1"
    );
    drop(nginx);

    // The same client does get TLS 1.1 from a server that allows it: the refusal above is the
    // shipped configuration's doing, not the client's.
    let lax = Prefix::create(root.path().join("lax"), SECRET);
    std::fs::write(
        lax.dir.join("ipm/tls.conf"),
        "ssl_protocols TLSv1.1 TLSv1.2;\nssl_ciphers DEFAULT@SECLEVEL=0;\n",
    )
    .unwrap();
    let nginx = Nginx::start(&lax, Setup::IdentityLayer, &tcp(), &[]).await;
    assert_eq!(
        curl_tls(&lax, &nginx.url("/healthz"), "1.1"),
        (Some(0), "502".into())
    );
}

/// The modules `nginx/apache-openidc.conf` needs, as Debian's `a2enmod` would load them.
const APACHE_MODULES: &[&str] = &[
    "mpm_event",
    "authz_core",
    "authn_core",
    "alias",
    "dir",
    "mime",
    "headers",
    "socache_shmcb",
    "ssl",
    "proxy",
    "proxy_http",
    "auth_openidc",
];

/// `APACHE_BIN`.
pub fn apache_bin() -> std::ffi::OsString {
    std::env::var_os("APACHE_BIN")
        .expect("APACHE_BIN is not set: run scripts/test, which installs Apache")
}

/// `nginx/apache-openidc.conf` laid out in `dir` with the documented substitutions, its
/// virtual hosts on `http` and `https`, ipm-api at `api`, and a main config that loads the
/// modules as Debian's `a2enmod` would. Returns the main config's path.
pub fn apache_config(dir: &Path, http: u16, https: u16, api: &str) -> PathBuf {
    let modules = std::env::var("APACHE_MODULES_DIR")
        .unwrap_or_else(|_| "/usr/lib/apache2/modules".to_string());
    // Certificates, from an nginx prefix laid out the same way.
    let prefix = Prefix::create(dir.join("nginx"), SECRET);
    std::fs::write(
        dir.join("ipm-secrets.conf"),
        format!(
            "Define IPM_PROXY_SECRET {SECRET}\nDefine IPM_OIDC_CLIENT_SECRET client-secret\nDefine IPM_OIDC_PASSPHRASE {SECRET}\n"
        ),
    )
    .unwrap();
    let name = "apache-openidc.conf";
    let text = std::fs::read_to_string(shipped_nginx().join(name)).unwrap();
    let p = |rel: &str| prefix.dir.join(rel).display().to_string();
    let site = crate::nginx::render(
        name,
        &text,
        &[
            (
                "/etc/apache2/ipm-secrets.conf",
                dir.join("ipm-secrets.conf").display().to_string(),
            ),
            ("/etc/ssl/certs/ipm.example.com.pem", p("tls/server.pem")),
            ("/etc/ssl/private/ipm.example.com.key", p("tls/server.key")),
            ("<VirtualHost *:80>", format!("<VirtualHost *:{http}>")),
            ("<VirtualHost *:443>", format!("<VirtualHost *:{https}>")),
            ("127.0.0.1:8000", api.to_string()),
        ],
    );
    std::fs::write(dir.join("site.conf"), site).unwrap();
    let d = dir.display();
    let mut main = format!(
        "ServerRoot {d}\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\nMutex file:{d} default\n\
         DefaultRuntimeDir {d}\nServerName localhost\nTypesConfig /dev/null\n\
         Listen 127.0.0.1:{http}\nListen 127.0.0.1:{https}\n"
    );
    for m in APACHE_MODULES {
        main.push_str(&format!("LoadModule {m}_module {modules}/mod_{m}.so\n"));
    }
    main.push_str("Include site.conf\n");
    std::fs::write(dir.join("httpd.conf"), main).unwrap();
    dir.join("httpd.conf")
}

#[test]
#[ignore = "needs Apache with mod_auth_openidc: run scripts/test"]
fn the_apache_config_passes_apache2_t() {
    let root = tempfile::tempdir().unwrap();
    let config = apache_config(root.path(), 80, 443, "127.0.0.1:8000");
    let out = Command::new(apache_bin())
        .arg("-t")
        .arg("-f")
        .arg(config)
        .output()
        .expect("APACHE_BIN runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Syntax OK"), "{stderr}");
}
