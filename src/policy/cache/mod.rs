//! The decision cache: repeated identical questions skip Cedar.
//!
//! Hard rule: a hit never returns a decision that evaluation would not return
//! now. How that holds:
//! - The key is the whole [`AuthzRequest`] (principal with its request-time
//!   attributes and parents, other request entities, action, resource, context)
//!   plus the snapshot generation, compared by equality (`Eq`), not by a hash.
//!   The snapshot generation covers everything else evaluation reads (policies,
//!   `entities.json`, schema); the on-error mode is fixed for the process.
//! - When no policy that can apply to the principal reads volatile context, the key
//!   is the request's own inputs instead (a [`RawKey`], made by the decision
//!   core: method, host, path, scheme, source IP, workload, verified token,
//!   operation), taken before any Cedar request is built; that request is
//!   built on a miss only.
//! - Context that changes on every request ([`VOLATILE_CONTEXT`]): when no
//!   policy of the snapshot reads it, it is blanked out of the key (evaluation
//!   on a miss still gets the real values); when some policy that can apply
//!   to the request's principal type reads it, every such request that
//!   carries it bypasses the cache (`principal is Agent` reads a token's age:
//!   `Agent` token callers bypass; users' tokens and workloads still hit).
//! - Entries die with a reload (generation in the key, and the whole cache is
//!   invalidated when a newer generation is first seen), never outlive the
//!   credential that earned them (`valid_until`, checked on every hit against
//!   the caller's clock, and moka's per-entry expiry) nor the configured TTL.
//! - Errors and fail-closed outcomes (`policy_error`, `invalid_request`, any
//!   decision carrying evaluation errors) are never cached.
//! - Capacity is bounded (`max_entries`, moka's TinyLFU admission/eviction).
//!
//! [`VOLATILE_CONTEXT`]: crate::policy::reads::VOLATILE_CONTEXT

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::notification::RemovalCause;

use crate::policy::snapshot::Snapshot;
use crate::policy::{CacheConfig, OnPolicyError};
use crate::record::metrics;
use crate::vocab::Value;
use crate::vocab::{AuthzRequest, Decision, Reason};

/// A decision and, when the snapshot has `@shadow` policies, the shadow set's.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The enforced decision.
    pub decision: Decision,
    /// What enforced ∪ shadow would have decided.
    pub shadow: Option<Decision>,
    /// Whether this came from the cache.
    pub cache_hit: bool,
    /// The entry's [`Memo`], on a hit.
    pub memo: Option<Memo>,
}

/// What an upper layer derives from a cached decision and keeps with it for
/// the decision's later hits: the wire layer's encoded answer (issue 17: an
/// answer written once per cached decision, each hit writing only its own
/// decision id). Set at most once, and gone with the entry, so it never
/// outlives the decision (reload, credential expiry, TTL, eviction). What it
/// holds is the upper layer's to check against each hit before use.
#[derive(Clone, Default)]
pub struct Memo(Arc<OnceLock<Box<dyn Any + Send + Sync>>>);

// === impl Memo ===

impl Memo {
    /// What was kept, or `init`'s value kept now; `None` when a value of
    /// another type was kept first.
    pub fn get_or_init<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Box::new(init())).downcast_ref()
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("set", &self.0.get().is_some())
            .finish()
    }
}

/// Decides without any cache.
pub fn evaluate(snapshot: &Snapshot, req: &AuthzRequest, on_error: OnPolicyError) -> Decided {
    let (decision, shadow) = snapshot.decide_with_shadow(req, on_error);
    Decided {
        decision,
        shadow,
        cache_hit: false,
        memo: None,
    }
}

/// A question in the request's own terms, which must determine the Cedar
/// request built from it up to the volatile context (the decision core's
/// `decide::raw::RawQuestion` is the one in use; see
/// [`DecisionCache::decide_raw`]). Held in the cache; a hit is looked up with
/// a [`RawProbe`] borrowed from the request instead, so the key is compared
/// and hashed through its [`RawKey::View`] only: a probe finds exactly the
/// entries whose view equals its own.
pub trait RawKey: std::fmt::Debug + Send + Sync + 'static {
    /// The question as borrowed fields: what equality and the hash are of.
    type View<'a>: std::fmt::Debug + Eq + std::hash::Hash
    where
        Self: 'a;

    /// This question's view.
    fn view(&self) -> Self::View<'_>;
}

/// A raw question borrowed from the request: a hit needs nothing owned, and
/// the owned [`RawKey`] is built on a miss only (to be inserted).
pub trait RawProbe {
    /// The owned question.
    type Key: RawKey;

    /// This question's view; must equal the view of [`RawProbe::to_key`].
    fn view(&self) -> <Self::Key as RawKey>::View<'_>;

    /// The owned question, for a miss.
    fn to_key(&self) -> Self::Key;
}

/// The raw key of a cache that is only asked Cedar requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoRaw {}

impl RawKey for NoRaw {
    type View<'a> = NoRaw;

    fn view(&self) -> NoRaw {
        *self
    }
}

#[derive(Debug)]
struct Key<R> {
    generation: u64,
    on_error: OnPolicyError,
    question: Question<R>,
}

/// What a decision is cached under. Not boxed: the raw key in use is about
/// as large, and a box would cost an allocation per lookup.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Question<R> {
    /// The whole Cedar request, volatile context blanked.
    Cedar(AuthzRequest),
    /// The request's inputs (only when no policy that can apply to the
    /// principal reads volatile context).
    Raw(R),
}

/// What a key is compared and hashed by, owned ([`Key`]) or borrowed
/// ([`Probe`]) alike: one definition keeps the two forms in step, so a
/// probe's hash and equality are exactly its owned key's.
type Parts<'a, R> = (u64, OnPolicyError, QuestionRef<'a, R>);

/// A [`Question`] borrowed, the raw one as its view.
enum QuestionRef<'a, R: RawKey + 'a> {
    Cedar(&'a AuthzRequest),
    Raw(R::View<'a>),
}

impl<R: RawKey> PartialEq for QuestionRef<'_, R> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Cedar(a), Self::Cedar(b)) => a == b,
            (Self::Raw(a), Self::Raw(b)) => a == b,
            _ => false,
        }
    }
}

impl<R: RawKey> std::hash::Hash for QuestionRef<'_, R> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Self::Cedar(req) => {
                state.write_u8(0);
                req.hash(state);
            }
            Self::Raw(view) => {
                state.write_u8(1);
                view.hash(state);
            }
        }
    }
}

impl<R: RawKey> Key<R> {
    fn parts(&self) -> Parts<'_, R> {
        let question = match &self.question {
            Question::Cedar(req) => QuestionRef::Cedar(req),
            Question::Raw(raw) => QuestionRef::Raw(raw.view()),
        };
        (self.generation, self.on_error, question)
    }
}

impl<R: RawKey> PartialEq for Key<R> {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl<R: RawKey> Eq for Key<R> {}

impl<R: RawKey> std::hash::Hash for Key<R> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

/// A raw key as a hit is looked up with: the question borrowed, nothing
/// cloned (see [`Parts`]).
struct Probe<'p, P> {
    generation: u64,
    on_error: OnPolicyError,
    raw: &'p P,
}

impl<P: RawProbe> Probe<'_, P> {
    fn parts(&self) -> Parts<'_, P::Key> {
        let question = QuestionRef::Raw(self.raw.view());
        (self.generation, self.on_error, question)
    }
}

impl<P: RawProbe> std::hash::Hash for Probe<'_, P> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl<P: RawProbe> moka::Equivalent<Key<P::Key>> for Probe<'_, P> {
    fn equivalent(&self, key: &Key<P::Key>) -> bool {
        self.parts() == key.parts()
    }
}

/// For the tests of a [`RawKey`] (the decision core's): `probe` looked up
/// against `key` stored, as the cache does it: the probe's hash, the stored
/// key's hash, and whether the probe finds the key.
#[cfg(test)]
pub(crate) fn probe_against<P: RawProbe>(probe: &P, key: P::Key) -> (u64, u64, bool) {
    use std::hash::BuildHasher;
    let state = foldhash::quality::FixedState::with_seed(17);
    let (generation, on_error) = (1, OnPolicyError::Deny);
    let probe = Probe {
        generation,
        on_error,
        raw: probe,
    };
    let key = Key {
        generation,
        on_error,
        question: Question::Raw(key),
    };
    let finds = moka::Equivalent::equivalent(&probe, &key);
    (state.hash_one(&probe), state.hash_one(&key), finds)
}

#[derive(Debug)]
struct Entry {
    decision: Decision,
    shadow: Option<Decision>,
    /// The credential's end of validity, if it has one.
    valid_until: Option<SystemTime>,
    /// How long moka keeps the entry.
    ttl: Duration,
    /// Kept by an upper layer on the first hit (see [`Memo`]).
    memo: Memo,
}

struct PerEntryTtl;

impl<R> Expiry<Key<R>, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(&self, _: &Key<R>, value: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _: &Key<R>,
        value: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The bounded decision cache (see the module docs for its rules).
pub struct DecisionCache<R = NoRaw> {
    /// foldhash rather than SipHash: the key is a whole request, and hashing
    /// it with SipHash was a visible share of a cache hit. Keys are compared
    /// by equality, so a collision can only cost time, never a wrong answer.
    cache: moka::sync::Cache<Key<R>, Arc<Entry>, foldhash::quality::RandomState>,
    ttl: Duration,
    /// Newest snapshot generation seen; older ones are neither read nor written.
    generation: AtomicU64,
}

impl<R> std::fmt::Debug for DecisionCache<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionCache")
            .field("entries", &self.cache.entry_count())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

// === impl DecisionCache ===

impl DecisionCache {
    /// A cache as configured, or `None` when disabled.
    pub fn from_config(cfg: &CacheConfig) -> Option<Self> {
        Self::from_config_raw(cfg)
    }

    /// A cache of at most `max_entries` decisions, each kept at most `ttl`.
    pub fn new(max_entries: u64, ttl: Duration) -> Self {
        Self::new_raw(max_entries, ttl)
    }
}

impl<R: RawKey> DecisionCache<R> {
    /// [`DecisionCache::from_config`], for a cache also asked with raw keys.
    pub fn from_config_raw(cfg: &CacheConfig) -> Option<Self> {
        cfg.enabled
            .then(|| Self::new_raw(cfg.max_entries, Duration::from_secs(cfg.ttl_seconds)))
    }

    /// [`DecisionCache::new`], for a cache also asked with raw keys.
    pub fn new_raw(max_entries: u64, ttl: Duration) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_entries)
            .expire_after(PerEntryTtl)
            .eviction_listener(|_, _, cause| match cause {
                RemovalCause::Size => metrics::record_cache_eviction("size"),
                RemovalCause::Expired => metrics::record_cache_eviction("expired"),
                // Invalidation on reload and replacement are not evictions.
                RemovalCause::Explicit | RemovalCause::Replaced => {}
            })
            .build_with_hasher(foldhash::quality::RandomState::default());
        Self {
            cache,
            ttl,
            generation: AtomicU64::new(0),
        }
    }

    /// Decides `req` with `snapshot`, from the cache when it can.
    /// `valid_until` is when the caller's credential stops being valid
    /// (certificate not-after, token `exp`); `now` is the caller's clock.
    pub fn decide(
        &self,
        snapshot: &Snapshot,
        req: &AuthzRequest,
        on_error: OnPolicyError,
        valid_until: Option<SystemTime>,
        now: SystemTime,
    ) -> Decided {
        self.decide_owned(snapshot, req.clone(), on_error, valid_until, now)
    }

    /// [`DecisionCache::decide`], consuming the request: the key is built from
    /// it in place (no copy on the hit path).
    pub fn decide_owned(
        &self,
        snapshot: &Snapshot,
        mut req: AuthzRequest,
        on_error: OnPolicyError,
        valid_until: Option<SystemTime>,
        now: SystemTime,
    ) -> Decided {
        let newest = self.observe(snapshot.generation);
        let reads_volatile = snapshot
            .volatile_reads_for(&req.principal.uid)
            .any(|path| carries(&req.context, path));
        if snapshot.generation < newest || reads_volatile {
            // A request still on an old snapshot, or one whose decision depends
            // on per-request context it carries: evaluate, never cache.
            metrics::record_cache_lookup(None);
            return evaluate(snapshot, &req, on_error);
        }
        let Some(remaining) = self.remaining(valid_until, now) else {
            // Expired credentials are refused before this point; never cache.
            return evaluate(snapshot, &req, on_error);
        };
        // Blank the volatile context for the key, keeping the real values for
        // an evaluation on a miss. Sound only because no policy that can apply
        // reads them (checked above).
        let mut volatile = Vec::new();
        swap_volatile(&mut req.context, &mut volatile);
        let mut key = Key {
            generation: snapshot.generation,
            on_error,
            question: Question::Cedar(req),
        };
        if let Some(hit) = self.lookup(&key, now) {
            return hit;
        }
        let decided = match &mut key.question {
            Question::Cedar(req) => {
                swap_volatile(&mut req.context, &mut volatile);
                let decided = evaluate(snapshot, req, on_error);
                swap_volatile(&mut req.context, &mut volatile);
                decided
            }
            // Not reached (the key was made from `req` just above); fail
            // closed, and uncached (`policy_error` never is).
            Question::Raw(_) => {
                return Decided {
                    decision: Decision::deny(
                        Reason::PolicyError,
                        vec!["decision cache: unexpected key".to_owned()],
                    ),
                    shadow: None,
                    cache_hit: false,
                    memo: None,
                };
            }
        };
        self.store(key, &decided, valid_until, remaining);
        decided
    }

    /// [`DecisionCache::decide_owned`] keyed by the request's inputs, borrowed
    /// (`raw`; the owned key is built on a miss only): `build` makes the Cedar
    /// request, called on a miss only. `principal` is the uid
    /// `build` puts in it. Falls back to the Cedar-request key when some policy
    /// that can apply to that principal reads volatile context (the raw key
    /// leaves it out, so it must not matter).
    #[allow(clippy::too_many_arguments)]
    pub fn decide_raw<P: RawProbe<Key = R>>(
        &self,
        snapshot: &Snapshot,
        raw: &P,
        principal: &cedar_policy::EntityUid,
        build: impl FnOnce() -> AuthzRequest,
        on_error: OnPolicyError,
        valid_until: Option<SystemTime>,
        now: SystemTime,
    ) -> Decided {
        if snapshot.volatile_reads_for(principal).next().is_some() {
            return self.decide_owned(snapshot, build(), on_error, valid_until, now);
        }
        let newest = self.observe(snapshot.generation);
        if snapshot.generation < newest {
            metrics::record_cache_lookup(None);
            return evaluate(snapshot, &build(), on_error);
        }
        let Some(remaining) = self.remaining(valid_until, now) else {
            return evaluate(snapshot, &build(), on_error);
        };
        let probe = Probe {
            generation: snapshot.generation,
            on_error,
            raw,
        };
        if let Some(hit) = self.lookup(&probe, now) {
            return hit;
        }
        let decided = evaluate(snapshot, &build(), on_error);
        let key = Key {
            generation: snapshot.generation,
            on_error,
            question: Question::Raw(raw.to_key()),
        };
        self.store(key, &decided, valid_until, remaining);
        decided
    }

    /// How long an entry for a credential valid until `valid_until` may live;
    /// `None` when the credential has expired (nothing is cached then).
    fn remaining(&self, valid_until: Option<SystemTime>, now: SystemTime) -> Option<Duration> {
        match valid_until {
            Some(t) => match t.duration_since(now) {
                Ok(left) if !left.is_zero() => Some(left.min(self.ttl)),
                _ => None,
            },
            None => Some(self.ttl),
        }
    }

    /// A live entry for `key` (owned, or a [`Probe`]; its credential still
    /// valid at `now`), recording the lookup either way.
    fn lookup<Q>(&self, key: &Q, now: SystemTime) -> Option<Decided>
    where
        Q: moka::Equivalent<Key<R>> + std::hash::Hash,
    {
        if let Some(hit) = self.cache.get(key)
            && hit.valid_until.is_none_or(|t| now < t)
        {
            metrics::record_cache_lookup(Some(true));
            return Some(Decided {
                decision: hit.decision.clone(),
                shadow: hit.shadow.clone(),
                cache_hit: true,
                memo: Some(hit.memo.clone()),
            });
        }
        metrics::record_cache_lookup(Some(false));
        None
    }

    /// Keeps a clean decision (see [`cacheable`]) under `key`.
    fn store(
        &self,
        key: Key<R>,
        decided: &Decided,
        valid_until: Option<SystemTime>,
        ttl: Duration,
    ) {
        if cacheable(&decided.decision) && decided.shadow.as_ref().is_none_or(cacheable) {
            self.cache.insert(
                key,
                Arc::new(Entry {
                    decision: decided.decision.clone(),
                    shadow: decided.shadow.clone(),
                    valid_until,
                    ttl,
                    memo: Memo::default(),
                }),
            );
            metrics::record_cache_entries(self.cache.entry_count());
        }
    }

    /// Records that `generation` is in force; invalidates everything when it
    /// is newer than any seen before. Returns the newest generation seen.
    fn observe(&self, generation: u64) -> u64 {
        let before = self.generation.fetch_max(generation, Ordering::AcqRel);
        if before < generation {
            // Old entries are unreachable already (generation in the key);
            // this frees their memory now instead of at their TTL.
            self.cache.invalidate_all();
            metrics::record_cache_entries(0);
            return generation;
        }
        before
    }

    /// Decisions held (approximate; moka counts lazily).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }
}

/// Only clean answers are cached: a decision that carries evaluation errors or
/// fails closed is recomputed every time.
fn cacheable(d: &Decision) -> bool {
    d.errors.is_empty() && !matches!(d.reason, Reason::PolicyError | Reason::InvalidRequest)
}

/// Whether `context` holds the value at `path` (`context.auth.token_age_seconds`).
fn carries(context: &[(String, Value)], path: &str) -> bool {
    let mut record = context;
    let mut parts = path
        .strip_prefix("context.")
        .unwrap_or(path)
        .split('.')
        .peekable();
    while let Some(part) = parts.next() {
        match record.iter().find(|(name, _)| name == part) {
            None => return false,
            Some(_) if parts.peek().is_none() => return true,
            Some((_, Value::Record(inner))) => record = inner,
            Some(_) => return false,
        }
    }
    false
}

/// [`VOLATILE_CONTEXT`](crate::policy::reads::VOLATILE_CONTEXT) grouped by the context record holding them, so a Check
/// walks its context once instead of splitting every path on each lookup (the
/// test `volatile_groups_are_the_volatile_context` keeps the two in step).
const VOLATILE_GROUPS: &[(&str, &[&str])] = &[
    ("request", &["time", "request_id"]),
    (
        "auth",
        &[
            "token_age_seconds",
            "token_remaining_seconds",
            "api_key_age_seconds",
            "api_key_remaining_seconds",
        ],
    ),
];

/// Swaps the values at the [`VOLATILE_CONTEXT`](crate::policy::reads::VOLATILE_CONTEXT) paths `context` carries with
/// `stash`: the first call (empty stash) blanks them and keeps the real values
/// in `stash`; the next call puts them back (and blanks the stash again).
fn swap_volatile(context: &mut [(String, Value)], stash: &mut Vec<Value>) {
    let mut slot = 0;
    for (record, leaves) in VOLATILE_GROUPS {
        let Some((_, Value::Record(inner))) = context.iter_mut().find(|(name, _)| name == record)
        else {
            continue;
        };
        for leaf in *leaves {
            if let Some((_, value)) = inner.iter_mut().find(|(name, _)| name == leaf) {
                if stash.len() == slot {
                    stash.push(Value::Bool(false));
                }
                std::mem::swap(value, &mut stash[slot]);
                slot += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
