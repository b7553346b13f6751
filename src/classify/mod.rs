//! What is being asked for: a request becomes an [`Operation`] (Cedar action,
//! resource and protocol context).

pub mod http;

use cedar_policy::EntityUid;

use crate::request::HttpRequest;

/// The protocol a request was understood as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Plain HTTP: action `http`, resource `Route::"<path>"`.
    Http,
}

// === impl Protocol ===

impl Protocol {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
        }
    }
}

/// A request in Cedar's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// How the request was understood.
    pub protocol: Protocol,
    /// `Action::"<name>"`.
    pub action: EntityUid,
    /// The resource.
    pub resource: EntityUid,
}

/// Classifies a request.
pub fn classify(req: &HttpRequest) -> Operation {
    http::classify(req)
}
