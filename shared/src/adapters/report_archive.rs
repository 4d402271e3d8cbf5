//! Where monthly reports are kept ([`ReportArchive`]): a directory on the embedded default,
//! S3 (SSE-S3, under a prefix of the bodies bucket) on AWS.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;

use crate::steps::deliver_report::ReportArchive;

/// Keys are relative paths of plain segments (`<tenant>/<YYYY-MM>/<file>`): no empty, `.` or
/// `..` segment, no backslash, no control character, so a key can never leave the archive's
/// root (a directory, or the S3 prefix the function's role may write).
fn check_key(key: &str) -> anyhow::Result<()> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && !key.chars().any(|c| c == '\\' || c.is_control());
    if !ok {
        bail!("report archive key {key:?} is not a relative path of plain segments");
    }
    Ok(())
}

/// A directory (the embedded default: `<state dir>/reports`). Writes go to a temporary file
/// in the same directory and are renamed over the old one, so a reader never sees half a file.
#[derive(Debug, Clone)]
pub struct FsReportArchive {
    root: PathBuf,
}

impl FsReportArchive {
    pub fn new(root: impl Into<PathBuf>) -> FsReportArchive {
        FsReportArchive { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> anyhow::Result<PathBuf> {
        check_key(key)?;
        Ok(key.split('/').fold(self.root.clone(), |p, s| p.join(s)))
    }
}

#[async_trait]
impl ReportArchive for FsReportArchive {
    async fn put(&self, key: &str, body: &[u8], _content_type: &str) -> anyhow::Result<()> {
        let path = self.path(key)?;
        let body = body.to_vec();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let dir = path
                .parent()
                .ok_or_else(|| anyhow!("{} has no directory", path.display()))?;
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
            let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
            std::fs::write(&tmp, &body).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))
        })
        .await
        .map_err(|e| anyhow!("report archive write task failed: {e}"))?
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
        })
        .await
        .map_err(|e| anyhow!("report archive read task failed: {e}"))?
    }

    fn location(&self, key: &str) -> String {
        self.path(key)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| key.to_string())
    }
}

/// S3: objects `<prefix><key>` in one bucket, each written with SSE-S3
/// (`ServerSideEncryption::Aes256`, whatever the bucket's default) and its content type, so a
/// downloaded `report.html` opens as a page. The function's role may read and write only
/// under the prefix, and list only under it (see [`ReportArchive::get`] below).
#[cfg(feature = "aws")]
#[derive(Debug, Clone)]
pub struct S3ReportArchive {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

#[cfg(feature = "aws")]
impl S3ReportArchive {
    /// The default prefix, the one template.yaml's policy allows.
    pub const DEFAULT_PREFIX: &'static str = "reports/";

    /// `prefix` `None` → [`Self::DEFAULT_PREFIX`]; a prefix without a trailing `/` gets one.
    pub fn new(client: aws_sdk_s3::Client, bucket: &str, prefix: Option<&str>) -> S3ReportArchive {
        let mut prefix = prefix
            .map(|p| p.trim_start_matches('/').to_string())
            .unwrap_or_else(|| Self::DEFAULT_PREFIX.to_string());
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        S3ReportArchive {
            client,
            bucket: bucket.to_string(),
            prefix,
        }
    }

    pub fn object_key(&self, key: &str) -> anyhow::Result<String> {
        check_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }
}

#[cfg(feature = "aws")]
#[async_trait]
impl ReportArchive for S3ReportArchive {
    async fn put(&self, key: &str, body: &[u8], content_type: &str) -> anyhow::Result<()> {
        let k = self.object_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&k)
            .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
            .content_type(content_type)
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "S3 PutObject {k}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            })?;
        Ok(())
    }

    /// Lists the key first: S3 answers a GetObject of a missing key with 403 unless the
    /// caller may list the bucket, and the role may list only the prefix (`s3:prefix`
    /// condition), which a GetObject's request does not carry. One extra request per read,
    /// a few per tenant and month.
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let k = self.object_key(key)?;
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&k)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "S3 ListObjectsV2 {k}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            })?;
        // Keys sort as text, so the exact key comes before every longer one it prefixes.
        if !listed
            .contents()
            .iter()
            .any(|o| o.key() == Some(k.as_str()))
        {
            return Ok(None);
        }
        let o = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&k)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    return Ok(None);
                }
                return Err(anyhow!(
                    "S3 GetObject {k}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                ));
            }
        };
        let bytes = o
            .body
            .collect()
            .await
            .map_err(|e| anyhow!("S3 body {k}: {e}"))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}{key}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_root() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/./b",
            "a\\b",
            "a/b\n",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        check_key("kaede-shoji/2026-11/report.html").unwrap();
    }

    #[tokio::test]
    async fn fs_archive_round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let a = FsReportArchive::new(dir.path().join("reports"));
        assert_eq!(a.get("t/2026-11/comment.txt").await.unwrap(), None);
        a.put("t/2026-11/report.html", b"one", "text/html")
            .await
            .unwrap();
        a.put("t/2026-11/report.html", b"two", "text/html")
            .await
            .unwrap();
        assert_eq!(
            a.get("t/2026-11/report.html").await.unwrap().as_deref(),
            Some(&b"two"[..])
        );
        let names: Vec<_> = std::fs::read_dir(dir.path().join("reports/t/2026-11"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["report.html"], "no temporary file left behind");
        assert!(a.put("../escape", b"x", "text/plain").await.is_err());
    }
}
