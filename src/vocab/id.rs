//! Decision ids: UUIDv7 (RFC 9562), time-ordered to the millisecond, with
//! 74 random bits from the system CSPRNG.
//!
//! `uuid::Uuid::now_v7` asks the kernel for 16 random bytes on every call (a
//! `getrandom` system call per Check, under a process-wide lock). Here each
//! thread draws 4 KiB at a time and takes 10 bytes per id: one system call
//! per 409 ids, the same randomness. (Not aws-lc-rs's generator: under
//! callgrind one 4 KiB fill cost 140 million instructions.)

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

/// Random bytes per id: UUIDv7's `rand_a` and `rand_b` (the builder
/// overwrites the version and variant bits).
const PER_ID: usize = 10;
/// Bytes drawn from the CSPRNG at a time.
const POOL_BYTES: usize = 4096;

struct Pool {
    bytes: [u8; POOL_BYTES],
    next: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            bytes: [0; POOL_BYTES],
            next: POOL_BYTES,
        })
    };
}

/// A new decision id, as its 36-character hyphenated lower-case text.
pub fn decision_id() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let uuid = match random() {
        Some(r) => uuid::Builder::from_unix_timestamp_millis(millis, &r).into_uuid(),
        // The CSPRNG failed (it does not): the library's own generator.
        None => Uuid::now_v7(),
    };
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid.hyphenated().encode_lower(&mut text).to_owned()
}

/// The next 10 random bytes of this thread's pool, refilled when used up.
fn random() -> Option<[u8; PER_ID]> {
    POOL.with_borrow_mut(|pool| {
        if pool.next + PER_ID > POOL_BYTES {
            getrandom::fill(&mut pool.bytes).ok()?;
            pool.next = 0;
        }
        let mut out = [0u8; PER_ID];
        let taken = &mut pool.bytes[pool.next..pool.next + PER_ID];
        out.copy_from_slice(taken);
        // Never handed out twice, even if a refill failed later.
        taken.fill(0);
        pool.next += PER_ID;
        Some(out)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_unique_version_7_and_time_ordered_by_millisecond() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let ids: Vec<String> = (0..2_000).map(|_| decision_id()).collect();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        let mut last = 0;
        for id in &ids {
            let uuid = Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 7, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(id, &uuid.hyphenated().to_string());
            let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
            let millis = secs * 1000 + u64::from(nanos) / 1_000_000;
            assert!(millis >= before && millis >= last, "{id}");
            last = millis;
        }
    }

    #[test]
    fn ids_from_other_threads_differ() {
        let here: HashSet<String> = (0..500).map(|_| decision_id()).collect();
        let there: Vec<String> = std::thread::spawn(|| (0..500).map(|_| decision_id()).collect())
            .join()
            .unwrap();
        assert!(there.iter().all(|id| !here.contains(id)));
    }
}
