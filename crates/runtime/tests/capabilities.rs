//! The example agents, built from source, exercise each host capability through the runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::routing::{get, post};
use common::*;
use nexus_host::emit::{AgentEvent, EventSink};
use nexus_host::http::OutboundPolicy;
use nexus_host::llm::{EchoProvider, LlmCapability, OpenAiProvider};
use nexus_host::state::StateCapability;
use nexus_runtime::{RuntimeConfig, TaskEnv, TaskError, TaskResult};

#[tokio::test]
async fn echo_replies() {
    let runtime = runtime(RuntimeConfig::default());
    let echo = load(&runtime, "echo");
    let outcome = run(&runtime, &echo, "hello").await;
    assert_eq!(reply_text(&outcome), "echo: hello");
    assert!(outcome.usage.peak_memory_bytes > 0);
    // Empty input is the agent's own validation: the task is rejected, not failed.
    let rejected = run(&runtime, &echo, "").await;
    assert!(
        matches!(rejected.result, TaskResult::Rejected { .. }),
        "{rejected:?}"
    );
}

#[tokio::test]
async fn counter_keeps_state_per_session_and_is_denied_without_a_grant() {
    let fixture = StateFixture::new().await;
    let runtime = runtime(RuntimeConfig::default());
    let counter = load(&runtime, "counter");
    let env = |session: &str| TaskEnv {
        state: StateCapability::granted(fixture.store.clone(), fixture.scope(session)),
        ..TaskEnv::deny_all()
    };
    for expected in ["count: 1", "count: 2", "count: 3"] {
        let outcome = runtime
            .run(&counter, input_in_session("tick", "s1"), env("s1"))
            .await;
        assert_eq!(reply_text(&outcome), expected);
    }
    let other = runtime
        .run(&counter, input_in_session("tick", "s2"), env("s2"))
        .await;
    assert_eq!(
        reply_text(&other),
        "count: 1",
        "sessions do not share state"
    );
    let reset = runtime
        .run(&counter, input_in_session("reset", "s1"), env("s1"))
        .await;
    assert_eq!(reply_text(&reset), "count: 0");

    let denied = runtime
        .run(
            &counter,
            input_in_session("tick", "s1"),
            TaskEnv::deny_all(),
        )
        .await;
    match &denied.result {
        TaskResult::Failed { error } => {
            assert!(error.to_string().contains("not granted"), "{error}")
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn streamer_streams_events_in_order() {
    let runtime = runtime(RuntimeConfig::default());
    let streamer = load(&runtime, "streamer");
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let env = TaskEnv {
        events: EventSink::new(sender),
        ..TaskEnv::deny_all()
    };
    let outcome = runtime.run(&streamer, input("one two three"), env).await;
    assert!(
        matches!(outcome.result, TaskResult::Completed { .. }),
        "{outcome:?}"
    );
    let mut events = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        events.push(event);
    }
    assert!(
        matches!(events.first(), Some(AgentEvent::Progress { .. })),
        "{events:?}"
    );
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::PartialText { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(streamed.trim(), "one two three");
    let chunks: Vec<bool> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Artifact { last_chunk, .. } => Some(*last_chunk),
            _ => None,
        })
        .collect();
    assert_eq!(chunks, vec![false, true]);
    assert!(outcome.usage.output_bytes >= "one two three".len());
}

#[tokio::test]
async fn summarizer_uses_the_echo_provider_and_meters_tokens() {
    let runtime = runtime(RuntimeConfig::default());
    let summarizer = load(&runtime, "summarizer");
    let env = TaskEnv {
        llm: LlmCapability::granted(Arc::new(EchoProvider)),
        ..TaskEnv::deny_all()
    };
    let outcome = runtime
        .run(&summarizer, input("The cat sat on the mat."), env)
        .await;
    let text = reply_text(&outcome);
    assert!(text.starts_with("echo: "), "{text}");
    assert!(text.contains("The cat sat on the mat."), "{text}");
    assert_eq!(outcome.usage.llm.calls, 1);
    assert!(outcome.usage.llm.prompt_tokens > 0 && outcome.usage.llm.completion_tokens > 0);
}

/// An OpenAI-compatible provider, played by a loopback server speaking the Chat Completions
/// wire format.
#[tokio::test]
async fn summarizer_talks_to_an_openai_compatible_endpoint() {
    async fn completions(
        headers: axum::http::HeaderMap,
        axum::Json(body): axum::Json<serde_json::Value>,
    ) -> axum::Json<serde_json::Value> {
        assert_eq!(headers["authorization"], "Bearer test-key");
        let last = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .cloned()
            .unwrap_or_default();
        axum::Json(serde_json::json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": format!("summary of {} chars", last["content"].as_str().unwrap_or("").len())}}],
            "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}
        }))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let app = axum::Router::new().route("/v1/chat/completions", post(completions));
        axum::serve(listener, app).await
    });
    let provider = OpenAiProvider::new(
        &format!("http://{addr}/v1"),
        Some("test-key".into()),
        "test-model",
    )
    .expect("provider");

    let runtime = runtime(RuntimeConfig::default());
    let summarizer = load(&runtime, "summarizer");
    let env = TaskEnv {
        llm: LlmCapability::granted(Arc::new(provider)),
        ..TaskEnv::deny_all()
    };
    let outcome = runtime.run(&summarizer, input("hello world"), env).await;
    assert!(
        reply_text(&outcome).starts_with("summary of "),
        "{outcome:?}"
    );
    assert_eq!(
        (
            outcome.usage.llm.prompt_tokens,
            outcome.usage.llm.completion_tokens
        ),
        (42, 7)
    );

    let denied = runtime
        .run(&summarizer, input("hello"), TaskEnv::deny_all())
        .await;
    assert!(
        matches!(denied.result, TaskResult::Failed { .. }),
        "{denied:?}"
    );
}

/// A loopback host is reachable only when the node allows private addresses, and then only
/// by a grant naming it.
#[tokio::test]
async fn fetcher_reaches_an_explicitly_granted_loopback_host_only() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let app = axum::Router::new().route("/", get(|| async { "hello from the test server" }));
        axum::serve(listener, app).await
    });
    let url = format!("http://{addr}/");
    let granted = || TaskEnv {
        outbound: OutboundPolicy::new(&[format!("http://{addr}")]).expect("grant"),
        ..TaskEnv::deny_all()
    };

    // The node's default: no private address, however the grant names it.
    let public_only = runtime(RuntimeConfig::default());
    let fetcher = load(&public_only, "fetcher");
    let refused = public_only.run(&fetcher, input(&url), granted()).await;
    match &refused.result {
        TaskResult::Failed {
            error: TaskError::Agent { message },
        } => assert!(message.contains("private or reserved"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    let runtime = runtime(RuntimeConfig {
        allow_private_addresses: true,
        ..RuntimeConfig::default()
    });
    let fetcher = load(&runtime, "fetcher");
    let outcome = runtime.run(&fetcher, input(&url), granted()).await;
    let text = reply_text(&outcome);
    assert!(
        text.contains("200") && text.contains("hello from the test server"),
        "{text}"
    );

    let ungranted = runtime
        .run(&fetcher, input(&url), TaskEnv::deny_all())
        .await;
    assert!(
        matches!(ungranted.result, TaskResult::Failed { .. }),
        "{ungranted:?}"
    );
}

#[tokio::test]
async fn config_values_reach_the_agent() {
    // The summarizer reads `max_tokens` from config; the echo provider ignores it, so check the
    // request the provider sees instead.
    #[derive(Debug)]
    struct Recording(std::sync::Mutex<Option<u32>>);
    #[async_trait::async_trait]
    impl nexus_host::llm::LlmProvider for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        async fn complete(
            &self,
            request: nexus_host::llm::ChatRequest,
        ) -> Result<nexus_host::llm::ChatCompletion, nexus_host::llm::ProviderError> {
            *self.0.lock().expect("lock") = request.max_tokens;
            EchoProvider.complete(request).await
        }
    }
    let recording = Arc::new(Recording(std::sync::Mutex::new(None)));
    let runtime = runtime(RuntimeConfig::default());
    let summarizer = load(&runtime, "summarizer");
    let env = TaskEnv {
        llm: LlmCapability::granted(recording.clone()),
        config: nexus_host::config::ConfigCapability::new(
            BTreeMap::from([("max_tokens".to_owned(), "77".to_owned())]),
            BTreeMap::new(),
        ),
        ..TaskEnv::deny_all()
    };
    let outcome = runtime.run(&summarizer, input("text"), env).await;
    assert!(
        matches!(outcome.result, TaskResult::Completed { .. }),
        "{outcome:?}"
    );
    assert_eq!(*recording.0.lock().expect("lock"), Some(77));
}

#[tokio::test]
async fn invalid_components_are_refused_at_load() {
    let runtime = runtime(RuntimeConfig::default());
    for bytes in [&b""[..], b"not wasm at all", b"\0asm\x01\0\0\0"] {
        assert!(runtime.load(bytes).is_err(), "{bytes:?}");
    }
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk_and_bad_cache_files_are_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = RuntimeConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..RuntimeConfig::default()
    };
    let runtime = runtime(config.clone());
    let bytes = guest("echo");
    runtime.load(&bytes).expect("first load compiles");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let modified = std::fs::metadata(&files[0])
        .and_then(|m| m.modified())
        .expect("mtime");

    // A second runtime (a restart) loads the cached file instead of compiling again.
    let restarted = runtime_again(config.clone());
    let echo = restarted.load(&bytes).expect("load from cache");
    assert_eq!(
        std::fs::metadata(&files[0])
            .and_then(|m| m.modified())
            .expect("mtime"),
        modified
    );
    assert_eq!(
        reply_text(&run(&restarted, &echo, "cached").await),
        "echo: cached"
    );

    // A corrupted cache file is detected and replaced, and components already loaded from it
    // keep working (they were read into memory, not mapped from the file).
    std::fs::write(&files[0], b"garbage").expect("corrupt");
    assert_eq!(
        reply_text(&run(&restarted, &echo, "still loaded").await),
        "echo: still loaded"
    );
    let third = runtime_again(config);
    let echo = third.load(&bytes).expect("recompiles");
    assert_eq!(
        reply_text(&run(&third, &echo, "again").await),
        "echo: again"
    );
    assert_ne!(std::fs::read(&files[0]).expect("cache file"), b"garbage");
}

fn runtime_again(config: RuntimeConfig) -> nexus_runtime::Runtime {
    nexus_runtime::Runtime::new(config).expect("runtime")
}

#[tokio::test]
async fn a_live_instance_serves_several_tasks_with_fresh_budgets() {
    let runtime = runtime(RuntimeConfig {
        limits: nexus_runtime::Limits {
            output_bytes: 64,
            ..nexus_runtime::Limits::default()
        },
        ..RuntimeConfig::default()
    });
    let echo = load(&runtime, "echo");
    let mut instance = runtime
        .instantiate(&echo, TaskEnv::deny_all())
        .await
        .expect("instance");
    // Each call is within the 64-byte output budget; together they are not.
    for i in 0..5 {
        let text = format!("call number {i} {}", "x".repeat(30));
        let outcome = instance.call(input(&text)).await;
        assert_eq!(reply_text(&outcome), format!("echo: {text}"));
    }
}
