//! What `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` says about a query: the plan's node chain,
//! the rows the executor read and the buffers it touched.

use serde_json::Value;
use tokio_postgres::Client;

/// The parts of an analysed plan the experiments record.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSummary {
    /// The chain of nodes from the top, following the first child, with the index or relation
    /// each scan used: `Limit › Index Scan using users_status_created_at_idx`.
    pub nodes: String,
    /// Rows that came out of scan nodes plus rows filters removed (× loops): the work done.
    pub rows_scanned: f64,
    /// 8 kB shared buffers hit or read.
    pub buffers: f64,
    /// The executor's own time, in milliseconds.
    pub execution_ms: f64,
    /// Table scans the executor actually ran (a partition pruned at run time is not counted).
    pub relations_scanned: usize,
}

/// Summarise the JSON of `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`.
pub fn summarize(plan: &Value) -> PlanSummary {
    fn walk(node: &Value, rows: &mut f64, relations: &mut usize) {
        let ty = node.get("Node Type").and_then(Value::as_str).unwrap_or("");
        let loops = node.get("Actual Loops").and_then(Value::as_f64).unwrap_or(1.0);
        if ty.contains("Scan") && ty != "Bitmap Index Scan" {
            *rows += node.get("Actual Rows").and_then(Value::as_f64).unwrap_or(0.0) * loops;
            if loops > 0.0 && node.get("Relation Name").is_some() {
                *relations += 1;
            }
        }
        *rows += node.get("Rows Removed by Filter").and_then(Value::as_f64).unwrap_or(0.0) * loops;
        *rows += node.get("Rows Removed by Index Recheck").and_then(Value::as_f64).unwrap_or(0.0) * loops;
        for child in node.get("Plans").and_then(Value::as_array).into_iter().flatten() {
            walk(child, rows, relations);
        }
    }
    let top = &plan[0]["Plan"];
    let (mut rows, mut relations_scanned) = (0.0, 0);
    walk(top, &mut rows, &mut relations_scanned);
    let buffers = top.get("Shared Hit Blocks").and_then(Value::as_f64).unwrap_or(0.0)
        + top.get("Shared Read Blocks").and_then(Value::as_f64).unwrap_or(0.0);
    let mut chain = Vec::new();
    let mut node = Some(top);
    while let Some(n) = node {
        let ty = n.get("Node Type").and_then(Value::as_str).unwrap_or("?");
        let label = match (n.get("Index Name").and_then(Value::as_str), n.get("Relation Name").and_then(Value::as_str))
        {
            (Some(index), _) => format!("{ty} using {index}"),
            (None, Some(rel)) => format!("{ty} on {rel}"),
            (None, None) => ty.to_owned(),
        };
        chain.push(label);
        node = n.get("Plans").and_then(Value::as_array).and_then(|c| c.first());
    }
    PlanSummary {
        nodes: chain.join(" › "),
        rows_scanned: rows,
        buffers,
        execution_ms: plan[0].get("Execution Time").and_then(Value::as_f64).unwrap_or(0.0),
        relations_scanned,
    }
}

/// Replace `$n` by the n-th SQL literal (last first, so `$1` does not eat `$10`), comment
/// lines dropped: a parameterised statement made explainable.
pub fn inline(sql: &str, literals: &[String]) -> String {
    let mut out: String = sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    for (i, v) in literals.iter().enumerate().rev() {
        out = out.replace(&format!("${}", i + 1), v);
    }
    out
}

/// A string as a SQL literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Run `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` of `sql` with its `$n` replaced by `literals`.
pub async fn explain(client: &Client, sql: &str, literals: &[String]) -> anyhow::Result<PlanSummary> {
    let explain = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {}", inline(sql, literals));
    let plan: Value = client.query_one(explain.as_str(), &[]).await?.get(0);
    Ok(summarize(&plan))
}

/// The plan of `sql` as a prepared statement runs it, which is what a load worker times: the
/// statement is prepared, executed five times with `literals` (Postgres plans the first five
/// executions for their parameters, then keeps a generic plan if it is not costlier), then
/// `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE`. A generic plan prunes partitions when it
/// runs, not when it is planned; `explain` with literals shows a custom plan instead.
pub async fn explain_prepared(client: &Client, sql: &str, literals: &[String]) -> anyhow::Result<PlanSummary> {
    let body: String = sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    client.batch_execute("DEALLOCATE ALL").await?;
    client.batch_execute(&format!("PREPARE perflab_explain AS {body}")).await?;
    let execute = format!("EXECUTE perflab_explain({})", literals.join(", "));
    for _ in 0..5 {
        client.batch_execute(&execute).await?;
    }
    let plan: Value =
        client.query_one(format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}").as_str(), &[]).await?.get(0);
    client.batch_execute("DEALLOCATE perflab_explain").await?;
    Ok(summarize(&plan))
}

/// The rows of `sql` with its `$n` replaced by `literals`, as text, sorted: what two ways of
/// storing the same data must both answer (a GROUP BY has no order of its own).
pub async fn text_rows(client: &Client, sql: &str, literals: &[String]) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    let msgs = client.simple_query(&inline(sql, literals)).await?;
    let mut rows: Vec<Vec<Option<String>>> = msgs
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect();
    rows.sort();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_replaces_high_placeholders_first() {
        let params: Vec<String> = (1..=10).map(|i| format!("v{i}")).collect();
        assert_eq!(inline("-- c\nSELECT $1, $10", &params), "SELECT v1, v10");
        assert_eq!(literal("o'k"), "'o''k'");
    }

    #[test]
    fn summary_of_a_known_plan() {
        let plan = serde_json::json!([{
            "Plan": {
                "Node Type": "Limit", "Actual Rows": 20.0, "Actual Loops": 1.0,
                "Shared Hit Blocks": 7.0, "Shared Read Blocks": 3.0,
                "Plans": [{
                    "Node Type": "Sort", "Actual Rows": 20.0, "Actual Loops": 1.0,
                    "Plans": [{
                        "Node Type": "Seq Scan", "Relation Name": "users", "Actual Rows": 500.0,
                        "Actual Loops": 2.0, "Rows Removed by Filter": 100.0
                    }, {
                        "Node Type": "Index Scan", "Relation Name": "users_old", "Index Name": "i",
                        "Actual Rows": 0.0, "Actual Loops": 0.0
                    }]
                }]
            },
            "Execution Time": 1.25
        }]);
        let s = summarize(&plan);
        assert_eq!(s.nodes, "Limit › Sort › Seq Scan on users");
        assert_eq!(s.rows_scanned, 1200.0);
        assert_eq!(s.buffers, 10.0);
        assert_eq!(s.execution_ms, 1.25);
        assert_eq!(s.relations_scanned, 1, "a scan that never ran is not counted");
    }
}
