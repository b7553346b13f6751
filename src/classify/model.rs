//! One model, one entity: every spelling a provider accepts for the same
//! model becomes the same `Model::"<id>"`.
//!
//! - Names are checked first: empty, control characters (NUL included), or
//!   leading / trailing whitespace are refused (`name_invalid`); a provider
//!   would trim or reject them, and a policy must not see a different name.
//! - Case: ids are lower-cased (ASCII and Unicode). Providers treat model
//!   ids as case-insensitive or only publish lower-case ids, so `GPT-4o` and
//!   `gpt-4o` are one entity; write `Model` ids in lower case (the loader
//!   refuses others, see `policy::load`).
//! - Bedrock: the foundation-model ARN and the bare model id are one entity;
//!   a cross-region inference profile (`us.`, `eu.`, `apac.`, `global.`, ...,
//!   bare or as an `inference-profile/` ARN) is the model it routes to. ARNs
//!   whose model cannot be read from the id (application inference profiles,
//!   provisioned or custom models) stay whole: map them with `model_aliases`.
//! - Gemini / Vertex: `models/`, `publishers/{p}/models/` and the
//!   OpenAI-compatible `{publisher}/` prefix are dropped.
//! - Other protocols (OpenAI-compatible, Anthropic, and requests on no
//!   route; Ollama serves the first two): Ollama's defaults are dropped
//!   (`:latest`, `library/`, `registry.ollama.ai/`), so `llama3:latest` is
//!   `llama3` ([`crate::vocab::without_ollama_defaults`]).
//! - Then the route's `model_aliases` (Azure deployment names, inference
//!   profile ARNs) map a spelling to its model.

use std::collections::BTreeMap;

use crate::classify::Protocol;

/// Cross-region inference profile prefixes of Bedrock model ids.
const BEDROCK_GEO_PREFIXES: &[&str] = &["us", "us-gov", "eu", "apac", "jp", "au", "ca", "global"];
/// Vertex AI publishers as they prefix model ids on the OpenAI-compatible
/// endpoint (`google/gemini-2.0-flash`).
const VERTEX_PUBLISHERS: &[&str] = &[
    "google",
    "anthropic",
    "meta",
    "mistralai",
    "ai21",
    "cohere",
    "deepseek-ai",
    "qwen",
    "openai",
];

/// Why a model or tool name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty.
    #[error("the {0} name is empty")]
    Empty(&'static str),
    /// A control character, NUL, or an invisible formatting character.
    #[error("the {0} name carries a control or invisible character")]
    Control(&'static str),
    /// Leading or trailing whitespace.
    #[error("the {0} name has leading or trailing whitespace")]
    Whitespace(&'static str),
    /// Not UTF-8 once percent-decoded.
    #[error("the {0} name is not UTF-8")]
    NotUtf8(&'static str),
}

/// Checks a model or tool name (`kind` names which, for the message).
pub fn check_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty(kind));
    }
    if name
        .chars()
        .any(|c| c.is_control() || crate::target::is_invisible(c))
    {
        return Err(NameError::Control(kind));
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(NameError::Whitespace(kind));
    }
    Ok(())
}

/// The entity id of a model as sent on a route of `protocol`.
pub fn canonical(
    protocol: Protocol,
    sent: &str,
    aliases: &BTreeMap<String, String>,
) -> Result<String, NameError> {
    check_name("model", sent)?;
    let lower = sent.to_lowercase();
    let id = match protocol {
        Protocol::Bedrock => bedrock(&lower),
        Protocol::Gemini => gemini(&lower),
        _ => crate::vocab::without_ollama_defaults(&lower),
    };
    Ok(aliases.get(id).map_or_else(|| id.to_owned(), Clone::clone))
}

fn bedrock(id: &str) -> &str {
    // arn:<partition>:bedrock:<region>:<account>:<type>/<id>
    let id = match id.splitn(6, ':').collect::<Vec<_>>()[..] {
        ["arn", _, "bedrock", _, _, resource] => match resource.split_once('/') {
            Some(("foundation-model", model)) => model,
            Some(("inference-profile", profile)) => profile,
            _ => return id,
        },
        _ => id,
    };
    match id.split_once('.') {
        Some((geo, model)) if BEDROCK_GEO_PREFIXES.contains(&geo) && model.contains('.') => model,
        _ => id,
    }
}

fn gemini(id: &str) -> &str {
    let id = id.rsplit_once("/models/").map_or(id, |(_, m)| m);
    let id = id.strip_prefix("models/").unwrap_or(id);
    match id.split_once('/') {
        Some((publisher, model)) if VERTEX_PUBLISHERS.contains(&publisher) => model,
        _ => id,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(protocol: Protocol, sent: &str) -> Result<String, NameError> {
        let aliases = BTreeMap::from([("gpt4-prod".to_owned(), "gpt-4o".to_owned())]);
        canonical(protocol, sent, &aliases)
    }

    #[test]
    fn one_model_one_entity() {
        let haiku = "anthropic.claude-3-haiku-20240307-v1:0";
        for sent in [
            "anthropic.claude-3-haiku-20240307-v1:0",
            "Anthropic.Claude-3-Haiku-20240307-V1:0",
            "us.anthropic.claude-3-haiku-20240307-v1:0",
            "global.anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
        ] {
            assert_eq!(id(Protocol::Bedrock, sent).unwrap(), haiku, "{sent}");
        }
        let app = "arn:aws:bedrock:us-east-1:1:application-inference-profile/abc";
        assert_eq!(id(Protocol::Bedrock, app).unwrap(), app);
        assert_eq!(id(Protocol::Bedrock, "us.nova").unwrap(), "us.nova");
        for sent in [
            "gemini-2.0-flash",
            "models/gemini-2.0-flash",
            "Gemini-2.0-Flash",
            "google/gemini-2.0-flash",
            "publishers/google/models/gemini-2.0-flash",
            "projects/p/locations/l/publishers/google/models/gemini-2.0-flash",
        ] {
            assert_eq!(
                id(Protocol::Gemini, sent).unwrap(),
                "gemini-2.0-flash",
                "{sent}"
            );
        }
        assert_eq!(
            id(Protocol::Gemini, "tunedModels/x").unwrap(),
            "tunedmodels/x"
        );
        for sent in [
            "llama3",
            "llama3:latest",
            "Llama3:Latest",
            "library/llama3",
            "library/llama3:latest",
            "registry.ollama.ai/library/llama3:latest",
            "registry.ollama.ai/library/llama3",
        ] {
            for protocol in [Protocol::Openai, Protocol::Anthropic, Protocol::Http] {
                assert_eq!(id(protocol, sent).unwrap(), "llama3", "{sent}");
            }
        }
        assert_eq!(id(Protocol::Openai, "llama3:8b").unwrap(), "llama3:8b");
        assert_eq!(
            id(Protocol::Openai, "registry.ollama.ai/user/m:latest").unwrap(),
            "user/m"
        );
        assert_eq!(id(Protocol::Openai, "library/a/b").unwrap(), "library/a/b");
        assert_eq!(id(Protocol::Openai, ":latest").unwrap(), ":latest");
        assert_eq!(id(Protocol::Openai, "library/").unwrap(), "library/");
        assert_eq!(id(Protocol::Openai, "GPT4-Prod:latest").unwrap(), "gpt-4o");
        assert_eq!(id(Protocol::Openai, "GPT4-Prod").unwrap(), "gpt-4o");
        assert_eq!(
            id(Protocol::Openai, "meta-llama/Llama-3").unwrap(),
            "meta-llama/llama-3"
        );
    }

    #[test]
    fn bad_names_are_refused() {
        for (sent, want) in [
            ("", NameError::Empty("model")),
            ("o1\0", NameError::Control("model")),
            ("o1\n", NameError::Control("model")),
            (" o1", NameError::Whitespace("model")),
            ("o1\u{a0}", NameError::Whitespace("model")),
        ] {
            assert_eq!(id(Protocol::Openai, sent), Err(want), "{sent:?}");
        }
    }
}
