//! The unit of analysis: a request signature (principal type, action, resource type),
//! optionally narrowed to a concrete principal and resource from the entities. Here are
//! the candidates for each, the symbolic compilation of specialized policy sets, and
//! the re-check of a counterexample with the ordinary authorizer.

use std::collections::BTreeMap;
use std::time::SystemTime;

use cedar_policy::{Entities, EntityTypeName, EntityUid, PolicySet, RequestEnv, Schema};
use cedar_policy_symcc::{CompiledPolicySet, Env};
use serde_json::{Map, Value, json};

use crate::analysis::AnalysisError;
use crate::analysis::fold::{Cell, Residual, Subject, specialize};
use crate::analysis::setdir::PolicyDir;
use crate::decide::request_file::RequestFile;
use crate::identity::spiffe::{SpiffeId, workload_attrs};
use crate::policy::OnPolicyError;
use crate::vocab::{GROUP, WORKLOAD};

/// Trust domain of the made-up workloads that stand for "a member of group G".
pub const SYNTHETIC_TRUST_DOMAIN: &str = "analysis.invalid";

/// A request signature, printable.
pub fn signature(env: &RequestEnv) -> String {
    format!(
        "{} {} {}",
        env.principal(),
        env.action().id().unescaped(),
        env.resource()
    )
}

/// Every request signature of a schema, in a stable order.
pub fn signatures(schema: &Schema) -> Vec<RequestEnv> {
    let mut envs: Vec<RequestEnv> = schema.request_envs().collect();
    envs.sort_by_key(signature);
    envs
}

/// A principal or resource candidate: who it is, and how a request file names it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The entity as the fold sees it.
    pub subject: Subject,
    /// Parents a request must carry (for "a member of group G"), else empty.
    pub parents: Vec<EntityUid>,
    /// How the report names it.
    pub label: String,
}

/// Principals of type `ty` worth asking about: every stored one, a member of each
/// group (the groups a token or entities.json could give), and one with no groups.
pub fn principal_candidates(ty: &EntityTypeName, entities: &Entities) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = stored_of(ty, entities)
        .into_iter()
        .map(|uid| Candidate {
            label: uid.to_string(),
            subject: Subject::stored(&uid, entities),
            parents: Vec::new(),
        })
        .collect();
    let tyname = ty.to_string();
    let groups: Vec<EntityUid> = entities
        .iter()
        .map(|e| e.uid())
        .filter(|u| u.type_name().to_string() == GROUP)
        .collect();
    let can_have_groups = tyname != "Anonymous";
    let mut synth = |slug: &str, group: Option<&EntityUid>| {
        let id = if tyname == WORKLOAD {
            format!("spiffe://{SYNTHETIC_TRUST_DOMAIN}/ns/any/sa/{slug}")
        } else {
            slug.to_owned()
        };
        let Ok(uid) = crate::vocab::uid(&tyname, &id) else {
            return;
        };
        let attrs = synthetic_attrs(&tyname, &id);
        let (subject, parents, label) = match group {
            Some(g) => (
                Subject::member_of(uid, g, entities, attrs),
                vec![g.clone()],
                format!("any {tyname} in {g}"),
            ),
            None => (
                Subject {
                    uid,
                    ancestors: Default::default(),
                    attrs: Some(attrs),
                },
                Vec::new(),
                format!("any {tyname} in no group"),
            ),
        };
        out.push(Candidate {
            subject,
            parents,
            label,
        });
    };
    if can_have_groups {
        for g in &groups {
            synth(&format!("member-of-{}", g.id().unescaped()), Some(g));
        }
    }
    synth("unlisted", None);
    out
}

/// Resources of type `ty`: every stored one, and one that is not listed.
pub fn resource_candidates(ty: &EntityTypeName, entities: &Entities) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = stored_of(ty, entities)
        .into_iter()
        .map(|uid| Candidate {
            label: uid.to_string(),
            subject: Subject::stored(&uid, entities),
            parents: Vec::new(),
        })
        .collect();
    let id = if ty.to_string() == crate::vocab::ROUTE {
        "/unlisted"
    } else {
        "unlisted"
    };
    if let Ok(uid) = crate::vocab::uid(&ty.to_string(), id) {
        out.push(Candidate {
            label: format!("{uid} (not in entities.json)"),
            subject: Subject {
                uid,
                ancestors: Default::default(),
                attrs: Some(Map::new()),
            },
            parents: Vec::new(),
        });
    }
    out
}

fn stored_of(ty: &EntityTypeName, entities: &Entities) -> Vec<EntityUid> {
    let mut v: Vec<EntityUid> = entities
        .iter()
        .map(|e| e.uid())
        .filter(|u| u.type_name() == ty)
        .collect();
    v.sort();
    v
}

fn synthetic_attrs(ty: &str, id: &str) -> Map<String, Value> {
    let mut m = Map::new();
    if ty == WORKLOAD
        && let Ok(spiffe) = SpiffeId::parse(id)
    {
        for (k, v) in workload_attrs(&spiffe) {
            if let crate::vocab::Value::Str(s) = v {
                m.insert(k, Value::String(s));
            }
        }
    }
    m
}

/// The action of a signature as a subject (its action groups are its ancestors).
pub fn action_subject(env: &RequestEnv, entities: &Entities) -> Subject {
    Subject::stored(env.action(), entities)
}

/// The policies of `set` that can apply to requests of `env` (by scope and type).
pub fn relevant(set: &PolicySet, env: &RequestEnv, schema: &Schema) -> PolicySet {
    let mut out = PolicySet::new();
    for p in set.policies() {
        if p.get_valid_request_envs(schema).any(|e| &e == env) {
            // Ids are unique in `set`.
            let _ = out.add(p.clone());
        }
    }
    out
}

/// Comparable form of a policy set's meaning (bodies without ids or annotations).
pub fn meaning(residuals: &[Residual]) -> Vec<String> {
    let mut keys: Vec<String> = residuals.iter().map(|r| r.key.clone()).collect();
    keys.sort();
    keys
}

/// Comparable form of unspecialized policies.
pub fn meaning_of(set: &PolicySet) -> Vec<String> {
    let mut keys: Vec<String> = set
        .policies()
        .filter_map(|p| {
            let mut j = p.to_json().ok()?;
            j.as_object_mut()?.remove("annotations");
            serde_json::to_string(&j).ok()
        })
        .collect();
    keys.sort();
    keys
}

/// Compiles residual policies for symbolic reasoning.
pub fn compile_residuals(
    residuals: &[Residual],
    env: &RequestEnv,
    schema: &Schema,
) -> Result<CompiledPolicySet, AnalysisError> {
    let mut set = PolicySet::new();
    for r in residuals {
        if let Some(p) = r.policy() {
            let _ = set.add(p);
        }
    }
    compile(&set, env, schema)
}

/// Compiles a policy set for one signature.
pub fn compile(
    set: &PolicySet,
    env: &RequestEnv,
    schema: &Schema,
) -> Result<CompiledPolicySet, AnalysisError> {
    CompiledPolicySet::compile(set, env, schema).map_err(|e| AnalysisError::Compile {
        what: signature(env),
        message: e.to_string(),
    })
}

/// Specializes `dir`'s enforced policies to a concrete cell.
pub fn specialize_in(
    dir: &PolicyDir,
    schema: &Schema,
    env: &RequestEnv,
    principal: Option<&Candidate>,
    resource: Option<&Candidate>,
) -> Vec<Residual> {
    let entities = dir.snapshot.entities();
    // The same uid may be stored differently in OLD and NEW: re-read it here.
    let restore = |c: &Candidate| {
        if c.parents.is_empty() && entities.get(&c.subject.uid).is_some() {
            Subject::stored(&c.subject.uid, entities)
        } else if c.parents.is_empty() {
            c.subject.clone()
        } else {
            let mut s = c.subject.clone();
            s.ancestors = c
                .parents
                .iter()
                .flat_map(|g| {
                    std::iter::once(g.clone()).chain(
                        entities
                            .ancestors(g)
                            .map(|a| a.cloned().collect::<Vec<_>>())
                            .unwrap_or_default(),
                    )
                })
                .collect();
            s
        }
    };
    let cell = Cell {
        principal: principal.map(restore),
        action: action_subject(env, entities),
        resource: resource.map(restore),
    };
    specialize(&dir.relevant(env, schema), &cell)
}

/// A decision as a report shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decided {
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// cedar-gate's reason code.
    pub reason: &'static str,
    /// Determining policies with their owners (`id (@owner)`).
    pub policies: Vec<String>,
}

/// A concrete request built from a counterexample: the `check` request file and the
/// decisions OLD and NEW give it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Example {
    /// The request, in `cedar-gate check --request` form.
    pub request: Value,
    /// OLD's decision.
    pub old: Decided,
    /// NEW's decision.
    pub new: Decided,
}

/// Builds the `check` request file for a counterexample, narrowed to the concrete
/// principal and resource when given.
pub fn request_file(
    cex: &Env,
    env: &RequestEnv,
    principal: Option<&Candidate>,
    resource: Option<&Candidate>,
    stored: Option<&Entities>,
) -> Value {
    let uid_json =
        |u: &EntityUid| json!({"type": u.type_name().to_string(), "id": u.id().unescaped()});
    let cex_entity = |u: Option<&EntityUid>| -> (Map<String, Value>, Vec<Value>) {
        let Some(u) = u else {
            return (Map::new(), Vec::new());
        };
        let j = cex
            .entities
            .get(u)
            .and_then(|e| e.to_json_value().ok())
            .unwrap_or(Value::Null);
        (
            j.get("attrs")
                .and_then(|a| a.as_object())
                .cloned()
                .unwrap_or_default(),
            j.get("parents")
                .and_then(|p| p.as_array())
                .cloned()
                .unwrap_or_default(),
        )
    };
    let principal_json = match principal {
        Some(c) => json!({
            "type": c.subject.uid.type_name().to_string(),
            "id": c.subject.uid.id().unescaped(),
            "parents": c.parents.iter().map(uid_json).collect::<Vec<_>>(),
        }),
        None => {
            let p = cex.request.principal();
            let (mut attrs, parents) = cex_entity(p);
            // A workload's attributes come from its id; the id decides them.
            if env.principal().to_string() == WORKLOAD {
                attrs.clear();
            }
            json!({
                "type": env.principal().to_string(),
                "id": p.map(|u| u.id().unescaped().to_owned()).unwrap_or_default(),
                "attrs": attrs,
                "parents": parents,
            })
        }
    };
    let resource_uid = resource
        .map(|c| c.subject.uid.clone())
        .or_else(|| cex.request.resource().cloned());
    let mut context = cex
        .request
        .context()
        .and_then(|c| c.to_json_value().ok())
        .unwrap_or_else(|| json!({}));
    plain_datetimes(&mut context);
    let mut file = json!({
        "principal": principal_json,
        "action": env.action().id().unescaped(),
        "resource": resource_uid.as_ref().map(uid_json).unwrap_or(Value::Null),
        "context": context,
    });
    carrier_workload(cex, stored, &mut file);
    file
}

/// A token principal's workload (`context.auth.workload`) in a counterexample is an
/// entity symcc made up, with groups; a request file can only name a stored workload.
/// Picks the stored workload whose groups include the made-up one's (fewest extra).
fn carrier_workload(cex: &Env, stored: Option<&Entities>, file: &mut Value) {
    let Some(stored) = stored else { return };
    if file.pointer("/principal/type").and_then(|t| t.as_str()) == Some(WORKLOAD) {
        return;
    }
    let Some(made_up) = file
        .pointer("/context/auth/workload/__entity")
        .and_then(|e| crate::vocab::uid_from_json(e).ok())
    else {
        return;
    };
    let wanted: std::collections::HashSet<EntityUid> = cex
        .entities
        .ancestors(&made_up)
        .map(|a| a.cloned().collect())
        .unwrap_or_default();
    let best = stored
        .iter()
        .map(|e| e.uid())
        .filter(|u| u.type_name().to_string() == WORKLOAD)
        .filter_map(|u| {
            let have: std::collections::HashSet<EntityUid> = stored
                .ancestors(&u)
                .map(|a| a.cloned().collect())
                .unwrap_or_default();
            wanted.is_subset(&have).then_some((have.len(), u))
        })
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let Some((_, uid)) = best else { return };
    let id = uid.id().unescaped().to_owned();
    if let Some(auth) = file
        .pointer_mut("/context/auth")
        .and_then(|a| a.as_object_mut())
    {
        auth.insert(
            "workload".into(),
            json!({"__entity": {"type": WORKLOAD, "id": id}}),
        );
        auth.insert("spiffe_id".into(), Value::String(id.clone()));
    }
    if let Some(f) = file.as_object_mut() {
        f.insert("workload".into(), Value::String(id));
    }
}

/// Decides a request file against a policy directory exactly as `check` does.
pub fn decide_file(dir: &PolicyDir, request: &Value) -> Result<Decided, String> {
    let file: RequestFile = serde_json::from_value(request.clone()).map_err(|e| e.to_string())?;
    let authz = file.to_authz(SystemTime::now())?;
    let d = dir.snapshot.decide(&authz, OnPolicyError::Deny);
    Ok(Decided {
        decision: if d.is_allow() { "allow" } else { "deny" },
        reason: d.reason.as_str(),
        policies: d
            .policies
            .iter()
            .map(|p| match p.annotations.get("owner") {
                Some(o) => format!("{} (@{o})", p.id),
                None => p.id.clone(),
            })
            .collect(),
    })
}

/// Decides a symbolic counterexample with plain Cedar over its own entities
/// (cedar-gate's rule on top: any evaluation error denies).
pub fn decide_abstract(set: &PolicySet, dir: &PolicyDir, cex: &Env) -> Decided {
    let response = cedar_policy::Authorizer::new().is_authorized(&cex.request, set, &cex.entities);
    let errors = response.diagnostics().errors().count();
    let mut ids: Vec<String> = response
        .diagnostics()
        .reason()
        .map(|id| {
            let info = dir.policy_info(id);
            match info.owner {
                Some(o) => format!("{} (@{o})", info.id),
                None => info.id,
            }
        })
        .collect();
    ids.sort();
    let allow = response.decision() == cedar_policy::Decision::Allow && errors == 0;
    let reason = match (response.decision(), errors) {
        (_, n) if n > 0 => "policy_error",
        (cedar_policy::Decision::Allow, _) => "policy_permit",
        (cedar_policy::Decision::Deny, _) if ids.is_empty() => "no_permit",
        _ => "policy_forbid",
    };
    Decided {
        decision: if allow { "allow" } else { "deny" },
        reason,
        policies: if errors > 0 { Vec::new() } else { ids },
    }
}

/// The entities of a counterexample, as Cedar JSON (for reports of abstract findings).
pub fn cex_entities(cex: &Env) -> Value {
    cex.entities.to_json_value().unwrap_or(Value::Null)
}

/// Uids whose stored data (attributes or ancestors) differs between two stores.
pub fn changed_entities(old: &Entities, new: &Entities) -> BTreeMap<String, EntityUid> {
    let mut out = BTreeMap::new();
    let mut uids: Vec<EntityUid> = old.iter().chain(new.iter()).map(|e| e.uid()).collect();
    uids.sort();
    uids.dedup();
    for uid in uids {
        if uid.type_name().to_string() == "Action" {
            continue;
        }
        let a = Subject::stored(&uid, old);
        let b = Subject::stored(&uid, new);
        if a != b || old.get(&uid).is_some() != new.get(&uid).is_some() {
            out.insert(uid.to_string(), uid);
        }
    }
    out
}

/// symcc writes a datetime as `offset(datetime("1970-01-01"), duration("Nms"))`;
/// request files (and cedar-gate's context) take one RFC 3339 `datetime`.
fn plain_datetimes(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(text) = map.get("__extn").and_then(offset_to_rfc3339) {
                *v = json!({"__extn": {"fn": "datetime", "arg": text}});
                return;
            }
            map.values_mut().for_each(plain_datetimes);
        }
        Value::Array(items) => items.iter_mut().for_each(plain_datetimes),
        _ => {}
    }
}

fn offset_to_rfc3339(extn: &Value) -> Option<String> {
    if extn.get("fn")?.as_str()? != "offset" {
        return None;
    }
    let args = extn.get("args")?.as_array()?;
    let base = args.first()?.get("__extn")?.get("arg")?.as_str()?;
    let dur = args.get(1)?.get("__extn")?.get("arg")?.as_str()?;
    let base_ms: i128 = if base.len() == 10 {
        let mut parts = base.split('-');
        let year: i32 = parts.next()?.parse().ok()?;
        let month: u8 = parts.next()?.parse().ok()?;
        let day: u8 = parts.next()?.parse().ok()?;
        let date =
            time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
        i128::from(date.midnight().assume_utc().unix_timestamp()) * 1000
    } else {
        let t = time::OffsetDateTime::parse(base, &time::format_description::well_known::Rfc3339)
            .ok()?;
        t.unix_timestamp_nanos() / 1_000_000
    };
    let total = base_ms.checked_add(duration_ms(dur)?)?;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(total.checked_mul(1_000_000)?).ok()?;
    let ms = total.rem_euclid(1000);
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// Cedar duration text (`-1d2h3m4s5ms`) in milliseconds.
fn duration_ms(text: &str) -> Option<i128> {
    let (neg, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: i128 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            let u = match rest.chars().next()? {
                'd' => 86_400_000,
                'h' => 3_600_000,
                'm' => 60_000,
                's' => 1000,
                _ => return None,
            };
            (u, 1)
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = rest.get(len..)?;
    }
    Some(if neg { -total } else { total })
}

/// The same request with another action.
pub fn with_action(
    req: &cedar_policy::Request,
    action: &EntityUid,
) -> Option<cedar_policy::Request> {
    cedar_policy::Request::new(
        req.principal()?.clone(),
        action.clone(),
        req.resource()?.clone(),
        req.context()?.clone(),
        None,
    )
    .ok()
}
