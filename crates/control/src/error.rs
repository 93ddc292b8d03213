//! The control plane's errors and their stable codes.

use nexus_core::ErrorCode;
use nexus_store::StoreError;

/// What went wrong in a control-plane operation. Every protocol binding (REST, A2A JSON-RPC,
/// A2A HTTP+JSON, MCP) maps it through [`code`](Self::code) with one exhaustive `match`.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid package: {0}")]
    Package(#[from] nexus_package::PackageError),
    #[error("blob storage: {0}")]
    Blob(#[from] nexus_blob::BlobError),
    /// The component does not compile or link against the platform.
    #[error("invalid agent component: {0}")]
    Component(String),
    /// A grant the manifest does not declare, or an unknown capability.
    #[error("grant refused: {0}")]
    Grant(String),
    /// A deployment would grant what the manifest newly requests, and the deployer has not
    /// confirmed it (see `grants`).
    #[error("grants not confirmed: {0}")]
    GrantsUnconfirmed(String),
    /// An agent has no revision of that number (the message names the agent and the
    /// revisions it has).
    #[error("{0}")]
    RevisionNotFound(String),
    /// Bad input that is not about grants (e.g. an empty message).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The request conflicts with the resource's current state.
    #[error("{0}")]
    Conflict(String),
    /// The credentials are missing, unknown, expired or revoked.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may see the resource but not do this to it (a role or a policy forbids it).
    #[error("forbidden: {0}")]
    Denied(String),
    /// Too much of something at once on this node (e.g. password checks); retry shortly.
    #[error("{0}")]
    Overloaded(String),
    /// A bug or a crash inside the control plane; details are in the server log.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ControlError {
    /// The stable code a client sees for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Store(e) => store_code(e),
            // Not the package's fault: the node had no memory to unpack it (`unpacking`).
            Self::Package(nexus_package::PackageError::OverBudget(_)) => ErrorCode::Overloaded,
            Self::Package(_) | Self::Component(_) => ErrorCode::InvalidPackage,
            Self::Grant(_) => ErrorCode::GrantRefused,
            Self::GrantsUnconfirmed(_) => ErrorCode::GrantsUnconfirmed,
            Self::RevisionNotFound(_) => ErrorCode::NotFound,
            Self::Invalid(_) => ErrorCode::ValidationFailed,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Denied(_) => ErrorCode::Forbidden,
            Self::Overloaded(_) => ErrorCode::Overloaded,
            Self::Blob(_) | Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Whether the details belong in the server log only (the client gets the code).
    pub fn is_internal(&self) -> bool {
        self.code() == ErrorCode::Internal
    }
}

/// The stable code of a storage error.
pub fn store_code(error: &StoreError) -> ErrorCode {
    match error {
        StoreError::NotFound { .. } => ErrorCode::NotFound,
        StoreError::AlreadyExists { .. } | StoreError::TaskEnded(_) => ErrorCode::Conflict,
        StoreError::IllegalTransition(_) => ErrorCode::IllegalTransition,
        StoreError::InvalidCursor(_) => ErrorCode::InvalidParameter,
        StoreError::TooMany { .. } => ErrorCode::ValidationFailed,
        StoreError::Unavailable(_) => ErrorCode::Unavailable,
        StoreError::Corrupt(_) | StoreError::Backend(_) => ErrorCode::Internal,
    }
}
