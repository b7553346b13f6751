//! One line for an error and its causes, as the binary prints a fatal error.
//!
//! Many errors put their cause in their own message *and* return it from
//! `source()` (`cannot listen on 127.0.0.1:9191: Address already in use`, whose
//! source is that io error); printing the whole chain then says the cause twice.
//! [`chain`] appends a cause only when the text so far does not already end with it.

use std::error::Error;

/// `err` and each cause it does not already spell out, joined by `": "`.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !more.is_empty() && !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        /// Says its source and returns it.
        #[error("cannot listen on {addr}: {source}")]
        Bind {
            addr: &'static str,
            source: std::io::Error,
        },
        /// Returns its source without saying it.
        #[error("cannot read the config")]
        Read(#[source] std::io::Error),
    }

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use")
    }

    #[test]
    fn a_cause_the_message_already_says_is_not_repeated() {
        let e = Outer::Bind {
            addr: "127.0.0.1:9191",
            source: io(),
        };
        assert_eq!(
            chain(&e),
            "cannot listen on 127.0.0.1:9191: Address already in use"
        );
    }

    #[test]
    fn a_cause_the_message_does_not_say_is_appended() {
        let e = Outer::Read(io());
        assert_eq!(chain(&e), "cannot read the config: Address already in use");
    }

    #[test]
    fn anyhow_context_chains_are_deduplicated_too() {
        let e = anyhow::Error::new(Outer::Bind {
            addr: "[::]:9191",
            source: io(),
        })
        .context("starting the server");
        assert_eq!(
            chain(e.as_ref()),
            "starting the server: cannot listen on [::]:9191: Address already in use"
        );
    }
}
