//! The metrics listener: `/metrics` in Prometheus text format, nothing else.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::{Encoder, TextEncoder};

use crate::auth::sessions::RevocationChannel;
use crate::proxy::metrics::Metrics;

/// The HTTP app of the metrics listener: `/metrics`, nothing else.
pub struct MetricsApp {
    pub metrics: Arc<Metrics>,
    pub revocations: Arc<RevocationChannel>,
}

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let (status, content_type, body) = if session.req_header().uri.path() == "/metrics" {
            (StatusCode::OK, TextEncoder::new().format_type().to_owned(), {
                self.metrics.revocation_channel(self.revocations.is_up());
                self.metrics.render()
            })
        } else {
            (
                StatusCode::NOT_FOUND,
                "text/plain".to_owned(),
                b"not found; metrics are at /metrics\n".to_vec(),
            )
        };
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}
