//! `multipart/form-data` bodies, read strictly (RFC 7578, RFC 2046).
//!
//! Upload endpoints (audio transcription, image edits, videos) name the model
//! in a form field. Form parsers disagree on nearly every corner of the
//! format: quoted and unquoted parameters, RFC 2231 `name*=` spellings,
//! repeated parameters, a `charset` on the content type, bare LF line ends,
//! folded headers, preambles, transfer encodings, and which of two same-named
//! fields wins (Starlette keeps the last). An upstream that reads another field
//! than cedar-gate did runs a model no policy was asked about, so everything
//! outside the one spelling that every parser reads the same way is refused
//! as `body_invalid`. Real clients (the OpenAI SDK, httpx, requests, curl)
//! all send that spelling.

use crate::classify::body::BodyError;

/// Most parts read from one form; uploads send a handful.
const MAX_PARTS: usize = 256;

/// A parsed form: its parts in order. Only names and small text values are
/// ever looked at; file contents are skipped.
#[derive(Debug)]
pub struct Form<'a> {
    parts: Vec<Part<'a>>,
}

/// One part of a form.
#[derive(Debug)]
struct Part<'a> {
    name: &'a str,
    /// Sent with a `filename`: a file, not a text field.
    file: bool,
    /// The part's own `content-type`, if any.
    content_type: Option<&'a str>,
    value: &'a [u8],
}

/// The boundary of a `multipart/form-data` content type: `Ok(None)` for any
/// other media type, an error for a form content type whose parameters could
/// be read two ways.
pub fn boundary(content_type: &str) -> Result<Option<&str>, BodyError> {
    let (mime, rest) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return Ok(None);
    }
    let params = params(rest).map_err(|e| invalid(format!("form `content-type`: {e}")))?;
    let mut boundary = None;
    for (key, value) in params {
        match key {
            k if k.eq_ignore_ascii_case("boundary") => boundary = Some(value),
            // Starlette decodes every text field with this charset.
            k if k.eq_ignore_ascii_case("charset") && is_utf8_label(value) => {}
            k => {
                return Err(invalid(format!(
                    "form `content-type` parameter `{k}` is not accepted"
                )));
            }
        }
    }
    let boundary =
        boundary.ok_or_else(|| invalid("form `content-type` has no `boundary`".to_owned()))?;
    if !valid_boundary(boundary) {
        return Err(invalid(
            "form boundary is not 1 to 70 RFC 2046 characters".to_owned(),
        ));
    }
    Ok(Some(boundary))
}

/// Parses `body` as a form delimited by `boundary`.
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Form<'a>, BodyError> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let next_delimiter = [b"\r\n", delimiter].concat();
    // No preamble: the body starts with the first delimiter.
    let mut rest = body
        .strip_prefix(delimiter)
        .ok_or_else(|| invalid("form does not start with its boundary".to_owned()))?;
    let mut parts = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix(b"--") {
            // The close delimiter; at most a line end after it.
            if !after.is_empty() && after != b"\r\n" {
                return Err(invalid("data after the form's closing boundary".to_owned()));
            }
            return Ok(Form { parts });
        }
        rest = rest.strip_prefix(b"\r\n").ok_or_else(|| {
            invalid("a form boundary is followed by something other than CRLF or `--`".to_owned())
        })?;
        if parts.len() == MAX_PARTS {
            return Err(invalid(format!("form has more than {MAX_PARTS} parts")));
        }
        let head_end = find(rest, b"\r\n\r\n")
            .ok_or_else(|| invalid("form part headers do not end".to_owned()))?;
        let head = &rest[..head_end];
        let content = &rest[head_end + 4..];
        let value_end = find(content, &next_delimiter)
            .ok_or_else(|| invalid("form has no closing boundary".to_owned()))?;
        parts.push(part(head, &content[..value_end])?);
        rest = &content[value_end + next_delimiter.len()..];
    }
}

// === impl Form ===

impl<'a> Form<'a> {
    /// The text field `name`: `None` when absent. Sent twice, sent as a file,
    /// sent with a media type other than plain text, or not UTF-8: an error,
    /// since an upstream may read it otherwise.
    pub fn text(&self, name: &str) -> Result<Option<&'a str>, BodyError> {
        let mut found = self.parts.iter().filter(|p| p.name == name);
        let Some(part) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(invalid(format!(
                "form field `{name}` appears more than once"
            )));
        }
        if part.file {
            return Err(invalid(format!("form field `{name}` is sent as a file")));
        }
        if let Some(ct) = part.content_type {
            let (mime, rest) = ct.split_once(';').unwrap_or((ct, ""));
            let plain = mime.trim().eq_ignore_ascii_case("text/plain")
                && params(rest).is_ok_and(|ps| {
                    ps.iter()
                        .all(|(k, v)| k.eq_ignore_ascii_case("charset") && is_utf8_label(v))
                });
            if !plain {
                return Err(invalid(format!(
                    "form field `{name}` has content type `{ct}`, not UTF-8 text"
                )));
            }
        }
        std::str::from_utf8(part.value)
            .map(Some)
            .map_err(|_| invalid(format!("form field `{name}` is not UTF-8")))
    }
}

/// One part: its header block and its content.
fn part<'a>(head: &'a [u8], value: &'a [u8]) -> Result<Part<'a>, BodyError> {
    let head = std::str::from_utf8(head)
        .map_err(|_| invalid("form part headers are not UTF-8".to_owned()))?;
    let mut disposition = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            return Err(invalid("folded form part header".to_owned()));
        }
        if line.contains(['\r', '\n']) {
            return Err(invalid("bare CR or LF in form part headers".to_owned()));
        }
        let (key, v) = line
            .split_once(':')
            .filter(|(k, _)| !k.is_empty() && k.bytes().all(is_tchar))
            .ok_or_else(|| invalid("malformed form part header".to_owned()))?;
        let v = v.trim_matches([' ', '\t']);
        let slot = if key.eq_ignore_ascii_case("content-disposition") {
            &mut disposition
        } else if key.eq_ignore_ascii_case("content-type") {
            &mut content_type
        } else if key.eq_ignore_ascii_case("content-transfer-encoding") {
            // Some parsers decode base64 and quoted-printable parts.
            if ["7bit", "8bit", "binary"]
                .iter()
                .any(|e| v.eq_ignore_ascii_case(e))
            {
                continue;
            }
            return Err(invalid(format!(
                "form part `content-transfer-encoding: {v}` is not accepted"
            )));
        } else {
            continue;
        };
        if slot.replace(v).is_some() {
            return Err(invalid(format!("form part header `{key}` appears twice")));
        }
    }
    let disposition =
        disposition.ok_or_else(|| invalid("form part has no content-disposition".to_owned()))?;
    let (kind, rest) = disposition.split_once(';').unwrap_or((disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(invalid("form part is not `form-data`".to_owned()));
    }
    let mut name = None;
    let mut file = false;
    for (key, v) in params(rest).map_err(|e| invalid(format!("form part disposition: {e}")))? {
        if key.eq_ignore_ascii_case("name") {
            name = Some(v);
        } else if key.eq_ignore_ascii_case("filename") {
            file = true;
        }
    }
    let name = name
        .filter(|n| n.is_ascii())
        .ok_or_else(|| invalid("form part has no ASCII `name`".to_owned()))?;
    Ok(Part {
        name,
        file,
        content_type,
        value,
    })
}

/// `; key=value` parameters: keys are tokens (no RFC 2231 `*`), values a
/// token or a quoted string without escapes, nothing between them but
/// optional spaces, no key twice (ignoring case).
fn params(mut s: &str) -> Result<Vec<(&str, &str)>, String> {
    let ows = [' ', '\t'];
    let mut out: Vec<(&str, &str)> = Vec::new();
    loop {
        s = s.trim_start_matches(ows);
        if s.is_empty() {
            return Ok(out);
        }
        if !out.is_empty() {
            s = s
                .strip_prefix(';')
                .ok_or("parameters must be separated by `;`")?
                .trim_start_matches(ows);
        }
        let key_len = s.bytes().take_while(|&b| is_tchar(b) && b != b'*').count();
        let (key, after) = s.split_at(key_len);
        if key.is_empty() {
            return Err("a parameter has no name, or an RFC 2231 (`*`) name".to_owned());
        }
        let after = after
            .strip_prefix('=')
            .ok_or_else(|| format!("parameter `{key}` has no `=` right after its name"))?;
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| format!("parameter `{key}` has an unterminated quote"))?;
            let value = &quoted[..end];
            if value.contains('\\') {
                return Err(format!("parameter `{key}` has a backslash escape"));
            }
            (value, &quoted[end + 1..])
        } else {
            let len = after.bytes().take_while(|&b| is_tchar(b)).count();
            if len == 0 {
                return Err(format!("parameter `{key}` has no value"));
            }
            after.split_at(len)
        };
        if out.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
            return Err(format!("parameter `{key}` appears twice"));
        }
        out.push((key, value));
        s = tail;
        if !s.is_empty() && !s.trim_start_matches(ows).starts_with(';') {
            return Err(format!("unexpected text after parameter `{key}`"));
        }
    }
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 2046: 1 to 70 `bchars`, not ending in a space.
fn valid_boundary(b: &str) -> bool {
    (1..=70).contains(&b.len())
        && !b.ends_with(' ')
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c))
}

fn is_utf8_label(v: &str) -> bool {
    v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn invalid(msg: String) -> BodyError {
    BodyError::Invalid(msg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=b0";

    fn form(body: &[u8]) -> Result<Form<'_>, BodyError> {
        parse(body, "b0")
    }

    fn model(body: &[u8]) -> Result<Option<String>, BodyError> {
        Ok(form(body)?.text("model")?.map(str::to_owned))
    }

    fn field(disposition: &str, value: &str) -> String {
        format!("--b0\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n")
    }

    fn body(parts: &[String]) -> Vec<u8> {
        format!("{}--b0--\r\n", parts.concat()).into_bytes()
    }

    #[test]
    fn the_spelling_real_clients_send_is_read() {
        let b = body(&[
            field(
                r#"form-data; name="file"; filename="a.mp3""#,
                "\x00\x01--b1\r\n",
            ),
            field(r#"form-data; name="model""#, "whisper-1"),
            field("form-data; name=language", "en"),
        ]);
        let f = form(&b).unwrap();
        assert_eq!(f.text("model").unwrap(), Some("whisper-1"));
        assert_eq!(f.text("language").unwrap(), Some("en"));
        assert_eq!(f.text("prompt").unwrap(), None);
        assert!(f.text("file").is_err());
        assert_eq!(boundary(CT).unwrap(), Some("b0"));
        assert_eq!(
            boundary("Multipart/Form-Data;boundary=\"a b:c\"").unwrap(),
            Some("a b:c")
        );
        assert_eq!(boundary("application/json").unwrap(), None);
        // No trailing CRLF after the close delimiter is fine too.
        let mut b = body(&[field(r#"form-data; name="model""#, "m")]);
        b.truncate(b.len() - 2);
        assert_eq!(model(&b).unwrap().as_deref(), Some("m"));
        // A text part may say it is UTF-8 text.
        let b = b"--b0\r\nContent-Disposition: form-data; name=\"model\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nm\r\n--b0--";
        assert_eq!(model(b).unwrap().as_deref(), Some("m"));
    }

    #[test]
    fn content_types_read_two_ways_are_refused() {
        for ct in [
            "multipart/form-data; boundary=a; boundary=b",
            "multipart/form-data; boundary=a,multipart/form-data; boundary=b",
            "multipart/form-data; boundary*=utf-8''a",
            "multipart/form-data; boundary*0=a; boundary*1=b",
            "multipart/form-data; boundary=\"a\\\"b\"",
            "multipart/form-data; boundary=\"a",
            "multipart/form-data; boundary = a",
            "multipart/form-data; boundary=a; charset=utf-16",
            "multipart/form-data; boundary=a;",
            "multipart/form-data; boundary=a b",
            "multipart/form-data; boundary=",
            "multipart/form-data",
            "multipart/form-data; BOUNDARY=a; Boundary=b",
            "multipart/form-data; boundary=a x=y",
        ] {
            assert!(boundary(ct).is_err(), "{ct}");
        }
        assert_eq!(
            boundary("multipart/form-data; charset=UTF-8; boundary=a").unwrap(),
            Some("a")
        );
    }

    #[test]
    fn ambiguous_bodies_are_refused() {
        let m = |d: &str| field(d, "o1");
        let plain = field(r#"form-data; name="model""#, "whisper-1");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("field twice", body(&[plain.clone(), plain.clone()])),
            ("second unquoted", body(&[plain.clone(), m("form-data; name=model")])),
            ("second upper-case key", body(&[plain.clone(), m(r#"form-data; NAME="model""#)])),
            ("RFC 2231 name", body(&[m("form-data; name*=utf-8''model")])),
            ("RFC 2231 continuation", body(&[m(r#"form-data; name*0="mo"; name*1="del""#)])),
            ("name twice", body(&[m(r#"form-data; name="x"; name="model""#)])),
            ("spaces around =", body(&[m(r#"form-data; name = "model""#)])),
            ("escaped quote", body(&[m(r#"form-data; name="mo\"del""#)])),
            ("as a file", body(&[m(r#"form-data; name="model"; filename="m.txt""#)])),
            ("not form-data", body(&[m(r#"attachment; name="model""#)])),
            ("no name", body(&[m("form-data")])),
            ("preamble", [b"hello\r\n".as_slice(), &body(std::slice::from_ref(&plain))].concat()),
            ("leading CRLF", [b"\r\n".as_slice(), &body(std::slice::from_ref(&plain))].concat()),
            ("bare LF", body(std::slice::from_ref(&plain)).iter().flat_map(|&c| if c == b'\r' { None } else { Some(c) }).collect()),
            ("epilogue", [body(std::slice::from_ref(&plain)), m(r#"form-data; name="model""#).into_bytes()].concat()),
            ("no close", plain.clone().into_bytes()),
            ("no header end", b"--b0\r\nContent-Disposition: form-data; name=\"model\"\r\n".to_vec()),
            ("folded header", b"--b0\r\nContent-Disposition: form-data;\r\n name=\"model\"\r\n\r\no1\r\n--b0--".to_vec()),
            ("two dispositions", b"--b0\r\nContent-Disposition: form-data; name=\"x\"\r\ncontent-disposition: form-data; name=\"model\"\r\n\r\no1\r\n--b0--".to_vec()),
            ("base64 part", b"--b0\r\nContent-Disposition: form-data; name=\"model\"\r\nContent-Transfer-Encoding: base64\r\n\r\nbzE=\r\n--b0--".to_vec()),
            ("utf-16 part", b"--b0\r\nContent-Disposition: form-data; name=\"model\"\r\nContent-Type: text/plain; charset=utf-16\r\n\r\no\x001\x00\r\n--b0--".to_vec()),
            ("json part", b"--b0\r\nContent-Disposition: form-data; name=\"model\"\r\nContent-Type: application/json\r\n\r\n\"o1\"\r\n--b0--".to_vec()),
            ("boundary prefix in content", body(&[field(r#"form-data; name="model""#, "whisper-1\r\n--b0x")])),
            ("boundary then junk", b"--b0 \r\nContent-Disposition: form-data; name=\"model\"\r\n\r\no1\r\n--b0--".to_vec()),
            ("not UTF-8", b"--b0\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n\xff\r\n--b0--".to_vec()),
        ];
        for (what, b) in cases {
            assert!(
                matches!(model(&b), Err(BodyError::Invalid(_))),
                "{what}: {:?}",
                model(&b)
            );
        }
    }

    #[test]
    fn too_many_parts_are_refused() {
        let parts: Vec<String> = (0..=MAX_PARTS)
            .map(|i| field(&format!("form-data; name=\"f{i}\""), "x"))
            .collect();
        assert!(form(&body(&parts)).is_err());
    }
}
