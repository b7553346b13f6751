//! Every entity type cedar-gate itself names: one enum, one spelling each.

use std::str::FromStr;

use cedar_policy::{EntityId, EntityTypeName, EntityUid};

/// Entity type of mTLS workloads (id: the SPIFFE id).
pub const WORKLOAD: &str = "Workload";
/// Entity type of callers without credentials (one entity, id `anonymous`).
pub const ANONYMOUS: &str = "Anonymous";
/// Entity type of groups (parents of principals).
pub const GROUP: &str = "Group";
/// Entity type of plain HTTP resources (id: the path without query).
pub const ROUTE: &str = "Route";
/// Entity type of actions.
pub const ACTION: &str = "Action";
/// Entity type of models (id: the canonical model id, see `classify::model`).
pub const MODEL: &str = "Model";
/// A lower-case model id without the defaults Ollama fills in for a name it
/// is not given (`registry.ollama.ai/`, `library/`, `:latest`): `llama3`,
/// `llama3:latest`, `library/llama3` and
/// `registry.ollama.ai/library/llama3:latest` are one model to Ollama, and
/// no other server takes them for different models. Used by
/// `classify::model` (every protocol but Bedrock's and Gemini's, whose ids
/// never carry them) and by the policy loader, which refuses a `Model` id
/// that never matches.
pub fn without_ollama_defaults(id: &str) -> &str {
    let short = id.strip_prefix("registry.ollama.ai/").unwrap_or(id);
    let short = match short.strip_prefix("library/") {
        Some(rest) if !rest.contains('/') => rest,
        _ => short,
    };
    let short = short.strip_suffix(":latest").unwrap_or(short);
    if short.is_empty() || short.ends_with('/') {
        id
    } else {
        short
    }
}

/// Entity type of MCP tools (id: `<server>/<tool>`).
pub const TOOL: &str = "Tool";
/// Entity type of MCP servers (id: the route's `server`); the resource of every
/// MCP operation that is not a tool call.
pub const MCP_SERVER: &str = "McpServer";

/// The entity types cedar-gate builds uids of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityType {
    /// [`WORKLOAD`].
    Workload,
    /// [`ANONYMOUS`].
    Anonymous,
    /// [`GROUP`].
    Group,
    /// [`ROUTE`].
    Route,
    /// [`ACTION`].
    Action,
    /// [`MODEL`].
    Model,
    /// [`TOOL`].
    Tool,
    /// [`MCP_SERVER`].
    McpServer,
}

// === impl EntityType ===

impl EntityType {
    /// Every entity type, in declaration order.
    pub const ALL: [EntityType; 8] = [
        EntityType::Workload,
        EntityType::Anonymous,
        EntityType::Group,
        EntityType::Route,
        EntityType::Action,
        EntityType::Model,
        EntityType::Tool,
        EntityType::McpServer,
    ];

    /// The type name as policies spell it.
    pub const fn name(self) -> &'static str {
        match self {
            EntityType::Workload => WORKLOAD,
            EntityType::Anonymous => ANONYMOUS,
            EntityType::Group => GROUP,
            EntityType::Route => ROUTE,
            EntityType::Action => ACTION,
            EntityType::Model => MODEL,
            EntityType::Tool => TOOL,
            EntityType::McpServer => MCP_SERVER,
        }
    }

    /// The uid of the entity of this type with id `id`.
    pub fn uid(self, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.parsed(), EntityId::new(id))
    }

    /// The parsed type name. Parsed once per process: a Cedar name parse runs
    /// the policy grammar, and every Check builds several uids.
    #[allow(clippy::expect_used)]
    fn parsed(self) -> EntityTypeName {
        // INVARIANT: every name is a valid Cedar identifier (checked by the
        // `names_parse` test).
        static PARSED: std::sync::LazyLock<Vec<EntityTypeName>> = std::sync::LazyLock::new(|| {
            EntityType::ALL
                .iter()
                .map(|t| EntityTypeName::from_str(t.name()).expect("entity type names are valid"))
                .collect()
        });
        PARSED[self as usize].clone()
    }
}

/// The uid of a cedar-gate entity: `builtin_uid(EntityType::Route, "/v1")`.
pub fn builtin_uid(ty: EntityType, id: &str) -> EntityUid {
    ty.uid(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        for (i, ty) in EntityType::ALL.into_iter().enumerate() {
            assert_eq!(ty as usize, i);
            assert!(EntityTypeName::from_str(ty.name()).is_ok(), "{ty:?}");
            assert_eq!(builtin_uid(ty, "x").type_name().to_string(), ty.name());
        }
    }
}
