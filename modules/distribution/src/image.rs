//! OCI images assembled from files without a container engine: one uncompressed tar layer per
//! [`Layer`], an image config, a manifest, pushed with our own [`Registry`] client or written
//! as an OCI archive (`ctr images import` reads it).

use bytes::Bytes;
use serde_json::{Value, json};

use crate::client::{Manifest, Registry, RegistryError, sha256};

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Uncompressed: the layers are small, and a tar's digest is then also its diff ID.
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// Why an image could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A path a tar header cannot hold.
    #[error("path {path:?} does not fit a tar header (at most 255 bytes, split at a slash)")]
    PathTooLong {
        /// The path.
        path: String,
    },
    /// A pushed blob or manifest was refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// One layer: a tar archive (ustar) built in memory, entries in the order added.
#[derive(Debug, Default)]
pub struct Layer {
    tar: Vec<u8>,
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A directory owned by `owner` (uid, gid).
    pub fn directory(
        &mut self,
        path: &str,
        mode: u32,
        owner: (u32, u32),
    ) -> Result<(), ImageError> {
        self.entry(path, mode, owner, b'5', "", &[])
    }

    /// A regular file owned by root.
    pub fn file(&mut self, path: &str, mode: u32, contents: &[u8]) -> Result<(), ImageError> {
        self.entry(path, mode, (0, 0), b'0', "", contents)
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), ImageError> {
        self.entry(path, 0o777, (0, 0), b'2', target, &[])
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        (uid, gid): (u32, u32),
        kind: u8,
        link: &str,
        contents: &[u8],
    ) -> Result<(), ImageError> {
        let too_long = || ImageError::PathTooLong { path: path.to_owned() };
        let (prefix, name) = split_path(path).ok_or_else(too_long)?;
        if link.len() > 100 {
            return Err(ImageError::PathTooLong { path: link.to_owned() });
        }
        let mut header = [0u8; 512];
        let mut put = |offset: usize, field: &[u8]| {
            header[offset..offset + field.len()].copy_from_slice(field);
        };
        put(0, name.as_bytes());
        put(100, format!("{mode:07o}\0").as_bytes());
        put(108, format!("{uid:07o}\0").as_bytes());
        put(116, format!("{gid:07o}\0").as_bytes());
        put(124, format!("{:011o}\0", contents.len()).as_bytes());
        put(136, b"00000000000\0"); // mtime 0: the same files make the same digest
        put(148, b"        "); // the checksum counts its own field as spaces
        put(156, &[kind]);
        put(157, link.as_bytes());
        put(257, b"ustar\x0000");
        put(345, prefix.as_bytes());
        let checksum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
        self.tar.extend_from_slice(&header);
        self.tar.extend_from_slice(contents);
        self.tar.resize(self.tar.len().next_multiple_of(512), 0);
        Ok(())
    }

    /// The archive, with its two closing zero blocks.
    pub fn finish(mut self) -> Bytes {
        self.tar.resize(self.tar.len() + 1024, 0);
        Bytes::from(self.tar)
    }
}

/// A path as ustar's prefix (up to 155 bytes) and name (up to 100), split at a slash.
fn split_path(path: &str) -> Option<(&str, &str)> {
    if path.len() <= 100 {
        return Some(("", path));
    }
    path.match_indices('/')
        .map(|(at, _)| (&path[..at], &path[at + 1..]))
        .find(|(prefix, name)| prefix.len() <= 155 && name.len() <= 100 && !name.is_empty())
}

/// An image: its config's `config` object (user, entrypoint, environment, ...) and its layers.
#[derive(Debug)]
pub struct Image {
    /// The runtime settings, as the OCI image config's `config` field has them (`User`,
    /// `Entrypoint`, `Cmd`, `Env`, `ExposedPorts`, `WorkingDir`).
    pub settings: Value,
    /// The layers, bottom first.
    pub layers: Vec<Bytes>,
}

impl Image {
    /// The image config document.
    pub fn config(&self) -> Bytes {
        let diff_ids: Vec<String> = self.layers.iter().map(|l| sha256(l)).collect();
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": self.settings,
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        Bytes::from(config.to_string())
    }

    /// The manifest of the image whose config is `config`.
    fn manifest(&self, config: &Bytes) -> Manifest {
        let descriptor = |media_type: &str, blob: &Bytes| json!({ "mediaType": media_type, "digest": sha256(blob), "size": blob.len() });
        let layers: Vec<Value> = self.layers.iter().map(|l| descriptor(LAYER_TYPE, l)).collect();
        let bytes = Bytes::from(
            json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": descriptor(CONFIG_TYPE, config),
                "layers": layers,
            })
            .to_string(),
        );
        Manifest { digest: sha256(&bytes), bytes, media_type: MANIFEST_TYPE.to_owned() }
    }

    /// Pushes the blobs and the manifest, tagged `tag`; returns the manifest's digest.
    pub async fn push(
        &self,
        registry: &Registry,
        repository: &str,
        tag: &str,
    ) -> Result<String, ImageError> {
        let config = self.config();
        for blob in std::iter::once(&config).chain(&self.layers) {
            let digest = sha256(blob);
            let size = blob.len() as u64;
            let body = futures::stream::once(std::future::ready(Ok(blob.clone())));
            registry.put_blob(repository, &digest, Some(size), body).await?;
        }
        let manifest = self.manifest(&config);
        registry.put_manifest(repository, tag, &manifest).await?;
        Ok(manifest.digest)
    }

    /// The image as an OCI archive (an image layout in a tar) whose index names it `name`
    /// (`registry/repository:tag`), as `ctr images import` reads it.
    pub fn oci_archive(&self, name: &str) -> Result<Bytes, ImageError> {
        let config = self.config();
        let manifest = self.manifest(&config);
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": MANIFEST_TYPE,
                "digest": manifest.digest,
                "size": manifest.bytes.len(),
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit_once(':').map_or(name, |(_, tag)| tag),
                },
            }],
        });
        let mut archive = Layer::new();
        archive.file("oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        archive.file("index.json", 0o644, index.to_string().as_bytes())?;
        for blob in [&config, &manifest.bytes].into_iter().chain(&self.layers) {
            let digest = sha256(blob);
            let hex = digest.trim_start_matches("sha256:");
            archive.file(&format!("blobs/sha256/{hex}"), 0o644, blob)?;
        }
        Ok(archive.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_path_is_split_at_a_slash_and_one_that_cannot_be_is_named() {
        let long = format!("{}/{}", "a".repeat(120), "b".repeat(90));
        assert_eq!(split_path(&long), Some((&long[..120], &long[121..])));
        let mut layer = Layer::new();
        layer.file(&long, 0o644, b"x").expect("a path that splits fits");
        let unsplittable = "c".repeat(101);
        let err = layer.file(&unsplittable, 0o644, b"x").expect_err("no slash to split at");
        assert!(err.to_string().contains(&unsplittable), "{err}");
    }

    #[test]
    fn headers_carry_a_checksum_tar_accepts() {
        let mut layer = Layer::new();
        layer.directory("etc", 0o755, (0, 0)).expect("directory");
        layer.file("etc/passwd", 0o644, b"root:x:0:0::/:/sbin/nologin\n").expect("file");
        let tar = layer.finish();
        let header = &tar[..512];
        let stored = std::str::from_utf8(&header[148..154]).expect("octal");
        let mut blanked = header.to_vec();
        blanked[148..156].copy_from_slice(b"        ");
        let sum: u32 = blanked.iter().map(|b| u32::from(*b)).sum();
        assert_eq!(u32::from_str_radix(stored, 8).expect("octal"), sum);
        assert_eq!(tar.len() % 512, 0);
    }
}
