//! What experiments declare with the harness's macros: a table of variants or cases written
//! once with what each stands for (`table!`), and the quick end-to-end test every load
//! experiment has (`quick_run_test!`).

/// Declares a table of variants or cases once: an enum of what each stands for, and the table
/// of `(Variant, Enum)` pairs that `names_of` and `pick` read, in the order written.
///
/// ```
/// harness::table! {
///     const VARIANTS: [harness::Variant] = enum Kind {
///         /// One query per id.
///         NPlusOne => harness::Variant::new("n-plus-one", "a query per id"),
///         Any => harness::Variant::new("any", "one query: WHERE id = ANY($1)").tests_claim(),
///     }
/// }
/// assert_eq!(harness::pick(&VARIANTS, "any").unwrap(), Kind::Any);
/// assert_eq!(harness::names_of(&VARIANTS).len(), 2);
/// ```
#[macro_export]
macro_rules! table {
    (
        $(#[$table_meta:meta])*
        const $table:ident: [$entry:ty] = enum $name:ident {
            $($(#[$meta:meta])* $v:ident => $decl:expr),+ $(,)?
        }
    ) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum $name {
            $($(#[$meta])* $v),+
        }

        $(#[$table_meta])*
        const $table: [($entry, $name); [$(stringify!($v)),+].len()] = [$(($decl, $name::$v)),+];
    };
}

/// Declares the test every load experiment has: `runs_end_to_end_in_quick_mode`, which runs
/// it as `bench --quick` does (every case, variant and quick point, on servers of its own)
/// with these `--set` values for small data, and checks that every sample was taken:
/// `harness::quick_run_test!(PgBatch::new(), "pg-batch.rows" = "3000");`. Defined outside
/// `testing`, so that a build without the `testing` feature still reads it: it expands to
/// nothing outside `cfg(test)`.
#[macro_export]
macro_rules! quick_run_test {
    ($exp:expr $(, $key:literal = $value:literal)* $(,)?) => {
        #[cfg(test)]
        mod quick_run {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn runs_end_to_end_in_quick_mode() {
                let exp = $exp;
                let meta = $crate::Experiment::meta(&exp);
                let result = $crate::testing::run_quick(&exp, &[$(($key, $value)),*]).await.unwrap();
                $crate::testing::assert_complete(&meta, &result);
            }
        }
    };
}

/// An experiment's notes, read from its `notes.md` beside `Cargo.toml` and filled with the
/// values only a run knows: `harness::notes!(clients = ctx.settings.concurrency.unwrap_or(1))`.
/// The prose lives in the Markdown file, not in lib.rs (which is the technique); see
/// [`fill_notes`] for the format.
#[macro_export]
macro_rules! notes {
    ($($name:ident = $value:expr),* $(,)?) => {
        $crate::fill_notes(
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/notes.md")),
            &[$((stringify!($name), $value.to_string())),*],
        )
    };
}

/// The notes of `text`: one note per paragraph (paragraphs are separated by a blank line, or one
/// of spaces only; CRLF line ends read as LF;
/// a paragraph's lines are joined by one space), headings (`# …`) left out, every `{name}`
/// replaced by the value given for it, `{{` and `}}` written as one brace (a `{` not followed
/// by a name and `}`, as in Go's `User{}`, stays as it is). A placeholder without a value,
/// or a value no placeholder uses, is a mistake in the experiment's code: debug builds (every
/// test) stop on it; a release build leaves the placeholder as written.
pub fn fill_notes(text: &str, values: &[(&str, String)]) -> Vec<String> {
    let mut used = vec![false; values.len()];
    let mut notes = Vec::new();
    let mut paragraphs: Vec<Vec<&str>> = vec![Vec::new()];
    for line in text.lines().map(str::trim) {
        match line {
            "" => paragraphs.push(Vec::new()),
            l if l.starts_with("# ") => {}
            l => paragraphs.last_mut().expect("one at least").push(l),
        }
    }
    for lines in paragraphs {
        if lines.is_empty() {
            continue;
        }
        let joined = lines.join(" ");
        let mut note = String::with_capacity(joined.len());
        let mut rest = joined.as_str();
        while let Some(open) = rest.find('{') {
            note.push_str(&rest[..open].replace("}}", "}"));
            let after = &rest[open + 1..];
            if let Some(escaped) = after.strip_prefix('{') {
                note.push('{');
                rest = escaped;
                continue;
            }
            let name_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            let name = &after[..name_len];
            let closed = after[name_len..].starts_with('}') && !name.is_empty();
            match values.iter().position(|(n, _)| *n == name).filter(|_| closed) {
                Some(i) => {
                    used[i] = true;
                    note.push_str(&values[i].1);
                    rest = &after[name_len + 1..];
                }
                None => {
                    debug_assert!(!closed, "notes: no value for {{{name}}}");
                    note.push('{');
                    rest = after;
                }
            }
        }
        note.push_str(&rest.replace("}}", "}"));
        notes.push(note);
    }
    debug_assert!(used.iter().all(|u| *u), "notes: a value no placeholder uses: {values:?}");
    notes
}

#[cfg(test)]
mod tests {
    use super::fill_notes;

    #[test]
    fn paragraphs_become_notes_with_their_values() {
        let text = "# pg-batch\r\n\r\nOne {n} clients,\r\nwrapped.\n \nGo's http.Server{} and {}, GET /users/{{id}}.\n";
        assert_eq!(
            fill_notes(text, &[("n", "8".into())]),
            vec!["One 8 clients, wrapped.".to_owned(), "Go's http.Server{} and {}, GET /users/{id}.".to_owned()]
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "no value for {clients}")]
    fn a_placeholder_without_a_value_is_a_mistake() {
        fill_notes("{clients} clients", &[]);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a value no placeholder uses")]
    fn a_value_without_a_placeholder_is_a_mistake() {
        fill_notes("no placeholder", &[("clients", "1".into())]);
    }
}
