//! The composition root (`portvakt run`): opens the services, builds the Pingora
//! server with the gateway, the metrics listener and the reload service, and runs it.

mod logging;
mod ports;
pub mod reload;
mod telemetry;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use arc_swap::ArcSwap;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::auth::mfa_changes::date_mfa_defaults;
use crate::auth::Services;
use crate::config::Config;
use crate::proxy::access_log::{self, AccessLog};
use crate::proxy::metrics::Metrics;
use crate::proxy::Gateway;
use reload::Reloader;
use telemetry::MetricsApp;

/// Runs the gateway on a loaded configuration until it is told to stop.
pub fn run(mut config: Config) -> anyhow::Result<ExitCode> {
    logging::init(&config.log)?;
    prepare_state_dir(&config.state_dir)?;
    let auth = Arc::new(Services::open(&config)?);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")?
        .block_on(date_mfa_defaults(
            &mut config,
            auth.store.as_ref(),
            SystemTime::now(),
        ));
    let auth_store = auth.store.clone();
    let revocations = auth.sessions.revocation_channel();

    let mut server = Server::new_with_opt_and_conf(None, server_conf(&config));
    server.bootstrap();
    let metrics = Arc::new(Metrics::new().context("creating the metrics registry")?);
    // Asked once: the log level changes only with a restart.
    let (access_log, access_writer) = if tracing::enabled!(target: access_log::TARGET, tracing::Level::INFO) {
        let (log, writer) = AccessLog::start(config.log.format, metrics.access_log_dropped())
            .context("starting the access-log writer")?;
        (log, Some(writer))
    } else {
        (AccessLog::off(metrics.access_log_dropped()), None)
    };
    let shared = Arc::new(ArcSwap::from_pointee(config));
    let config = shared.load_full();

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(shared.clone(), metrics.clone(), auth, access_log),
        "portvakt",
    );
    if let Some(app) = proxy.app_logic_mut() {
        let mut options = HttpServerOptions::default();
        // Plain-text listeners speak HTTP/1.1 and, with prior knowledge, HTTP/2.
        options.h2c = true;
        app.server_options = Some(options);
    }
    // Held until the process ends (see `ports`).
    let mut reserved = ports::Reservations::default();
    let mut bound = Vec::with_capacity(config.listeners.len());
    for listener in &config.listeners {
        let (addr, options) = reserved.resolve(listener.addr)?;
        match &listener.tls {
            None => proxy.add_tcp_with_settings(&addr.to_string(), options),
            Some(tls) => {
                let cert = tls.cert.to_string_lossy();
                let key = tls.key.to_string_lossy();
                let mut settings = TlsSettings::intermediate(&cert, &key)
                    .with_context(|| format!("loading the TLS certificate for {addr}"))?;
                settings.enable_h2();
                proxy.add_tls_with_settings(&addr.to_string(), Some(options), settings);
            }
        }
        bound.push((addr, if listener.tls.is_some() { "https" } else { "http" }));
    }
    server.add_service(proxy);
    if let Some(addr) = config.metrics_listen {
        let (addr, options) = reserved.resolve(addr)?;
        let mut service = Service::new(
            "metrics".to_owned(),
            MetricsApp {
                metrics: metrics.clone(),
                revocations,
            },
        );
        service.add_tcp_with_settings(&addr.to_string(), options);
        server.add_service(service);
        tracing::info!(address = %addr, "metrics listening");
    }
    server.add_service(background_service(
        "config reload",
        Reloader {
            config: shared.clone(),
            metrics,
            store: auth_store,
        },
    ));

    for (address, scheme) in &bound {
        tracing::info!(%address, scheme, "listening");
    }
    for app in &config.apps {
        tracing::info!(app = %app.name, upstream = %app.upstream.url, rules = app.policy.routes.rules().len(), "serving app");
    }
    tracing::info!(config = %config.source.display(), "portvakt ready");
    let shutdown_timeout = config.server.shutdown_timeout;
    server.run(RunArgs::default());
    // Requests have ended: their lines still queued are written before the exit
    // (within the shutdown timeout: a stalled stderr does not hold the process).
    if let Some(writer) = access_writer {
        writer.finish(shutdown_timeout);
    }
    Ok(ExitCode::SUCCESS)
}

fn server_conf(config: &Config) -> ServerConf {
    let mut conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.server.shutdown_timeout.as_secs().max(1)),
        ..ServerConf::default()
    };
    conf.pid_file = config
        .state_dir
        .join("portvakt.pid")
        .to_string_lossy()
        .into_owned();
    conf.upgrade_sock = config
        .state_dir
        .join("upgrade.sock")
        .to_string_lossy()
        .into_owned();
    conf
}

/// Creates the state directory, readable by the gateway's user only.
fn prepare_state_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating the state directory {}", dir.display()))?;
    }
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("reading the state directory {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "the state directory is readable by others; chmod 700 it");
    }
    Ok(())
}
