//! The access log: one line per request, formatted and written by a thread of its own.
//!
//! A request only moves what its line says into a bounded queue: no formatting, no
//! lock, no write on the request path (through `tracing`'s JSON formatter the line
//! cost more than a third of the gateway's own work per request). The writer wakes
//! at most every [`BATCH_EVERY`], formats what has queued in the configured format
//! (the fields and shape of the gateway's other log lines) and writes it to stderr in
//! one write. A full queue drops the line and counts it
//! (`portvakt_access_log_dropped_total`, and a warning from the writer): a log reader
//! that stalls never stalls the requests. At shutdown the writer writes what is
//! queued before the process ends, within the shutdown timeout (nor does a stalled
//! reader hold the process).

use std::io::Write;
use std::net::IpAddr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use prometheus::IntCounter;

use crate::config::{Config, LogFormat};
use crate::policy::{DecidedBy, NormalisedPath};
use crate::portal::answer::Label;

/// How many lines may wait for the writer. At 20 ms a batch this is room for
/// 800,000 lines a second; beyond it lines are dropped and counted.
pub const QUEUE_LINES: usize = 16_384;

/// How long the writer lets lines gather after the first one of a batch: one wake-up
/// and one write per batch, not per line.
const BATCH_EVERY: Duration = Duration::from_millis(20);

/// The `target` every access line names, as the log filter knows it
/// (`log.level: "portvakt::access=off,info"` turns the access log off).
pub const TARGET: &str = "portvakt::access";

/// What one request's line says, moved out of the request's context as it ends.
/// Names (the app's, the rule's) are looked up by the writer in the configuration
/// the request ran under.
pub struct AccessLine {
    pub at: SystemTime,
    pub config: Option<Arc<Config>>,
    pub app: Option<usize>,
    pub decided_by: Option<DecidedBy>,
    pub host: String,
    pub method: http::Method,
    pub path: Option<NormalisedPath>,
    pub client: Option<IpAddr>,
    pub user: Option<String>,
    pub decision: Label,
    pub status: u16,
    pub latency: Duration,
    pub reference: u64,
    pub error: Option<String>,
}

impl AccessLine {
    fn app(&self) -> Option<&crate::config::App> {
        self.config
            .as_deref()
            .and_then(|c| self.app.and_then(|i| c.apps.get(i)))
    }

    fn app_name(&self) -> &str {
        self.app().map_or("-", |a| a.name.as_str())
    }

    /// The rule that decided, as the configuration writes it.
    fn rule(&self) -> &str {
        match (self.decided_by, self.app()) {
            (Some(DecidedBy::Rule(i) | DecidedBy::IdentityNeeded(i)), Some(app)) => app
                .policy
                .routes
                .rules()
                .get(i)
                .map_or("-", |r| r.origin.as_str()),
            (Some(DecidedBy::AppDefault), _) => "app default",
            (Some(DecidedBy::NoRuleAdmits), _) => "no rule admits",
            _ => "-",
        }
    }

    fn path(&self) -> &str {
        self.path.as_ref().map_or("-", NormalisedPath::forwarded)
    }

    fn latency_ms(&self) -> f64 {
        self.latency.as_secs_f64() * 1000.0
    }

    /// The line as JSON, shaped like the gateway's other JSON log lines (time
    /// first, target last).
    fn write_json(&self, out: &mut Vec<u8>, clock: &mut Clock) {
        // serde_json escapes what clients chose; writing into a Vec cannot fail.
        let text = |out: &mut Vec<u8>, key: &str, value: &str| {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            if is_plain(value) {
                out.push(b'"');
                out.extend_from_slice(value.as_bytes());
                out.push(b'"');
            } else {
                let _ = serde_json::to_writer(&mut *out, value);
            }
        };
        out.extend_from_slice(b"{\"timestamp\":\"");
        clock.write(self.at, out);
        out.extend_from_slice(b"\",\"level\":\"INFO\"");
        text(out, "app", self.app_name());
        text(out, "host", &self.host);
        text(out, "method", self.method.as_str());
        text(out, "path", self.path());
        out.extend_from_slice(b",\"client\":\"");
        write_address(self.client, out);
        out.push(b'"');
        text(out, "user", self.user.as_deref().unwrap_or("-"));
        text(out, "rule", self.rule());
        text(out, "decision", self.decision.as_str());
        out.extend_from_slice(b",\"status\":");
        write_decimal(u64::from(self.status), out);
        out.extend_from_slice(b",\"latency_ms\":");
        let _ = serde_json::to_writer(&mut *out, &self.latency_ms());
        out.extend_from_slice(b",\"reference\":\"");
        write_hex(self.reference, out);
        out.push(b'"');
        if let Some(error) = &self.error {
            text(out, "error", error);
        }
        out.extend_from_slice(b",\"target\":\"");
        out.extend_from_slice(TARGET.as_bytes());
        out.extend_from_slice(b"\"}\n");
    }

    /// The line as text, shaped like the gateway's other plain log lines (every
    /// value a client chose is quoted and escaped: a line is never split in two).
    fn write_plain(&self, out: &mut Vec<u8>, clock: &mut Clock) {
        let field = |out: &mut Vec<u8>, key: &str| {
            out.push(b' ');
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
        };
        clock.write(self.at, out);
        out.extend_from_slice(b"  INFO ");
        out.extend_from_slice(TARGET.as_bytes());
        out.extend_from_slice(b": app=");
        write_quoted(self.app_name(), out);
        field(out, "host");
        write_quoted(&self.host, out);
        field(out, "method");
        // A method is an HTTP token (`http` refuses any other): nothing to escape.
        out.extend_from_slice(self.method.as_str().as_bytes());
        field(out, "path");
        write_quoted(self.path(), out);
        field(out, "client");
        write_address(self.client, out);
        field(out, "user");
        write_quoted(self.user.as_deref().unwrap_or("-"), out);
        field(out, "rule");
        write_quoted(self.rule(), out);
        field(out, "decision");
        write_quoted(self.decision.as_str(), out);
        field(out, "status");
        write_decimal(u64::from(self.status), out);
        field(out, "latency_ms");
        let _ = serde_json::to_writer(&mut *out, &self.latency_ms());
        field(out, "reference");
        write_hex(self.reference, out);
        if let Some(error) = &self.error {
            field(out, "error");
            write_quoted(error, out);
        }
        out.push(b'\n');
    }
}

/// Formats access lines one after another in one format.
pub struct LineWriter {
    format: LogFormat,
    clock: Clock,
}

impl LineWriter {
    pub fn new(format: LogFormat) -> LineWriter {
        LineWriter {
            format,
            clock: Clock::default(),
        }
    }

    /// Appends `line`, with its newline, to `out`.
    pub fn write(&mut self, line: &AccessLine, out: &mut Vec<u8>) {
        // Room for a typical line at once, not growth field by field.
        out.reserve(512);
        match self.format {
            LogFormat::Json => line.write_json(out, &mut self.clock),
            LogFormat::Plain => line.write_plain(out, &mut self.clock),
        }
    }
}

/// Writes RFC 3339 times with microseconds, as the other log lines have them. The
/// date and time of day change once a second, not once a line: made once a second.
#[derive(Default)]
struct Clock {
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS` of that second.
    text: Vec<u8>,
}

impl Clock {
    fn write(&mut self, at: SystemTime, out: &mut Vec<u8>) {
        let since_epoch = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let second = since_epoch.as_secs();
        if self.second != Some(second) {
            let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(second);
            let text = humantime::format_rfc3339_seconds(whole).to_string();
            self.text = text.trim_end_matches('Z').as_bytes().to_vec();
            self.second = Some(second);
        }
        out.extend_from_slice(&self.text);
        out.push(b'.');
        let micros = u64::from(since_epoch.subsec_micros());
        for place in [100_000, 10_000, 1_000, 100, 10, 1] {
            out.push(b'0' + u8::try_from(micros / place % 10).unwrap_or(0));
        }
        out.push(b'Z');
    }
}

fn write_decimal(mut value: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + u8::try_from(value % 10).unwrap_or(0);
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Sixteen lower-case hex digits, as error pages show the reference.
fn write_hex(value: u64, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(HEX[usize::try_from(value >> (shift * 4) & 0xf).unwrap_or(0)]);
    }
}

fn write_address(ip: Option<IpAddr>, out: &mut Vec<u8>) {
    match ip {
        Some(ip) => super::headers::write_address(ip, out),
        None => out.push(b'-'),
    }
}

/// Printable ASCII without quotes or backslashes: the same escaped or not, in JSON
/// and in Rust's `Debug` (nearly every value).
fn is_plain(value: &str) -> bool {
    value.bytes().all(|b| PLAIN[usize::from(b)])
}

/// Which bytes [`is_plain`] lets through, looked up rather than compared: every
/// byte of every value is checked.
const PLAIN: [bool; 256] = {
    let mut plain = [false; 256];
    let mut b = b' ';
    while b <= b'~' {
        plain[b as usize] = b != b'"' && b != b'\\';
        b += 1;
    }
    plain
};

/// A value in double quotes, escaped as Rust's `Debug` escapes it; plain values are
/// copied as they are.
fn write_quoted(value: &str, out: &mut Vec<u8>) {
    if is_plain(value) {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{value:?}");
    }
}

enum Message {
    Line(Box<AccessLine>),
    /// Write what is queued and stop.
    Close,
}

/// The request path's end of the access log.
pub struct AccessLog {
    /// `None` when the log filter turns access lines off.
    queue: Option<SyncSender<Message>>,
    dropped: IntCounter,
}

/// The writer thread; [`AccessLogWriter::finish`] writes what is queued and stops it.
pub struct AccessLogWriter {
    queue: SyncSender<Message>,
    thread: JoinHandle<()>,
}

impl AccessLog {
    /// Starts the writer: lines in `format` to stderr.
    pub fn start(format: LogFormat, dropped: IntCounter) -> std::io::Result<(AccessLog, AccessLogWriter)> {
        Self::start_to(format, dropped, QUEUE_LINES, std::io::stderr)
    }

    /// An access log that writes nothing (the filter turned it off).
    pub fn off(dropped: IntCounter) -> AccessLog {
        AccessLog { queue: None, dropped }
    }

    /// Starts a writer that queues up to `capacity` lines and writes each batch to
    /// what `out` gives.
    pub fn start_to<W: Write>(
        format: LogFormat,
        dropped: IntCounter,
        capacity: usize,
        out: impl Fn() -> W + Send + 'static,
    ) -> std::io::Result<(AccessLog, AccessLogWriter)> {
        let (queue, queued) = sync_channel(capacity);
        let counter = dropped.clone();
        let thread = std::thread::Builder::new()
            .name("access log".to_owned())
            .spawn(move || write_batches(&queued, format, &counter, out))?;
        let log = AccessLog {
            queue: Some(queue.clone()),
            dropped,
        };
        Ok((log, AccessLogWriter { queue, thread }))
    }

    /// Queues a request's line; a full queue drops it and counts it.
    pub fn record(&self, line: AccessLine) {
        let Some(queue) = &self.queue else {
            return;
        };
        match queue.try_send(Message::Line(Box::new(line))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }
}

impl AccessLogWriter {
    /// Writes every line queued so far and stops the writer, waiting at most
    /// `within`: a stderr that takes nothing (its reader stalled) must not keep
    /// the process from stopping; what is still queued then is lost, and said so.
    pub fn finish(self, within: Duration) {
        let deadline = Instant::now() + within;
        let gave_up =
            || eprintln!("access-log lines still queued at shutdown were not written: stderr took nothing");
        let mut close = Message::Close;
        loop {
            match self.queue.try_send(close) {
                Ok(()) => break,
                Err(TrySendError::Full(again)) if Instant::now() < deadline => {
                    close = again;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TrySendError::Full(_)) => return gave_up(),
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        while !self.thread.is_finished() {
            if Instant::now() >= deadline {
                return gave_up();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.thread.join().is_err() {
            eprintln!("the access-log writer stopped with a panic");
        }
    }
}

/// The writer thread: waits for a line, lets others join it for [`BATCH_EVERY`],
/// then formats and writes them all at once. (Never inlined: `bench/profile`
/// counts the writer's work by this name.)
#[inline(never)]
fn write_batches<W: Write>(
    queued: &Receiver<Message>,
    format: LogFormat,
    dropped: &IntCounter,
    out: impl Fn() -> W,
) {
    let mut batch = Vec::with_capacity(64 * 1024);
    let mut lines = LineWriter::new(format);
    let mut dropped_before = 0;
    let mut closing = false;
    while !closing {
        let Ok(first) = queued.recv() else {
            return;
        };
        if !matches!(first, Message::Close) {
            std::thread::sleep(BATCH_EVERY);
        }
        for message in std::iter::once(first).chain(queued.try_iter()) {
            match message {
                Message::Line(line) => lines.write(&line, &mut batch),
                Message::Close => closing = true,
            }
        }
        // stderr gone (a closed pipe): there is nobody to tell.
        let mut out = out();
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        let dropped_now = dropped.get();
        if dropped_now != dropped_before {
            tracing::warn!(
                dropped = dropped_now - dropped_before,
                "access-log lines dropped: the log could not be written as fast as requests came"
            );
            dropped_before = dropped_now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A writer's output, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn line(user: &str, reference: u64) -> AccessLine {
        AccessLine {
            at: SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_662_400_123_456),
            config: None,
            app: None,
            decided_by: Some(DecidedBy::AppDefault),
            host: "wiki.example".to_owned(),
            method: http::Method::GET,
            path: crate::policy::normalise(b"/a%20b").ok(),
            client: Some("192.0.2.7".parse().unwrap()),
            user: Some(user.to_owned()),
            decision: Label::Allow,
            status: 200,
            latency: Duration::from_micros(1_500),
            reference,
            error: None,
        }
    }

    fn counter() -> IntCounter {
        IntCounter::new("dropped", "dropped").unwrap()
    }

    #[test]
    fn json_lines_carry_every_field_and_escape_what_clients_chose() {
        let captured = Captured::default();
        let out = captured.clone();
        let (log, writer) = AccessLog::start_to(LogFormat::Json, counter(), 8, move || out.clone()).unwrap();
        log.record(line("mallory\"}\n{\"user\":\"root", 1));
        writer.finish(Duration::from_secs(5));
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "one request, one line: {text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["timestamp"], "2025-12-02T08:00:00.123456Z");
        assert_eq!(json["level"], "INFO");
        assert_eq!(json["user"], "mallory\"}\n{\"user\":\"root");
        assert_eq!(json["host"], "wiki.example");
        assert_eq!(json["method"], "GET");
        assert_eq!(json["path"], "/a%20b");
        assert_eq!(json["client"], "192.0.2.7");
        assert_eq!(json["rule"], "app default");
        assert_eq!(json["decision"], "allow");
        assert_eq!(json["status"], 200);
        assert_eq!(json["latency_ms"], 1.5);
        assert_eq!(json["reference"], "0000000000000001");
        assert_eq!(json["target"], TARGET);
        assert!(text.starts_with("{\"timestamp\""), "time first: {text}");
        assert!(json.get("error").is_none());
    }

    #[test]
    fn plain_lines_are_one_line_whatever_the_user_name() {
        let captured = Captured::default();
        let out = captured.clone();
        let (log, writer) = AccessLog::start_to(LogFormat::Plain, counter(), 8, move || out.clone()).unwrap();
        let mut failed = line("eve\nFAKE LINE", 2);
        failed.error = Some("upstream refused".to_owned());
        log.record(failed);
        writer.finish(Duration::from_secs(5));
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.starts_with("2025-12-02T08:00:00.123456Z  INFO portvakt::access: app=\"-\""),
            "{text}"
        );
        for field in [
            "user=\"eve\\nFAKE LINE\"",
            "status=200",
            "decision=\"allow\"",
            "reference=0000000000000002",
            "error=\"upstream refused\"",
        ] {
            assert!(text.contains(field), "{field} missing: {text}");
        }
    }

    #[test]
    fn plain_bytes_are_printable_ascii_but_quotes_and_backslashes() {
        for b in 0..=255u8 {
            let expected = (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\';
            assert_eq!(PLAIN[usize::from(b)], expected, "{b:#x}");
        }
    }

    #[test]
    fn numbers_and_times_are_written_in_full() {
        let mut out = Vec::new();
        for value in [0, 7, 10, 65_535, u64::MAX] {
            write_decimal(value, &mut out);
            out.push(b' ');
        }
        write_hex(0xab, &mut out);
        let mut clock = Clock::default();
        for micros in [1_764_662_399_999_999, 1_764_662_400_000_007] {
            out.push(b' ');
            clock.write(SystemTime::UNIX_EPOCH + Duration::from_micros(micros), &mut out);
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0 7 10 65535 18446744073709551615 00000000000000ab \
             2025-12-02T07:59:59.999999Z 2025-12-02T08:00:00.000007Z"
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking_and_finish_writes_the_rest() {
        // No thread reads the queue here, so it fills up exactly at its capacity.
        let (queue, queued) = sync_channel(3);
        let dropped = counter();
        let log = AccessLog {
            queue: Some(queue),
            dropped: dropped.clone(),
        };
        for reference in 0..5 {
            log.record(line("alice", reference));
        }
        assert_eq!(dropped.get(), 2);
        drop(log);
        let captured = Captured::default();
        let out = captured.clone();
        write_batches(&queued, LogFormat::Json, &dropped, move || out.clone());
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let references: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["reference"].to_string())
            .collect();
        assert_eq!(
            references,
            [
                "\"0000000000000000\"",
                "\"0000000000000001\"",
                "\"0000000000000002\""
            ]
        );
    }

    /// A stderr whose reader has stalled: each write waits until the test lets go.
    struct Stalled(Arc<Mutex<std::sync::mpsc::Receiver<()>>>);

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.lock().unwrap().recv();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_stderr_does_not_hold_the_shutdown() {
        let (release, stalled) = std::sync::mpsc::channel::<()>();
        let stalled = Arc::new(Mutex::new(stalled));
        let (log, writer) =
            AccessLog::start_to(LogFormat::Json, counter(), 1, move || Stalled(stalled.clone())).unwrap();
        for reference in 0..4 {
            log.record(line("alice", reference));
            std::thread::sleep(Duration::from_millis(30));
        }
        let asked = Instant::now();
        writer.finish(Duration::from_millis(200));
        assert!(asked.elapsed() < Duration::from_secs(2), "{:?}", asked.elapsed());
        drop(release);
    }

    #[test]
    fn an_access_log_turned_off_writes_and_drops_nothing() {
        let dropped = counter();
        let log = AccessLog::off(dropped.clone());
        log.record(line("alice", 1));
        assert_eq!(dropped.get(), 0);
    }
}
