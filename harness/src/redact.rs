//! The one redaction every URL, argument, error and file goes through: a password given to
//! perflab never reaches results.json, the report or the console.
//!
//! Two layers. `redact` rewrites what looks like a secret wherever it appears in a text: the
//! password of a URL's userinfo (also one containing `@` or `:`), `password=`-style key=value
//! pairs (libpq conninfo, a URL's `?password=`, `PGPASSWORD=` in an environment dump), with
//! the value quoted or not; it is applied where a text is made (arguments, errors, notes,
//! error kinds, URLs, the console). And every password perflab is handed (URLs, `PGPASSWORD`,
//! `REDISCLI_AUTH`) is registered, so that a driver's error message that quotes one in a
//! shape no pattern foresaw is still caught: `redact` masks every registered secret too, and
//! `results::save` runs the whole file through `mask_known` before writing (registered
//! secrets only: a pattern run over JSON could cut a string's escapes in half).

use std::sync::{Mutex, OnceLock};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Keys whose value is a secret in `key=value` form (compared case-insensitively).
const SECRET_KEYS: &[&str] = &["password", "passwd", "pwd", "pgpassword", "rediscli_auth", "requirepass", "auth"];

/// Registered secrets shorter than this are not masked as bare substrings.
const MIN_SUBSTRING_SECRET: usize = 4;

fn registry() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Remember `secret` so that every later `redact` masks it wherever it appears.
pub fn register_secret(secret: &str) {
    if secret.is_empty() || secret == MASK {
        return;
    }
    let decoded = percent_decode(secret);
    // Each form the secret can appear in: as given, percent-decoded, and inside a JSON string.
    let mut forms = vec![secret.to_owned(), decoded.clone()];
    for f in [secret, decoded.as_str()] {
        let json = serde_json::to_string(f).unwrap_or_default();
        forms.push(json.trim_matches('"').to_owned());
    }
    let mut all = registry().lock().unwrap_or_else(|e| e.into_inner());
    for f in forms {
        // Shorter ones are not masked as bare substrings (a one-letter password would mask
        // every such letter of a file); the patterns still catch them.
        if f.len() >= MIN_SUBSTRING_SECRET && !all.contains(&f) {
            all.push(f);
        }
    }
    // Longest first, so a secret containing another is masked whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Register the password of `url` (and of any `password=` pair in it), if it has one.
pub fn register_url(url: &str) {
    if let Some(p) = url_password(url) {
        register_secret(p);
    }
    for (start, end) in secret_values(url) {
        register_secret(url[start..end].trim_matches(|c| c == '\'' || c == '"'));
    }
}

/// Register the secrets of this process's environment that perflab or its tools may read.
pub fn register_environment() {
    for key in ["PGPASSWORD", "REDISCLI_AUTH"] {
        if let Ok(v) = std::env::var(key) {
            register_secret(&v);
        }
    }
    for key in ["PERFLAB_PG_URL", "PERFLAB_REDIS_URL", "DATABASE_URL", "REDIS_URL"] {
        if let Ok(v) = std::env::var(key) {
            register_url(&v);
        }
    }
}

/// `text` with every secret replaced by `***`.
pub fn redact(text: &str) -> String {
    let mut out = redact_userinfo(text);
    let mut spans = secret_values(&out);
    spans.reverse();
    for (start, end) in spans {
        out.replace_range(start..end, MASK);
    }
    mask_known(&out)
}

/// `text` with every registered secret replaced by `***`, and nothing else touched: safe on
/// a whole JSON or HTML document.
pub fn mask_known(text: &str) -> String {
    let secrets = registry().lock().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_owned();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

/// Redact each argument of a command line; a secret that follows a flag of its own
/// (`--password X`) is masked too.
pub fn redact_args<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    let mut out = Vec::new();
    let mut mask_next = false;
    for a in args {
        if mask_next {
            register_secret(&a);
            out.push(MASK.to_owned());
            mask_next = false;
            continue;
        }
        let flag = a.trim_start_matches('-').to_ascii_lowercase();
        if a.starts_with('-') && SECRET_KEYS.contains(&flag.as_str()) {
            mask_next = true;
        }
        if a.contains("://") {
            register_url(&a);
        }
        out.push(redact(&a));
    }
    out
}

/// The password part of `scheme://user:password@host…`, if any.
fn url_password(url: &str) -> Option<&str> {
    let (start, end) = userinfo_password_span(url, url.find("://")? + 3)?;
    Some(&url[start..end])
}

/// In the URL token that starts at `authority` (just after `://`), the byte span of the
/// password. The userinfo ends at the token's last `@` (a password may contain `@`); the
/// password starts after the userinfo's first `:` (a user name cannot contain one).
fn userinfo_password_span(text: &str, authority: usize) -> Option<(usize, usize)> {
    let rest = &text[authority..];
    let token_len = rest.find(|c: char| c.is_whitespace() || "\"'<>`".contains(c)).unwrap_or(rest.len());
    let token = &rest[..token_len];
    let at = token.rfind('@')?;
    let colon = token[..at].find(':')?;
    Some((authority + colon + 1, authority + at))
}

fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let authority = from + i + 3;
        match userinfo_password_span(text, authority) {
            Some((start, end)) => {
                out.push_str(&text[from..start]);
                out.push_str(MASK);
                from = end;
            }
            None => {
                out.push_str(&text[from..authority]);
                from = authority;
            }
        }
    }
    out.push_str(&text[from..]);
    out
}

/// Byte spans of the values of secret keys in `key=value` pairs: `password=x`,
/// `password = 'a b'`, `?password=x&…`, `PGPASSWORD=x`. Values already masked are skipped.
fn secret_values(text: &str) -> Vec<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for key in SECRET_KEYS {
        let mut from = 0;
        while let Some(i) = lower[from..].find(key) {
            let k = from + i;
            from = k + key.len();
            // The key must stand alone: not the tail of a longer word (`no_password=`).
            let before_ok = k == 0 || !(bytes[k - 1].is_ascii_alphanumeric() || bytes[k - 1] == b'_');
            if !before_ok {
                continue;
            }
            let mut j = k + key.len();
            while j < bytes.len() && bytes[j] == b' ' {
                j += 1;
            }
            if j >= bytes.len() || bytes[j] != b'=' {
                continue;
            }
            j += 1;
            while j < bytes.len() && bytes[j] == b' ' {
                j += 1;
            }
            let start = j;
            let end = if j < bytes.len() && (bytes[j] == b'\'' || bytes[j] == b'"') {
                let q = bytes[j];
                let mut e = j + 1;
                while e < bytes.len() && bytes[e] != q {
                    e += if bytes[e] == b'\\' { 2 } else { 1 };
                }
                (e + 1).min(bytes.len())
            } else {
                text[j..].find(|c: char| c.is_whitespace() || "&;,\"'<>)".contains(c)).map_or(text.len(), |e| j + e)
            };
            if end > start && &text[start..end] != MASK && !spans.iter().any(|&(s, e)| s < end && start < e) {
                spans.push((start, end));
            }
        }
    }
    spans.sort();
    spans
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_userinfo() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("redis://:pw@h:6379"), "redis://:***@h:6379");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn a_password_with_at_signs_and_colons_is_masked_whole() {
        assert_eq!(redact("postgres://u:p@ss:w@rd@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(
            redact("error: cannot connect to postgres://u:a@b@host/db: refused"),
            "error: cannot connect to postgres://u:***@host/db: refused"
        );
    }

    #[test]
    fn key_value_forms() {
        assert_eq!(redact("host=h port=5 password=SeCrEt user=u"), "host=h port=5 password=*** user=u");
        assert_eq!(redact("host=h password='two words' user=u"), "host=h password=*** user=u");
        assert_eq!(
            redact("postgres://h/db?sslmode=off&password=SeCrEt&x=1"),
            "postgres://h/db?sslmode=off&password=***&x=1"
        );
        assert_eq!(redact("PGPASSWORD=SeCrEt psql"), "PGPASSWORD=*** psql");
        assert_eq!(redact("Password = SeCrEt"), "Password = ***");
        assert_eq!(redact("no_password=1 passwords are fine"), "no_password=1 passwords are fine");
    }

    #[test]
    fn several_urls_in_one_text() {
        assert_eq!(
            redact("--pg-url postgres://a:x1@h/db --redis-url redis://:y2@r:6379/0"),
            "--pg-url postgres://a:***@h/db --redis-url redis://:***@r:6379/0"
        );
    }

    #[test]
    fn registered_secrets_are_masked_anywhere() {
        register_url("postgres://u:Zq9%40registered@h/db");
        assert_eq!(redact("the server said: bad password Zq9@registered."), "the server said: bad password ***.");
        assert_eq!(redact("raw Zq9%40registered"), "raw ***");
    }

    #[test]
    fn masking_known_secrets_keeps_a_json_document_valid() {
        register_secret("Js\"on-secret");
        let doc = serde_json::json!({ "error": "password=\"x\" and Js\"on-secret", "url": "p://u:pw@h" });
        let masked = mask_known(&serde_json::to_string(&doc).unwrap());
        let back: serde_json::Value = serde_json::from_str(&masked).expect("still JSON");
        assert_eq!(back["error"], "password=\"x\" and ***", "only the registered secret goes");
    }

    #[test]
    fn arguments_mask_a_separate_password_value() {
        let args = ["xtask", "bench", "--password", "hunter22", "--pg-url=postgres://u:pw9@h/d"].map(String::from);
        assert_eq!(redact_args(args), ["xtask", "bench", "--password", "***", "--pg-url=postgres://u:***@h/d"]);
        assert_eq!(redact("hunter22 again"), "*** again");
    }
}
