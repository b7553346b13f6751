//! The admin HTTP port: `/metrics`, `/healthz`, `/readyz`, `/status`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::policy::PolicyStore;

/// Shared state of the admin handlers.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The policy store (readiness and status).
    pub store: Arc<PolicyStore>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Token verification; not ready until every required issuer has keys.
    pub tokens: Option<Arc<crate::identity::token::TokenVerifier>>,
    /// The gRPC health service: `/readyz` is ready only once it says the
    /// Authorization service is SERVING, so the two never disagree.
    pub health: Arc<tonic_health::server::HealthService>,
    /// Provider credentials (`/status`, `/metrics`), when configured.
    pub credentials: Option<Arc<crate::credentials::ProviderCredentials>>,
    /// API keys (`/status`, `/metrics`), when configured.
    pub keys: Option<Arc<crate::identity::keys::ApiKeys>>,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(state)
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    match state.store.current() {
        Some(_) => {}
        None => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "no policy snapshot loaded\n".to_owned(),
            );
        }
    }
    if let Some(waiting) = state.tokens.as_ref().map(|t| t.waiting_for())
        && !waiting.is_empty()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("waiting for keys of issuer(s): {}\n", waiting.join(", ")),
        );
    }
    if !crate::wire::health::is_serving(&state.health).await {
        // Everything is loaded; the task switching gRPC health is about to.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: gRPC health not serving yet\n".to_owned(),
        );
    }
    (StatusCode::OK, "ready\n".to_owned())
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    state.metrics.run_upkeep();
    let mut text = state.metrics.render();
    let snapshot = state.store.current();
    text.push_str(&crate::record::metrics::render_scrape_time(
        snapshot.as_ref().map(|s| &*s.hash),
    ));
    let now = std::time::SystemTime::now();
    if let Some(c) = &state.credentials {
        text.push_str(&c.render_metrics(now));
    }
    if let Some(k) = &state.keys {
        text.push_str(&k.render_metrics(now));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// The snapshot in force and the latest reload attempt, as JSON.
async fn status(State(state): State<AdminState>) -> impl IntoResponse {
    let snapshot = state.store.current().map(|s| {
        serde_json::json!({
            "generation": s.generation,
            "hash": s.hash,
            "policies": s.policy_count(),
            "shadow_policies": s.shadow_count(),
            "volatile_context_reads": s.volatile_reads(),
            "loaded_at": crate::vocab::rfc3339(s.loaded_at),
        })
    });
    let now = std::time::SystemTime::now();
    axum::Json(serde_json::json!({
        "ready": snapshot.is_some(),
        "policy_dir": state.store.dir().display().to_string(),
        "snapshot": snapshot,
        "last_reload": state.store.last_reload(),
        "provider_credentials": state.credentials.as_ref().map(|c| c.status(now)),
        "api_keys": state.keys.as_ref().map(|k| k.status(now)),
    }))
}
