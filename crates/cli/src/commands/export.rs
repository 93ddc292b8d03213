//! `nexus tenants export`: streams the server's JSON lines to a file or standard output and
//! checks that they end with the `end` record, so a broken export never passes for a whole one.

use std::io::Write;
use std::path::Path;

use futures::StreamExt;
use nexus_api_model::ExportTrailer;

use crate::client::Client;
use crate::exit::CliError;

/// Longest last line kept to check the export's ending: `end` and `error` records are small.
const MAX_TAIL_BYTES: usize = 64 * 1024;

pub async fn run(client: &Client, tenant: &str, file: Option<&Path>) -> Result<(), CliError> {
    let partial = file.map(|file| {
        let mut name = file.as_os_str().to_owned();
        name.push(".partial");
        std::path::PathBuf::from(name)
    });
    let mut out: Box<dyn Write> = match &partial {
        Some(path) => Box::new(std::io::BufWriter::new(private_file(path).map_err(
            |e| CliError::usage(format!("cannot create {}: {e}", path.display())),
        )?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let write_error =
        |e: std::io::Error| CliError::internal(format!("cannot write the export: {e}"));

    let mut body = client
        .download(&["v1", "tenants", tenant, "export"])
        .await?;
    // The last complete line, and the bytes after it.
    let mut last_line: Vec<u8> = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut records: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        out.write_all(&chunk).map_err(write_error)?;
        for byte in chunk.iter().copied() {
            if byte == b'\n' {
                records += 1;
                last_line = std::mem::take(&mut pending);
            } else if pending.len() < MAX_TAIL_BYTES {
                pending.push(byte);
            }
        }
    }
    out.flush().map_err(write_error)?;
    drop(out);

    match serde_json::from_slice::<ExportTrailer>(&last_line) {
        Ok(ExportTrailer::End { .. }) => {
            if let (Some(partial), Some(file)) = (&partial, file) {
                std::fs::rename(partial, file).map_err(|e| {
                    CliError::internal(format!(
                        "cannot rename {} to {}: {e}",
                        partial.display(),
                        file.display()
                    ))
                })?;
                eprintln!(
                    "exported tenant {tenant}: {} records to {}",
                    records.saturating_sub(1),
                    file.display()
                );
            }
            Ok(())
        }
        Ok(ExportTrailer::Error(problem)) => Err(CliError {
            code: CliError::SERVER_FAILED,
            message: format!(
                "the export failed part-way: {} ({}){}",
                problem.detail,
                problem.code,
                kept(partial.as_deref())
            ),
        }),
        _ => Err(CliError {
            code: CliError::UNREACHABLE,
            message: format!(
                "the export ended early, without its end record{}",
                kept(partial.as_deref())
            ),
        }),
    }
}

/// The export holds the tenant's data in the clear (agent state): readable by its owner only.
#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

fn kept(partial: Option<&Path>) -> String {
    partial.map_or_else(String::new, |path| {
        format!("; what arrived is in {}", path.display())
    })
}
