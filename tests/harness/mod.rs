//! Starts the real gateway binary and the example legacy app on free loopback ports,
//! and talks to them over real HTTP.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use portvakt_legacy_app::{parse_account, serve, Quirks};

/// The example legacy app, served from a thread of the test process.
pub struct LegacyApp {
    pub addr: SocketAddr,
}

impl LegacyApp {
    pub fn start(accounts: &[&str]) -> LegacyApp {
        Self::start_with(accounts, Quirks::default())
    }

    /// The app with some of the sign-in habits of real apps.
    pub fn start_with(accounts: &[&str], quirks: Quirks) -> LegacyApp {
        let accounts = accounts
            .iter()
            .map(|a| parse_account(a).expect("account"))
            .collect();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                tx.send(listener.local_addr().expect("addr")).expect("send");
                serve(listener, accounts, quirks).await.expect("serve");
            });
        });
        LegacyApp {
            addr: rx.recv().expect("app address"),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A loopback port on which nothing listens, for as long as the returned socket
/// lives: bound, never listening, so connecting to it is refused at once.
pub fn refusing_port() -> (socket2::Socket, u16) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    let port = socket
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("an IP address")
        .port();
    (socket, port)
}

/// The TCP port process `pid` listens on, once it does (read from `/proc`: its
/// socket inodes against the kernel's table of listening sockets).
pub fn listening_port_of(pid: u32, limit: Duration) -> u16 {
    let deadline = Instant::now() + limit;
    loop {
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                    .filter_map(|link| {
                        let link = link.to_string_lossy().into_owned();
                        Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        for table in ["tcp", "tcp6"] {
            let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // local_address, state 0A (LISTEN), inode
                if fields.get(3) == Some(&"0A")
                    && fields.get(9).is_some_and(|i| inodes.iter().any(|n| n == i))
                {
                    let port = fields[1]
                        .rsplit(':')
                        .next()
                        .and_then(|p| u16::from_str_radix(p, 16).ok());
                    if let Some(port) = port {
                        return port;
                    }
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} did not listen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The outcome of a SIGHUP, as the gateway logged it.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Applied,
    Rejected,
}

/// The `portvakt` binary, running `run -c` on a file in its own temporary folder.
/// Its listeners are configured with port 0; the ports it got are read from its log.
pub struct Gateway {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
    pub metrics_port: u16,
    /// The configuration's body as last written (for a restart on the same ports).
    body: String,
    /// Ports written into the file: 0 (the system chooses) until a restart, which
    /// keeps the ones the browsers of a test already use.
    fixed_ports: bool,
    /// An HTTPS listener beside the plain one, with a certificate for `tls_hosts`.
    pub tls: Option<TlsListener>,
}

pub struct TlsListener {
    pub port: u16,
    /// The self-signed certificate, PEM, for clients to trust.
    pub cert_pem: String,
}

impl Gateway {
    /// Starts the gateway; `body` is the configuration after the listeners and
    /// settings the harness writes itself (usually `apps:` and what goes with it).
    pub fn start(body: &str) -> Gateway {
        Self::start_with(body, &[], &[])
    }

    /// Like `start`, with extra files (such as a users file) beside the configuration.
    pub fn start_with_files(body: &str, files: &[(&str, &str)]) -> Gateway {
        Self::start_with(body, &[], files)
    }

    /// Like `start`, with an HTTPS listener too, whose certificate names `tls_hosts`.
    pub fn start_with_tls(body: &str, tls_hosts: &[&str]) -> Gateway {
        Self::start_with(body, tls_hosts, &[])
    }

    fn start_with(body: &str, tls_hosts: &[&str], files: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("write a file");
        }
        let tls = (!tls_hosts.is_empty()).then(|| {
            let names = tls_hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>();
            let cert = rcgen::generate_simple_self_signed(names).expect("certificate");
            std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).expect("write cert");
            std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).expect("write key");
            TlsListener {
                port: 0,
                cert_pem: cert.cert.pem(),
            }
        });
        let mut gateway = Gateway {
            child: Command::new("true").spawn().expect("placeholder"),
            dir,
            port: 0,
            metrics_port: 0,
            body: String::new(),
            fixed_ports: false,
            tls,
        };
        gateway.write_config(body);
        gateway.spawn();
        gateway
    }

    fn spawn(&mut self) {
        let seen = self.log().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        self.child = Command::new(env!("CARGO_BIN_EXE_portvakt"))
            .args(["run", "-c"])
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start portvakt");
        self.read_ports(seen);
        self.wait_until_ready();
    }

    /// Reads the addresses this run of the gateway logged it listens on.
    fn read_ports(&mut self, seen: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            let this_run = log.get(seen..).unwrap_or_default();
            let port_of = |line: &str| -> Option<u16> {
                let rest = line.split("address=").nth(1)?;
                let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                addr.rsplit(':').next()?.parse().ok()
            };
            let mut ports = (None, None, None);
            for line in this_run.lines() {
                if line.contains("metrics listening") {
                    ports.2 = port_of(line);
                } else if line.contains("listening") && line.contains("scheme=\"https\"") {
                    ports.1 = port_of(line);
                } else if line.contains("listening") {
                    ports.0 = port_of(line);
                }
            }
            if let (Some(http), Some(metrics)) = (ports.0, ports.2) {
                if self.tls.is_none() || ports.1.is_some() {
                    self.port = http;
                    self.metrics_port = metrics;
                    if let (Some(tls), Some(port)) = (self.tls.as_mut(), ports.1) {
                        tls.port = port;
                    }
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("portvakt exited with {status} before it listened:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "portvakt logged no listening address:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the gateway with SIGKILL (a crash: nothing is flushed or closed) and
    /// starts it again on the same configuration and state directory.
    pub fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The same ports again, as a restarted service would have: the browsers of
        // the test know them.
        self.fixed_ports = true;
        let body = self.body.clone();
        self.write_config(&body);
        self.spawn();
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("portvakt.yaml")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("portvakt.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Writes a new configuration file (not yet applied).
    pub fn write_config(&mut self, body: &str) {
        self.body = body.to_owned();
        let port = |port: u16| if self.fixed_ports { port } else { 0 };
        let tls = self.tls.as_ref().map_or(String::new(), |t| {
            format!(
                "  - {{ addr: \"127.0.0.1:{}\", tls: {{ cert: cert.pem, key: key.pem }} }}\n",
                port(t.port)
            )
        });
        let text = format!(
            "listen:\n  - \"127.0.0.1:{}\"\n{tls}state_dir: state\nmetrics:\n  listen: \"127.0.0.1:{}\"\n\
             server:\n  threads: 2\n  grace_period: 1s\n  shutdown_timeout: 1s\n{body}",
            port(self.port),
            port(self.metrics_port)
        );
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// Waits until the listener answers HTTP (any status), or fails with the log.
    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "portvakt exited with {status} before it was ready:\n{}",
                    self.log()
                );
            }
            if let Ok(response) = self
                .try_raw(b"GET /.portvakt/health HTTP/1.1\r\nHost: ready.check\r\nConnection: close\r\n\r\n")
            {
                if response.starts_with("HTTP/1.1") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "portvakt was not ready in time:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGHUP and waits until the gateway logs what it made of it.
    pub fn reload(&self) -> Reload {
        let count = |log: &str| {
            log.matches("configuration reloaded").count() + log.matches("reload rejected").count()
        };
        let before = self.log();
        let (applied_before, seen_before) =
            (before.matches("configuration reloaded").count(), count(&before));
        self.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if count(&log) > seen_before {
                return if log.matches("configuration reloaded").count() > applied_before {
                    Reload::Applied
                } else {
                    Reload::Rejected
                };
            }
            assert!(Instant::now() < deadline, "no reload result logged:\n{log}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to end by itself.
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "portvakt did not exit in {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client that sends `name` (an app host) to this gateway.
    /// Runs a `portvakt` command on this gateway's file (while it runs); its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_portvakt"))
            .args(args)
            .arg("-c")
            .arg(self.config_path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub fn client(&self, hosts: &[&str]) -> reqwest::blocking::Client {
        let mut builder = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10));
        for host in hosts {
            builder = builder.resolve(host, SocketAddr::from(([127, 0, 0, 1], self.port)));
        }
        builder.build().expect("client")
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }

    pub fn metrics(&self) -> String {
        reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .and_then(|r| r.text())
            .expect("metrics")
    }

    /// Sends `request` on a new connection and reads one response: up to its
    /// `Content-Length`, the end of its chunks, or the connection's close.
    fn try_raw(&self, request: &[u8]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        stream.write_all(request)?;
        let mut response = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
            if response_complete(&response) {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&response).into_owned())
    }

    /// Sends bytes exactly as given (for targets no client library would send) and
    /// returns the status and the body; status 0 when no response came (the
    /// connection closed, or nothing arrived within the read timeout).
    pub fn raw(&self, request: &[u8]) -> (u16, String) {
        let response = match self.try_raw(request) {
            Ok(response) => response,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                String::new()
            }
            Err(e) => panic!("raw request: {e}"),
        };
        let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
        (status, body)
    }

    /// A GET of `target` for `host`, sent raw.
    pub fn raw_get(&self, host: &str, target: &[u8]) -> (u16, String) {
        let mut request = b"GET ".to_vec();
        request.extend_from_slice(target);
        request
            .extend_from_slice(format!(" HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes());
        self.raw(&request)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn response_complete(response: &[u8]) -> bool {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let body = &response[end + 4..];
    if let Some(length) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return body.len() >= length;
    }
    if head.contains("transfer-encoding: chunked") {
        return body.ends_with(b"0\r\n\r\n");
    }
    false
}

/// A browser in miniature: keeps cookies, follows no redirects, speaks real HTTP to
/// the gateway under one host name.
pub struct Browser {
    client: reqwest::blocking::Client,
    base: String,
    host: String,
    pub cookies: std::collections::BTreeMap<String, String>,
}

/// One response, read whole.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// Names of the cookies this response sets.
    pub fn set_cookie_names(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split('=').next().map(str::to_owned))
            .collect()
    }

    /// The value of `<input ... name="NAME" value="...">` in the page.
    pub fn input(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        Some(self.body[start..].split('"').next()?.to_owned())
    }

    /// The text of every `<code>` element, in order.
    pub fn codes(&self) -> Vec<String> {
        self.body
            .split("<code")
            .skip(1)
            .filter_map(|part| Some(part.split_once('>')?.1.split("</code>").next()?.to_owned()))
            .collect()
    }
}

impl Browser {
    pub fn new(gateway: &Gateway, host: &str) -> Browser {
        Browser {
            client: gateway.client(&[host]),
            base: gateway.url(host, ""),
            host: host.to_owned(),
            cookies: Default::default(),
        }
    }

    /// Sends the next requests to another gateway of the deployment, with the
    /// same cookies (as a load balancer would).
    pub fn switch_to(&mut self, gateway: &Gateway) {
        self.client = gateway.client(&[&self.host]);
        self.base = gateway.url(&self.host, "");
    }

    pub fn get(&mut self, path: &str) -> Page {
        self.get_with(path, &[])
    }

    /// A GET with extra request headers (`sec-fetch-site`, ...).
    pub fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = self.client.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request)
    }

    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_with(path, form, &[])
    }

    /// A form POST with extra request headers (`origin`, `sec-fetch-site`, ...).
    pub fn post_with(&mut self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.post_body(
            path,
            "application/x-www-form-urlencoded",
            body.into_bytes(),
            headers,
        )
    }

    /// A POST of any body, exactly as given.
    pub fn post_body(
        &mut self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Page {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request)
    }

    /// Another browser tab: the same cookies from now on, kept apart afterwards.
    pub fn fork(&self) -> Browser {
        Browser {
            client: self.client.clone(),
            base: self.base.clone(),
            host: self.host.clone(),
            cookies: self.cookies.clone(),
        }
    }

    fn send(&mut self, request: reqwest::blocking::RequestBuilder) -> Page {
        // What a browser says when the user follows a link or submits a form.
        let request = request
            .header("sec-fetch-mode", "navigate")
            .header("accept", "text/html");
        let cookie_header: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let request = if cookie_header.is_empty() {
            request
        } else {
            request.header("cookie", cookie_header.join("; "))
        };
        let response = request.send().expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for value in headers.get_all("set-cookie") {
            let text = value.to_str().unwrap_or_default();
            let Some((name, rest)) = text.split_once('=') else {
                continue;
            };
            let value = rest.split(';').next().unwrap_or_default();
            if text.to_ascii_lowercase().contains("max-age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status,
            headers,
            body: response.text().unwrap_or_default(),
        }
    }
}

/// A database of its own on the PostgreSQL server `scripts/test` starts (its URL
/// is in `PORTVAKT_TEST_POSTGRES`); a test that needs one fails without it.
pub fn postgres_database() -> String {
    let server = std::env::var("PORTVAKT_TEST_POSTGRES").expect(
        "PORTVAKT_TEST_POSTGRES is not set: run the tests with scripts/test, which starts PostgreSQL",
    );
    let name = format!("portvakt_it_{:016x}", rand::random::<u64>());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
                .await
                .expect("the test server answers");
            let driving = tokio::spawn(connection);
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create a database");
            drop(client);
            let _ = driving.await;
        });
    let mut url = url::Url::parse(&server).expect("a URL");
    url.set_path(&name);
    url.to_string()
}

/// A PostgreSQL server of one test's own (`scripts/test-postgres`), which the
/// test may stop and start again; stopped when dropped.
pub struct PostgresServer {
    dir: tempfile::TempDir,
    pub url: String,
}

impl PostgresServer {
    pub fn start() -> PostgresServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Self::script(&["start", &dir.path().to_string_lossy()]);
        PostgresServer {
            dir,
            url: out.trim().to_owned(),
        }
    }

    /// Stops the server at once (as a crash or a failover would).
    pub fn stop(&self) {
        Self::script(&["stop", &self.dir.path().to_string_lossy()]);
    }

    /// Freezes the server and its connections (SIGSTOP): it neither answers nor
    /// closes, as a hung host or a network that drops packets would.
    pub fn freeze(&self) {
        self.signal_all("-STOP");
    }

    pub fn thaw(&self) {
        self.signal_all("-CONT");
    }

    fn signal_all(&self, signal: &str) {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        let pid = std::fs::read_to_string(pid_file).expect("postmaster.pid");
        let pid = pid
            .lines()
            .next()
            .expect("the postmaster's pid")
            .trim()
            .to_owned();
        let _ = Command::new("pkill").args([signal, "-P", &pid]).status();
        let _ = Command::new("kill").args([signal, &pid]).status();
    }

    /// Starts the stopped server again, on the same port.
    pub fn resume(&self) {
        Self::script(&["resume", &self.dir.path().to_string_lossy()]);
    }

    fn script(args: &[&str]) -> String {
        let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-postgres"))
            .args(args)
            .output()
            .expect("run scripts/test-postgres");
        assert!(
            output.status.success(),
            "scripts/test-postgres {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.thaw();
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-postgres"))
            .args(["stop", &self.dir.path().to_string_lossy()])
            .output();
    }
}

/// Writes a GeoIP country database (MaxMind DB format, IPv4) that places each
/// network of `countries` (`("192.0.2.0/24", "SE")`) in its country: the same
/// format as GeoLite2-Country, small enough to write here (no download in tests).
pub fn write_country_database(path: &Path, countries: &[(&str, &str)]) {
    // The data section: one record per country, `{country: {iso_code: XX}}`.
    fn string(out: &mut Vec<u8>, s: &str) {
        out.push(0x40 | u8::try_from(s.len()).unwrap());
        out.extend_from_slice(s.as_bytes());
    }
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    for (_, code) in countries {
        offsets.push(data.len());
        data.push(0xE1);
        string(&mut data, "country");
        data.push(0xE1);
        string(&mut data, "iso_code");
        string(&mut data, code);
    }
    // The search tree: a binary trie over the address bits, two 24-bit records a node.
    let mut nodes: Vec<[Option<usize>; 2]> = vec![[None, None]];
    let mut leaves: Vec<(usize, usize, usize)> = Vec::new();
    for (i, (network, _)) in countries.iter().enumerate() {
        let (address, prefix) = network.split_once('/').unwrap();
        let address = u32::from(address.parse::<std::net::Ipv4Addr>().unwrap());
        let prefix: u32 = prefix.parse().unwrap();
        let mut node = 0;
        for depth in 0..prefix - 1 {
            let bit = ((address >> (31 - depth)) & 1) as usize;
            node = match nodes[node][bit] {
                Some(next) => next,
                None => {
                    nodes.push([None, None]);
                    let next = nodes.len() - 1;
                    nodes[node][bit] = Some(next);
                    next
                }
            };
        }
        let bit = ((address >> (32 - prefix)) & 1) as usize;
        leaves.push((node, bit, offsets[i]));
    }
    let node_count = nodes.len();
    let mut tree = Vec::new();
    for (n, records) in nodes.iter().enumerate() {
        for (bit, record) in records.iter().enumerate() {
            let value = match (record, leaves.iter().find(|(node, b, _)| *node == n && *b == bit)) {
                (_, Some((_, _, offset))) => node_count + 16 + offset,
                (Some(next), None) => *next,
                (None, None) => node_count,
            };
            tree.extend_from_slice(&u32::try_from(value).unwrap().to_be_bytes()[1..]);
        }
    }
    let mut file = tree;
    file.extend_from_slice(&[0; 16]);
    file.extend_from_slice(&data);
    // The metadata, after its marker.
    file.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let mut meta = vec![0xE0 | 9];
    let uint = |out: &mut Vec<u8>, key: &str, kind: u8, value: u64, width: usize| {
        string(out, key);
        let bytes = value.to_be_bytes();
        if kind <= 7 {
            out.push((kind << 5) | u8::try_from(width).unwrap());
        } else {
            out.push(u8::try_from(width).unwrap());
            out.push(kind - 7);
        }
        out.extend_from_slice(&bytes[8 - width..]);
    };
    uint(&mut meta, "node_count", 6, node_count as u64, 4);
    uint(&mut meta, "record_size", 5, 24, 2);
    uint(&mut meta, "ip_version", 5, 4, 2);
    uint(&mut meta, "binary_format_major_version", 5, 2, 2);
    uint(&mut meta, "binary_format_minor_version", 5, 0, 2);
    uint(&mut meta, "build_epoch", 9, 1_800_000_000, 8);
    string(&mut meta, "database_type");
    string(&mut meta, "Portvakt-Test-Country");
    string(&mut meta, "languages");
    meta.extend_from_slice(&[0x01, 0x04]);
    string(&mut meta, "en");
    string(&mut meta, "description");
    meta.push(0xE1);
    string(&mut meta, "en");
    string(&mut meta, "test countries");
    file.extend_from_slice(&meta);
    std::fs::write(path, file).unwrap();
}
