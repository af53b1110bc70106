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
