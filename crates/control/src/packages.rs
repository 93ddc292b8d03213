//! Packages: uploaded, validated, compiled once and loaded by digest.

use std::sync::Arc;

use bytes::Bytes;
use nexus_blob::Digest;
use nexus_core::{Caller, NewPackage, Package, Page, PageRequest, TenantId};
use nexus_package::PackageError;
use nexus_runtime::{AgentComponent, Prepared};
use nexus_store::StoreError;

use crate::unpacking::Reservation;
use crate::{Action, ControlError, ControlPlane, audit};

impl ControlPlane {
    /// Validates, compiles and stores a package. Uploading the same bytes again stores nothing
    /// new, but is audited like the first upload; other bytes under the same version are
    /// another build of it (each identified by its digest) until the version is published. Unpacking reserves the node's unpacking
    /// memory (`unpacking`) until the upload ends; when other uploads hold it all for longer
    /// than [`UNPACK_MEMORY_WAIT`](crate::UNPACK_MEMORY_WAIT), the answer is
    /// [`ControlError::Overloaded`].
    pub async fn upload_package(
        &self,
        caller: &Caller,
        tenant: TenantId,
        bytes: Bytes,
    ) -> Result<Package, ControlError> {
        self.authorize(caller, tenant, Action::PackageUpload)
            .await?;
        // Held until the upload ends: the decompressed component lives through compilation.
        let (package, _memory) = self.unpack(bytes.clone()).await?;
        let nexus_package::Package {
            manifest,
            wasm,
            bytes: copy,
            ..
        } = package;
        let size_bytes = copy.len() as u64;
        drop(copy);
        // Compile and link before storing anything: a package whose component does not load is
        // refused whole, and its machine code is cached only once the package is stored.
        let prepared = self.prepare(wasm).await?;
        let digest = self.blobs.put(bytes).await?;
        let reference = manifest.package_ref();
        let digest = digest.to_string();
        // Recorded with the package, a repeated upload too.
        let event = audit::event(
            caller,
            "package.upload",
            format!("packages/{reference}"),
            serde_json::json!({ "digest": digest }),
        );
        let stored = self
            .store
            .put_package(
                tenant,
                NewPackage {
                    reference: reference.clone(),
                    digest,
                    size_bytes,
                    manifest: manifest.to_json(),
                },
                event,
            )
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists { .. } => ControlError::Conflict(format!(
                    "package {reference} is published, and a published version never changes; \
                     give the package a new version (`version` in nexus.toml)"
                )),
                e => e.into(),
            })?;
        let component = keep(prepared).await;
        let limits = limit_overrides(&manifest);
        self.loaded
            .lock()
            .await
            .insert(stored.digest.clone(), Loaded { component, limits });
        Ok(stored)
    }

    /// Uploaded packages, in creation order.
    pub async fn list_packages(
        &self,
        caller: &Caller,
        tenant: TenantId,
        page: PageRequest,
    ) -> Result<Page<Package>, ControlError> {
        self.authorize(caller, tenant, Action::PackageList).await?;
        Ok(self.store.list_packages(tenant, page).await?)
    }

    /// Unpacks an archive on a blocking thread (decompressing up to 128 MiB keeps a core busy
    /// for a while), in its turn and within the node's unpacking memory (`unpacking`). The reservation comes
    /// back with the package: keep it while the package's contents are in use.
    async fn unpack(
        &self,
        bytes: Bytes,
    ) -> Result<(nexus_package::Package, Reservation), ControlError> {
        let _turn = self
            .unpack_memory
            .turn()
            .await
            .map_err(ControlError::Overloaded)?;
        let memory = Arc::clone(&self.unpack_memory);
        tokio::task::spawn_blocking(move || {
            let mut reservation = memory.reservation();
            nexus_package::unpack_within(&bytes, &mut reservation).map(|p| (p, reservation))
        })
        .await
        .map_err(|e| ControlError::Internal(format!("unpacking was interrupted: {e}")))?
        .map_err(|e| match e {
            PackageError::OverBudget(message) => ControlError::Overloaded(message),
            e => ControlError::Package(e),
        })
    }

    /// Compiles (or loads cached machine code for) a component on a blocking thread: Cranelift
    /// takes tens of milliseconds of CPU that must not stall the async workers.
    pub(crate) async fn load(&self, wasm: Vec<u8>) -> Result<AgentComponent, ControlError> {
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || runtime.load(&wasm))
            .await
            .map_err(|e| ControlError::Component(format!("compilation was interrupted: {e}")))?
            .map_err(|e| ControlError::Component(e.to_string()))
    }

    /// Like [`load`](Self::load), without writing to the compiled-component cache yet.
    async fn prepare(&self, wasm: Vec<u8>) -> Result<Prepared, ControlError> {
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || runtime.prepare(&wasm))
            .await
            .map_err(|e| ControlError::Component(format!("compilation was interrupted: {e}")))?
            .map_err(|e| ControlError::Component(e.to_string()))
    }

    /// The loaded component of a package and its manifest's limits, loading it from the blob
    /// store on first use.
    pub(crate) async fn component(&self, digest: &str) -> Result<Loaded, ControlError> {
        if let Some(loaded) = self.loaded.lock().await.get(digest) {
            return Ok(loaded.clone());
        }
        let digest_value: Digest = digest
            .parse()
            .map_err(|e: nexus_blob::InvalidDigest| StoreError::Corrupt(e.to_string()))?;
        let bytes = self.blobs.get(&digest_value).await?;
        let (package, _memory) = self.unpack(bytes).await?;
        let limits = limit_overrides(&package.manifest);
        let component = self.load(package.wasm).await?;
        let loaded = Loaded { component, limits };
        self.loaded
            .lock()
            .await
            .insert(digest.to_owned(), loaded.clone());
        Ok(loaded)
    }
}

/// Caches a stored package's machine code, on a blocking thread (it writes a file of
/// megabytes). A failure costs only a recompilation after a restart, so it is logged rather
/// than returned: the package is stored already.
async fn keep(prepared: Prepared) -> AgentComponent {
    let component = prepared.component().clone();
    match tokio::task::spawn_blocking(move || prepared.keep()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot cache a compiled component"),
        Err(e) => tracing::warn!(error = %e, "caching a compiled component was interrupted"),
    }
    component
}

/// A package ready to run: its compiled component and the limits its manifest asks for.
#[derive(Clone)]
pub(crate) struct Loaded {
    pub(crate) component: AgentComponent,
    pub(crate) limits: nexus_runtime::LimitOverrides,
}

/// The runtime limits a manifest's `[limits]` ask for.
fn limit_overrides(manifest: &nexus_package::Manifest) -> nexus_runtime::LimitOverrides {
    let limits = &manifest.limits;
    nexus_runtime::LimitOverrides {
        memory_bytes: limits.memory_mib.map(|mib| {
            usize::try_from(mib)
                .unwrap_or(usize::MAX)
                .saturating_mul(1024 * 1024)
        }),
        deadline: limits
            .timeout_secs
            .map(|secs| std::time::Duration::from_secs(u64::from(secs))),
        fuel: limits.fuel,
    }
}
