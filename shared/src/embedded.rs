//! The embedded deployment against real endpoints: one `mss.toml` says where the state is
//! and where Microsoft and OpsRamp are; a separate secrets file (mode 0600, never logged)
//! holds the credentials. `mss run`, `mss rerun`, `mss preflight` and `mss backfill` all
//! start from here, so they talk to the same endpoints with the same clients as the
//! pipeline itself.
//!
//! ```toml
//! state = "state"                       # directory of mss.sqlite, relative to this file
//! secrets = "secrets.toml"              # relative to this file; must not be group/world-readable
//! [microsoft]                           # every key optional: the public endpoints
//! authority_host = "https://login.microsoftonline.com"
//! [opsramp]
//! base_url = "https://acme.api.opsramp.com"
//! tenant_id = "client_1234"
//! ```
//!
//! secrets.toml:
//! ```toml
//! [opsramp]
//! client_id = "…"
//! client_secret = "…"
//! [tenants.kaede-shoji]                 # one per tenant id; the Azure tenant id comes from the tenant file
//! client_id = "…"
//! client_secret = "…"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use serde::Deserialize;

use crate::adapters::graph::{AzureAppCredential, GraphClient, GraphConfig, Secret};
use crate::adapters::http::HttpSettings;
use crate::adapters::opsramp::{OpsRampClient, OpsRampConfig, OpsRampCredential};
use crate::adapters::sqlite::SqliteStore;
use crate::domain::tenant::Tenant;
use crate::ports::{Store, SystemClock};
use crate::steps::{Deps, Settings};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Directory of `mss.sqlite` (created when missing).
    pub state: PathBuf,
    /// The secrets file.
    pub secrets: PathBuf,
    #[serde(default)]
    pub microsoft: MicrosoftEndpoints,
    pub opsramp: OpsRampSection,
    /// A PEM file of an extra CA to trust, for a local simulator (`mss sim serve --ca-out`).
    /// Public CAs stay trusted; verification is never turned off.
    #[serde(default)]
    pub extra_ca_file: Option<PathBuf>,
    /// Operator alerts about the service itself (ingest health): optional.
    #[serde(default)]
    pub operator: Option<OperatorSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicrosoftEndpoints {
    #[serde(default = "d_authority")]
    pub authority_host: String,
    #[serde(default = "d_graph")]
    pub graph_base: String,
    #[serde(default = "d_graph_beta")]
    pub graph_beta_base: String,
    #[serde(default = "d_mde")]
    pub mde_base: String,
    #[serde(default = "d_la")]
    pub loganalytics_base: String,
}

fn d_authority() -> String {
    "https://login.microsoftonline.com".into()
}
fn d_graph() -> String {
    "https://graph.microsoft.com/v1.0".into()
}
fn d_graph_beta() -> String {
    "https://graph.microsoft.com/beta".into()
}
fn d_mde() -> String {
    "https://api.security.microsoft.com/api".into()
}
fn d_la() -> String {
    "https://api.loganalytics.azure.com".into()
}

impl Default for MicrosoftEndpoints {
    fn default() -> Self {
        MicrosoftEndpoints {
            authority_host: d_authority(),
            graph_base: d_graph(),
            graph_beta_base: d_graph_beta(),
            mde_base: d_mde(),
            loganalytics_base: d_la(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsRampSection {
    pub base_url: String,
    /// The MSSP's OpsRamp client (tickets are created under it).
    pub tenant_id: String,
    #[serde(default)]
    pub token_path: Option<String>,
}

/// Where alerts about the service itself go: an internal OpsRamp incident under the
/// provider's own client (not a customer's), after `after_failures` failed cycles in a row.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSection {
    /// The provider's own OpsRamp client id (e.g. `client_9999`).
    pub opsramp_client_id: String,
    #[serde(default = "d_after")]
    pub after_failures: u32,
    /// Mail address of the SOC on the operator incident (optional).
    #[serde(default)]
    pub email: Option<String>,
}

fn d_after() -> u32 {
    3
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    opsramp: SecretPair,
    #[serde(default)]
    tenants: BTreeMap<String, SecretPair>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretPair {
    client_id: String,
    client_secret: String,
}

/// A loaded configuration: paths resolved against the config file's directory, secrets
/// read (wrapped so Debug and logs never show them).
pub struct Embedded {
    pub file: ConfigFile,
    pub path: PathBuf,
    pub state_dir: PathBuf,
    opsramp: OpsRampCredential,
    tenants: BTreeMap<String, (String, Secret)>,
    extra_ca_pem: Option<String>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("path", &self.path)
            .field("state_dir", &self.state_dir)
            .field(
                "tenants_with_secrets",
                &self.tenants.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn toml_de<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> anyhow::Result<T> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| anyhow!("{}: {}", path.display(), e.message()))?;
    serde_path_to_error::deserialize(de)
        .map_err(|e| anyhow!("{}: {}: {}", path.display(), e.path(), e.inner().message()))
}

fn https(what: &str, url: &str) -> anyhow::Result<()> {
    crate::adapters::http::require_https(what, url).map(|_| ())
}

impl Embedded {
    /// Reads and checks `mss.toml` and its secrets file. Every error names the file and
    /// the field; a secrets file others can read is refused (it holds every tenant's key).
    pub fn load(path: &Path) -> anyhow::Result<Embedded> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration {}", path.display()))?;
        let file: ConfigFile = toml_de(path, &text)?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let m = &file.microsoft;
        for (what, url) in [
            ("microsoft.authority_host", &m.authority_host),
            ("microsoft.graph_base", &m.graph_base),
            ("microsoft.graph_beta_base", &m.graph_beta_base),
            ("microsoft.mde_base", &m.mde_base),
            ("microsoft.loganalytics_base", &m.loganalytics_base),
            ("opsramp.base_url", &file.opsramp.base_url),
        ] {
            https(what, url).with_context(|| format!("{}", path.display()))?;
        }
        let secrets_path = resolve(&file.secrets);
        check_private(&secrets_path)?;
        let stext = std::fs::read_to_string(&secrets_path)
            .with_context(|| format!("reading the secrets file {}", secrets_path.display()))?;
        let secrets: SecretsFile = toml_de(&secrets_path, &stext)?;
        let extra_ca_pem = match &file.extra_ca_file {
            Some(f) => {
                let f = resolve(f);
                Some(
                    std::fs::read_to_string(&f)
                        .with_context(|| format!("reading extra_ca_file {}", f.display()))?,
                )
            }
            None => None,
        };
        Ok(Embedded {
            state_dir: resolve(&file.state),
            path: path.to_path_buf(),
            opsramp: OpsRampCredential {
                client_id: secrets.opsramp.client_id,
                client_secret: Secret::new(secrets.opsramp.client_secret),
            },
            tenants: secrets
                .tenants
                .into_iter()
                .map(|(k, v)| (k, (v.client_id, Secret::new(v.client_secret))))
                .collect(),
            extra_ca_pem,
            file,
        })
    }

    pub fn http(&self) -> HttpSettings {
        HttpSettings {
            extra_ca_pem: self.extra_ca_pem.clone(),
            ..HttpSettings::default()
        }
    }

    /// The state store (created on first use).
    pub fn store(&self) -> anyhow::Result<SqliteStore> {
        std::fs::create_dir_all(&self.state_dir)
            .with_context(|| format!("creating {}", self.state_dir.display()))?;
        SqliteStore::open(&self.state_dir.join("mss.sqlite"))
    }

    /// Whether the secrets file has an entry for `tenant`.
    pub fn has_credentials(&self, tenant: &str) -> bool {
        self.tenants.contains_key(tenant)
    }

    /// The app credentials of the given tenants that have an entry in the secrets file;
    /// each credential is bound to its tenant's own Azure tenant id.
    pub fn app_credentials(&self, tenants: &[Tenant]) -> Vec<AzureAppCredential> {
        tenants
            .iter()
            .filter_map(|t| {
                let (id, secret) = self.tenants.get(&t.id)?;
                Some(AzureAppCredential {
                    tenant: t.id.clone(),
                    azure_tenant_id: t.azure_tenant_id.clone(),
                    client_id: id.clone(),
                    client_secret: secret.clone(),
                })
            })
            .collect()
    }

    pub fn opsramp_config(&self) -> OpsRampConfig {
        let mut c = OpsRampConfig::new(&self.file.opsramp.base_url, &self.file.opsramp.tenant_id);
        c.http = self.http();
        if let Some(p) = &self.file.opsramp.token_path {
            c.token_path = p.clone();
        }
        c
    }

    pub fn opsramp_credential(&self) -> OpsRampCredential {
        self.opsramp.clone()
    }

    pub fn opsramp(&self) -> anyhow::Result<Arc<OpsRampClient>> {
        Ok(Arc::new(OpsRampClient::new(
            self.opsramp_config(),
            self.opsramp.clone(),
        )?))
    }

    /// The pipeline's dependencies on this machine: SQLite store and queues, real clients
    /// for every tenant stored there that has credentials, the system clock.
    pub async fn deps(&self) -> anyhow::Result<(Deps, Arc<OpsRampClient>)> {
        let store = Arc::new(self.store()?);
        let tenants = store.list_tenants().await?;
        let creds = self.app_credentials(&tenants);
        let m = &self.file.microsoft;
        let http = self.http();
        let graph = GraphClient::new(
            GraphConfig {
                graph_base: m.graph_base.clone(),
                authority_host: m.authority_host.clone(),
                http: http.clone(),
                ..GraphConfig::default()
            },
            creds.clone(),
        )?;
        let users = Arc::new(crate::adapters::identity::IdentityClient::new(
            crate::adapters::identity::IdentityConfig {
                graph_base: m.graph_base.clone(),
                authority_host: m.authority_host.clone(),
                http: http.clone(),
                ..Default::default()
            },
            creds.clone(),
        )?);
        let respond = crate::steps::respond::ResponseDeps {
            devices: Arc::new(crate::adapters::mde::MdeClient::new(
                crate::adapters::mde::MdeConfig {
                    base: m.mde_base.clone(),
                    authority_host: m.authority_host.clone(),
                    http: http.clone(),
                    ..Default::default()
                },
                creds.clone(),
            )?),
            users: users.clone(),
            mail: Arc::new(crate::adapters::mdo::MdoClient::new(
                &m.graph_beta_base,
                &m.authority_host,
                &http,
                creds.clone(),
            )?),
            calendar: crate::domain::calendar::Calendar::default(),
            check_every: Duration::from_secs(60),
            give_up_after: Duration::from_secs(2 * 3600),
        };
        let investigate = crate::steps::investigate::InvestigateDeps::new(
            Arc::new(crate::adapters::hunting::HuntingClient::new(
                crate::adapters::hunting::HuntingConfig {
                    graph_base: m.graph_base.clone(),
                    authority_host: m.authority_host.clone(),
                    http: http.clone(),
                    ..Default::default()
                },
                creds,
            )?),
            users,
        );
        let opsramp = self.opsramp()?;
        Ok((
            Deps {
                store: store.clone(),
                queue: store,
                alerts: Arc::new(graph),
                tickets: opsramp.clone(),
                clock: Arc::new(SystemClock),
                settings: Settings {
                    ingest_health: crate::steps::health::HealthSettings::from_embedded(self)?,
                    ..Settings::default()
                },
                respond: Some(Arc::new(respond)),
                investigate: Some(Arc::new(investigate)),
                handed_on: Default::default(),
            },
            opsramp,
        ))
    }
}

#[cfg(unix)]
fn check_private(p: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(p)
        .with_context(|| format!("reading the secrets file {}", p.display()))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(anyhow!(
            "{}: the secrets file is readable by others (mode {:o}); run `chmod 600 {}`",
            p.display(),
            mode & 0o777,
            p.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_p: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Writes a configuration and secrets file pointing at a running simulator (what
/// `mss sim serve --write-config DIR` leaves), with the secrets file private.
#[allow(clippy::too_many_arguments)]
pub fn write_for_simulator(
    dir: &Path,
    authority_host: &str,
    graph_base: &str,
    graph_beta_base: &str,
    mde_base: &str,
    loganalytics_base: &str,
    opsramp_base: &str,
    opsramp_tenant_id: &str,
    ca_file: &Path,
    opsramp_cred: (&str, &str),
    tenants: &[(String, String, String)],
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cfg = format!(
        "# mss embedded configuration for a local simulator (mss sim serve).\n\
         state = \"state\"\nsecrets = \"secrets.toml\"\nextra_ca_file = {ca}\n\n\
         [microsoft]\nauthority_host = {a}\ngraph_base = {g}\ngraph_beta_base = {gb}\n\
         mde_base = {mde}\nloganalytics_base = {la}\n\n\
         [opsramp]\nbase_url = {o}\ntenant_id = {ot}\n",
        ca = toml_str(&ca_file.display().to_string()),
        a = toml_str(authority_host),
        g = toml_str(graph_base),
        gb = toml_str(graph_beta_base),
        mde = toml_str(mde_base),
        la = toml_str(loganalytics_base),
        o = toml_str(opsramp_base),
        ot = toml_str(opsramp_tenant_id),
    );
    let mut sec = format!(
        "[opsramp]\nclient_id = {}\nclient_secret = {}\n",
        toml_str(opsramp_cred.0),
        toml_str(opsramp_cred.1)
    );
    for (t, id, secret) in tenants {
        sec.push_str(&format!(
            "\n[tenants.{}]\nclient_id = {}\nclient_secret = {}\n",
            toml_str(t),
            toml_str(id),
            toml_str(secret)
        ));
    }
    let cfg_path = dir.join("mss.toml");
    std::fs::write(&cfg_path, cfg).with_context(|| format!("writing {}", cfg_path.display()))?;
    let sec_path = dir.join("secrets.toml");
    write_private(&sec_path, &sec)?;
    Ok(cfg_path)
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn write_private(p: &Path, text: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(p);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(p)
            .with_context(|| format!("writing {}", p.display()))?;
        f.write_all(text.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))
    }
}
