//! pg-partitioning's tests: both layouts answer alike and hold the same rows through retire
//! and restore; the calendar and the generator.

use super::*;

/// No layout wins by doing less: the one table and the partitions answer every query
/// with the same rows.
#[tokio::test(flavor = "current_thread")]
async fn both_layouts_return_the_same_rows() {
    let exp = PgPartitioning::new();
    let ctx = harness::testing::set_up(&exp, &[("pg-partitioning.rows_per_month", "400")]).await;
    let months = 4;
    exp.setup_point(&ctx, &SweepPoint { label: months.to_string(), value: months as f64 }).await.unwrap();
    let client = ctx.env.postgres().unwrap().connect().await.unwrap();
    let (single, part) = (single(), part());
    let users: Vec<String> = client
        .query(&format!("SELECT DISTINCT user_id::text FROM {single}.audit_logs ORDER BY 1 LIMIT 5"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| format!("'{}'::uuid", r.get::<_, String>(0)))
        .collect();
    assert_eq!(users.len(), 5);
    let since = format!("{}::timestamptz", literal_ts(month_start_us(months) - RECENT_WINDOW_US));
    let mut nonempty = 0;
    let ts = |us: i64| format!("{}::timestamptz", literal_ts(us));
    for (u, user) in users.iter().enumerate() {
        let from = month_start_us(1) + u as i64 * 86_400_000_000;
        let week = vec![ts(from), ts(from + 7 * 86_400_000_000)];
        let month = vec![ts(month_start_us(u as i64 % months)), ts(month_start_us(u as i64 % months + 1))];
        for (name, sql, params) in [
            ("month-report", MONTH_REPORT_SQL, month),
            ("week-range", WEEK_RANGE_SQL, week),
            ("user-recent", USER_RECENT_SQL, vec![user.clone()]),
            ("user-recent-30d", USER_RECENT_30D_SQL, vec![user.clone(), since.clone()]),
        ] {
            client.batch_execute(&format!("SET search_path = {single}")).await.unwrap();
            let single = plan::text_rows(&client, sql, &params).await.unwrap();
            client.batch_execute(&format!("SET search_path = {part}")).await.unwrap();
            let partitioned = plan::text_rows(&client, sql, &params).await.unwrap();
            assert_eq!(single, partitioned, "{name} for user {user}");
            nonempty += usize::from(!single.is_empty());
        }
    }
    assert!(nonempty >= 15, "the queries found rows ({nonempty} of 20 non-empty)");
    exp.checks(&ctx).await.unwrap();
}

/// The layouts hold the same rows once loaded (the run's check says so) and again after
/// each retires its oldest month and puts it back, twice over; a restore that lost or
/// doubled a row would fail the run's sample, and this comparison.
#[tokio::test(flavor = "current_thread")]
async fn both_layouts_hold_the_same_rows_after_each_retire_and_restore() {
    let exp = PgPartitioning::new();
    let ctx = harness::testing::set_up(&exp, &[("pg-partitioning.rows_per_month", "300")]).await;
    let checks = exp.setup_point(&ctx, &SweepPoint { label: "3".into(), value: 3.0 }).await.unwrap();
    let same = checks.iter().find(|c| c.name == "same rows as single").expect("the check ran");
    assert_eq!(same.ok, Some(true), "{same:?}");
    let client = ctx.env.postgres().unwrap().connect().await.unwrap();
    let all = |layout: Layout| {
        let client = &client;
        async move { fingerprint(client, &format!("{}.audit_logs", layout.schema()), None).await.unwrap() }
    };
    let before = all(Layout::Single).await;
    assert_eq!(before, all(Layout::Partitioned).await);
    assert!(before.starts_with("900/"), "{before}");
    for _ in 0..2 {
        for layout in LAYOUTS {
            let sample = retire(&ctx, layout).await.unwrap();
            assert!(sample.metrics["latency_p50_us"] > 0.0);
        }
        assert_eq!(all(Layout::Single).await, before);
        assert_eq!(all(Layout::Partitioned).await, before);
    }
    exp.checks(&ctx).await.unwrap();
}

#[test]
fn month_boundaries_are_calendar_months() {
    assert_eq!(literal_ts(month_start_us(0)), "'2024-01-01 00:00:00.000000+00'");
    assert_eq!(literal_ts(month_start_us(2)), "'2024-03-01 00:00:00.000000+00'");
    assert_eq!(literal_ts(month_start_us(14)), "'2025-03-01 00:00:00.000000+00'");
    assert_eq!(partition_name(13), "audit_logs_2025_02");
    assert_eq!(days_from_civil(1970, 1, 1), 0);
}

#[test]
fn generator_stays_in_its_months_and_in_time_order() {
    let mut gen = AuditGenerator::new(SEED, 500);
    let mut out = String::new();
    for _ in 0..1500 {
        gen.next_row(&mut out);
    }
    let stamps: Vec<&str> = out.lines().map(|l| l.split('\t').nth(5).unwrap()).collect();
    assert_eq!(stamps.len(), 1500);
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
    assert!(stamps[0].starts_with("2024-01") && stamps[499].starts_with("2024-01"));
    assert!(stamps[500].starts_with("2024-02") && stamps[1499].starts_with("2024-03"));
    assert!(out.lines().all(|l| l.split('\t').count() == 6));
}

#[test]
fn actions_cover_every_draw() {
    let total: f64 = ACTIONS.iter().map(|(_, s)| s).sum();
    assert!((total - 1.0).abs() < 1e-9);
    assert_eq!(action(0.0), "login");
    assert_eq!(action(0.999_999), "delete_key");
}
