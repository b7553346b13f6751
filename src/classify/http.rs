//! Plain HTTP: every method is action `http` (the method is in the context),
//! and the resource is `Route::"<path>"`, the path without its query string.

use std::sync::LazyLock;

use cedar_policy::EntityUid;

use crate::classify::{Operation, Protocol};
use crate::request::HttpRequest;
use crate::vocab::{EntityType, builtin_uid};

/// The action name for plain HTTP.
pub const ACTION_HTTP: &str = "http";

/// Maps a request to `Action::"http"` on `Route::"<path>"`.
pub fn classify(req: &HttpRequest) -> Operation {
    classify_as(req, Protocol::Http)
}

/// Plain HTTP on a route of another protocol (a path that protocol does not
/// know, such as file uploads on an OpenAI route): still `Action::"http"`.
pub fn classify_as(req: &HttpRequest, protocol: Protocol) -> Operation {
    // Built once: cloning the uid (a reference count and two inline
    // strings) costs a third of building it, and every plain Check needs it.
    static ACTION: LazyLock<EntityUid> =
        LazyLock::new(|| builtin_uid(EntityType::Action, ACTION_HTTP));
    Operation::new(
        protocol,
        ACTION.clone(),
        builtin_uid(EntityType::Route, &req.path),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_is_path_without_query() {
        let req = HttpRequest {
            method: "GET".into(),
            path: "/v1/models".into(),
            query: "x=1".into(),
            ..Default::default()
        };
        let op = classify(&req);
        assert_eq!(op.resource.to_string(), r#"Route::"/v1/models""#);
        assert_eq!(op.action.to_string(), r#"Action::"http""#);
    }
}
