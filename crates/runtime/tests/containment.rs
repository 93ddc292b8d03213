//! Hostile guests are contained: each breach ends its own task with a specific error, and the
//! runtime keeps serving other tasks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

mod common;

use std::time::Duration;

use common::*;
use nexus_runtime::{Limits, RuntimeConfig, TaskError, TaskResult};

fn config(limits: Limits) -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: None,
        max_instances: 16,
        limits,
        allow_private_addresses: false,
    }
}

fn small_limits() -> Limits {
    Limits {
        memory_bytes: 32 * 1024 * 1024,
        deadline: Duration::from_millis(500),
        fuel: None,
        output_bytes: 1024 * 1024,
        log_bytes: 256 * 1024,
        slice_ticks: nexus_runtime::limits::DEFAULT_SLICE_TICKS,
    }
}

#[tokio::test]
async fn each_breach_ends_with_its_own_error_and_the_node_stays_healthy() {
    let runtime = runtime(config(small_limits()));
    let hostile = load(&runtime, "hostile");
    let cases = [
        ("loop", "timeout"),
        ("memory", "memory_limit"),
        ("recurse", "stack_overflow"),
        ("flood", "output_limit"),
        ("big-reply", "output_limit"),
        ("log-flood", "log_limit"),
        ("panic", "trap"),
    ];
    for (attack, expected) in cases {
        let outcome = run(&runtime, &hostile, attack).await;
        assert_eq!(error_code(&outcome), expected, "{attack}: {outcome:?}");
        // The same runtime, and the same component, still serve a normal task.
        assert_eq!(
            reply_text(&run(&runtime, &hostile, "hello").await),
            "ok",
            "after {attack}"
        );
    }
}

#[tokio::test]
async fn a_trap_carries_the_panic_message_and_a_backtrace() {
    let runtime = runtime(config(small_limits()));
    let hostile = load(&runtime, "hostile");
    let outcome = run(&runtime, &hostile, "panic").await;
    let TaskResult::Failed {
        error: TaskError::Trap { message, backtrace },
    } = &outcome.result
    else {
        panic!("expected a trap, got {outcome:?}");
    };
    assert!(message.contains("panicked on purpose"), "{message}");
    assert!(
        backtrace
            .iter()
            .any(|frame| frame.contains("core::panicking::panic_fmt")),
        "frames are demangled: {backtrace:?}"
    );
}

#[tokio::test]
async fn fuel_budget_stops_cpu_bound_guests() {
    let runtime = runtime(config(Limits {
        fuel: Some(50_000_000),
        deadline: Duration::from_secs(30),
        ..small_limits()
    }));
    let hostile = load(&runtime, "hostile");
    let outcome = run(&runtime, &hostile, "loop").await;
    assert_eq!(error_code(&outcome), "fuel_exhausted", "{outcome:?}");
    assert!(outcome.usage.fuel_consumed >= Some(50_000_000));
    let normal = run(&runtime, &hostile, "hi").await;
    assert_eq!(reply_text(&normal), "ok");
    assert!(
        normal
            .usage
            .fuel_consumed
            .is_some_and(|f| f > 0 && f < 50_000_000)
    );
}

/// On a single-threaded executor, a spinning guest must yield: the normal task beside it
/// finishes while the spinner is still running, not after it is killed.
#[tokio::test(flavor = "current_thread")]
async fn a_cpu_bound_guest_does_not_starve_its_neighbour() {
    let runtime = runtime(config(Limits {
        deadline: Duration::from_secs(2),
        ..small_limits()
    }));
    let hostile = load(&runtime, "hostile");
    let echo = load(&runtime, "echo");
    let spinner = run(&runtime, &hostile, "loop");
    let neighbour = async {
        // Let the spinner start first.
        tokio::task::yield_now().await;
        run(&runtime, &echo, "still here").await
    };
    tokio::pin!(spinner);
    tokio::select! {
        biased;
        outcome = &mut spinner => panic!("the spinner ended before its neighbour: {outcome:?}"),
        outcome = neighbour => {
            assert_eq!(reply_text(&outcome), "echo: still here");
        }
    }
    // The spinner still ends at its own deadline.
    assert_eq!(error_code(&spinner.await), "timeout");
}

#[tokio::test]
async fn outbound_requests_to_ungranted_or_private_hosts_are_refused() {
    use nexus_host::http::OutboundPolicy;
    let runtime = runtime(config(small_limits()));
    let hostile = load(&runtime, "hostile");
    let cases: &[(&[&str], &str, &str)] = &[
        // (grants, url, expected error text)
        (&[], "https://example.com/", "not granted"),
        (
            &["https://example.org"],
            "https://example.com/",
            "not granted",
        ),
        (
            &["http://*:*"],
            "http://127.0.0.1:9/",
            "private or reserved",
        ),
        (&["http://*:*"], "http://10.1.2.3/", "private or reserved"),
        (
            &["http://*:*"],
            "http://169.254.169.254/latest/meta-data/",
            "private or reserved",
        ),
        (
            &["http://*:*"],
            "http://localhost:9/",
            "private or reserved",
        ),
        (&[], "http://127.0.0.1:9/", "not granted"),
        // Named exactly, but the node does not allow private addresses.
        (
            &["http://127.0.0.1:9"],
            "http://127.0.0.1:9/",
            "private or reserved",
        ),
        (
            &["http://localhost:9"],
            "http://localhost:9/",
            "private or reserved",
        ),
    ];
    for (grants, url, expected) in cases {
        let mut env = nexus_runtime::TaskEnv::deny_all();
        env.outbound = OutboundPolicy::new(grants).expect("grants");
        let outcome = runtime
            .run(&hostile, input(&format!("fetch {url}")), env)
            .await;
        match &outcome.result {
            TaskResult::Failed {
                error: TaskError::Agent { message },
            } => {
                assert!(
                    message.contains(expected),
                    "{url} with {grants:?}: {message}"
                );
            }
            other => panic!("{url} with {grants:?}: expected a refusal, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn live_instances_are_capped_and_tasks_queue_for_a_slot() {
    let runtime = runtime(RuntimeConfig {
        max_instances: 2,
        ..config(small_limits())
    });
    let echo = load(&runtime, "echo");
    let texts: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
    let tasks: Vec<_> = texts
        .iter()
        .map(|text| run(&runtime, &echo, text))
        .collect();
    let outcomes = futures::future::join_all(tasks).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_eq!(reply_text(outcome), format!("echo: n{i}"));
    }
}

/// A task waits for an instance slot no longer than its deadline, so tasks holding every slot
/// (say, agents waiting on agents they called) cannot leave others waiting for ever.
#[tokio::test]
async fn a_task_waits_for_a_slot_no_longer_than_its_deadline() {
    let runtime = runtime(RuntimeConfig {
        max_instances: 1,
        ..config(Limits {
            deadline: Duration::from_millis(300),
            ..small_limits()
        })
    });
    let echo = load(&runtime, "echo");
    let holder = runtime
        .instantiate(&echo, nexus_runtime::TaskEnv::deny_all())
        .await
        .unwrap();
    let outcome = run(&runtime, &echo, "hi").await;
    assert_eq!(error_code(&outcome), "node_at_capacity", "{outcome:?}");
    drop(holder);
    assert_eq!(reply_text(&run(&runtime, &echo, "hi").await), "echo: hi");
}
