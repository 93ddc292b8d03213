//! `nexus:agent/llm`: chat completion through a provider chosen by the platform. Provider keys
//! stay on the host; the agent only sees text and token counts.
//!
//! Providers: [`EchoProvider`] (deterministic and offline, the default) and
//! [`OpenAiProvider`] (any OpenAI-compatible Chat Completions endpoint).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::nexus::agent::llm::{self as wit, LlmError};

/// Largest prompt (all message contents together) sent to a provider.
pub const MAX_PROMPT_BYTES: usize = 1024 * 1024;
/// Most messages in one request.
pub const MAX_MESSAGES: usize = 256;
/// How long one provider call may take before it is abandoned as unavailable.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(120);

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// A provider-neutral completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

/// A provider's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatCompletion {
    pub content: String,
    pub model: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("provider unavailable: {0}")]
    Unavailable(String),
}

/// A source of chat completions.
#[async_trait]
pub trait LlmProvider: Send + Sync + Debug {
    /// Short name for logs and metering (`echo`, `openai`).
    fn name(&self) -> &'static str;
    async fn complete(&self, request: ChatRequest) -> Result<ChatCompletion, ProviderError>;
}

/// Answers `echo: <last user message>`; token counts are word counts. Deterministic, so agent
/// tests and local runs need no network or key.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoProvider;

#[async_trait]
impl LlmProvider for EchoProvider {
    fn name(&self) -> &'static str {
        "echo"
    }

    async fn complete(&self, request: ChatRequest) -> Result<ChatCompletion, ProviderError> {
        let last_user = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map_or("", |m| m.content.as_str());
        let content = format!("echo: {last_user}");
        let words = |text: &str| u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX);
        Ok(ChatCompletion {
            prompt_tokens: request.messages.iter().map(|m| words(&m.content)).sum(),
            completion_tokens: words(&content),
            model: request.model.unwrap_or_else(|| "echo".to_owned()),
            content,
        })
    }
}

/// An OpenAI-compatible Chat Completions endpoint (`POST {base_url}/chat/completions`).
#[derive(Clone)]
pub struct OpenAiProvider {
    base_url: String,
    api_key: Option<String>,
    default_model: String,
    http: reqwest::Client,
}

impl Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("default_model", &self.default_model)
            .finish()
    }
}

impl OpenAiProvider {
    /// A provider at `base_url` (e.g. `https://api.openai.com/v1`).
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        default_model: &str,
    ) -> Result<Self, ProviderError> {
        // An explicit ring configuration: reqwest is built without a crypto provider of its
        // own (see the workspace Cargo.toml).
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::http::tls_config())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            default_model: default_model.to_owned(),
            http,
        })
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
}

#[derive(Deserialize)]
struct WireResponse {
    model: Option<String>,
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
}

#[derive(Deserialize)]
struct WireMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    fn name(&self) -> &'static str {
        "openai"
    }

    async fn complete(&self, request: ChatRequest) -> Result<ChatCompletion, ProviderError> {
        let model = request.model.as_deref().unwrap_or(&self.default_model);
        let body = WireRequest {
            model,
            messages: &request.messages,
            max_tokens: request.max_tokens,
            temperature: request.temperature,
        };
        let mut call = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .json(&body);
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        let response = call
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let detail: String = text.chars().take(300).collect();
            return Err(if status.is_client_error() {
                ProviderError::InvalidRequest(format!("{status}: {detail}"))
            } else {
                ProviderError::Unavailable(format!("{status}: {detail}"))
            });
        }
        let wire: WireResponse = response
            .json()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("unreadable response: {e}")))?;
        let content = wire
            .choices
            .into_iter()
            .next()
            .and_then(|choice| choice.message.content)
            .ok_or_else(|| ProviderError::Unavailable("response has no choices".into()))?;
        let usage = wire.usage.unwrap_or(WireUsage {
            prompt_tokens: 0,
            completion_tokens: 0,
        });
        Ok(ChatCompletion {
            content,
            model: wire.model.unwrap_or_else(|| model.to_owned()),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        })
    }
}

/// Tokens one task used, for metering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LlmUsage {
    pub calls: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// The `llm` context of one task: the provider, or `None` when not granted.
#[derive(Debug)]
pub struct LlmCapability {
    provider: Option<Arc<dyn LlmProvider>>,
    pub usage: LlmUsage,
}

impl LlmCapability {
    pub fn granted(provider: Arc<dyn LlmProvider>) -> Self {
        Self {
            provider: Some(provider),
            usage: LlmUsage::default(),
        }
    }

    pub fn denied() -> Self {
        Self {
            provider: None,
            usage: LlmUsage::default(),
        }
    }
}

impl wit::Host for LlmCapability {
    async fn complete(
        &mut self,
        request: wit::CompletionRequest,
    ) -> Result<wit::Completion, LlmError> {
        let provider = self.provider.clone().ok_or(LlmError::Denied)?;
        if request.messages.is_empty() {
            return Err(LlmError::InvalidRequest("no messages".into()));
        }
        if request.messages.len() > MAX_MESSAGES {
            return Err(LlmError::InvalidRequest(format!(
                "{} messages; the limit is {MAX_MESSAGES}",
                request.messages.len()
            )));
        }
        let prompt_bytes: usize = request.messages.iter().map(|m| m.content.len()).sum();
        if prompt_bytes > MAX_PROMPT_BYTES {
            return Err(LlmError::InvalidRequest(format!(
                "prompt is {prompt_bytes} bytes; the limit is {MAX_PROMPT_BYTES}"
            )));
        }
        let completion = provider
            .complete(ChatRequest {
                model: request.model,
                messages: request
                    .messages
                    .into_iter()
                    .map(|m| ChatMessage {
                        role: m.role,
                        content: m.content,
                    })
                    .collect(),
                max_tokens: request.max_tokens,
                temperature: request.temperature,
            })
            .await
            .map_err(|e| match e {
                ProviderError::InvalidRequest(why) => LlmError::InvalidRequest(why),
                ProviderError::Unavailable(why) => LlmError::Unavailable(why),
            })?;
        self.usage.calls += 1;
        self.usage.prompt_tokens += u64::from(completion.prompt_tokens);
        self.usage.completion_tokens += u64::from(completion.completion_tokens);
        Ok(wit::Completion {
            content: completion.content,
            model: completion.model,
            usage: wit::TokenUsage {
                prompt_tokens: completion.prompt_tokens,
                completion_tokens: completion.completion_tokens,
            },
        })
    }
}

/// Links `nexus:agent/llm`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LlmCapability,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<LlmCapability>>(linker, get)
}
