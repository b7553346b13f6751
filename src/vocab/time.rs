//! Cedar `datetime` text: RFC 3339 UTC, as `context.request.time` and the
//! audit log carry it.

use std::time::SystemTime;

/// RFC 3339 UTC to the second: `context.request.time`. A second is all a
/// time-of-day or expiry policy needs, and consecutive requests then share the
/// value (see `vocab::value::extension`).
pub fn rfc3339_seconds(t: SystemTime) -> String {
    with_seconds(t, |seconds, _| {
        let mut out = String::with_capacity(seconds.len() + 1);
        out.push_str(seconds);
        out.push('Z');
        out
    })
}

/// RFC 3339 UTC with milliseconds, the form Cedar's `datetime` accepts.
pub fn rfc3339(t: SystemTime) -> String {
    let mut out = String::with_capacity(24);
    push_rfc3339(&mut out, t);
    out
}

/// Appends [`rfc3339`]'s text to `out`: the audit writer puts it straight
/// into the line it is building.
pub fn push_rfc3339(out: &mut String, t: SystemTime) {
    let millis = with_seconds(t, |seconds, millis| {
        out.push_str(seconds);
        millis
    });
    out.push('.');
    for digit in [millis / 100, millis / 10 % 10, millis % 10] {
        out.push(char::from_digit(digit, 10).unwrap_or('0'));
    }
    out.push('Z');
}

/// Calls `f` with `t` as `YYYY-MM-DDTHH:MM:SS` (UTC). Formatting a date costs
/// more than the rest of building a request, and every Check of the same
/// second shares it, so each thread remembers the last second it formatted.
/// `f` also gets the milliseconds past that second (0 before the epoch).
fn with_seconds<R>(t: SystemTime, f: impl FnOnce(&str, u32) -> R) -> R {
    thread_local! {
        static LAST: std::cell::RefCell<(Option<u64>, String)> =
            const { std::cell::RefCell::new((None, String::new())) };
    }
    let Ok(since) = t.duration_since(SystemTime::UNIX_EPOCH) else {
        return f(&format_seconds(t), 0);
    };
    let secs = since.as_secs();
    LAST.with_borrow_mut(|(last, text)| {
        if *last != Some(secs) {
            *text = format_seconds(t);
            *last = Some(secs);
        }
        f(text, since.subsec_millis())
    })
}

fn format_seconds(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
    }

    #[test]
    fn rfc3339_forms_across_a_second_boundary() {
        // Same second twice (the remembered text), then the next second.
        assert_eq!(rfc3339(at(1_764_000_123_045)), "2025-11-24T16:02:03.045Z");
        assert_eq!(rfc3339(at(1_764_000_123_999)), "2025-11-24T16:02:03.999Z");
        assert_eq!(
            rfc3339_seconds(at(1_764_000_123_999)),
            "2025-11-24T16:02:03Z"
        );
        assert_eq!(rfc3339(at(1_764_000_124_000)), "2025-11-24T16:02:04.000Z");
        assert_eq!(
            rfc3339_seconds(at(1_764_000_124_000)),
            "2025-11-24T16:02:04Z"
        );
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00.000Z");
        let mut line = String::from("{\"time\":\"");
        push_rfc3339(&mut line, at(1_764_000_124_007));
        assert_eq!(line, "{\"time\":\"2025-11-24T16:02:04.007Z");
        // Before the epoch: formatted directly, not remembered.
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339_seconds(before), "1969-12-31T23:59:59Z");
    }
}
