//! A customer's agreed monitoring criteria ("セキュリティ監視仕様書 §4 サービスごとの監視基準"),
//! loaded from TOML (or the same shape as JSON) and validated on load. A config that would
//! silently monitor nothing is refused, and every refusal names the field in dotted form so
//! the analyst editing the file can find it.

use serde::{Deserialize, Serialize};

use super::alert::Product;
use super::severity::Severity;

/// A refused config: which field, and what is allowed there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyCategory {
    ThreatManagement,
    Permissions,
    CloudDiscovery,
    SharingControl,
    ThreatDetection,
}

impl PolicyCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyCategory::ThreatManagement => "threat_management",
            PolicyCategory::Permissions => "permissions",
            PolicyCategory::CloudDiscovery => "cloud_discovery",
            PolicyCategory::SharingControl => "sharing_control",
            PolicyCategory::ThreatDetection => "threat_detection",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Monitored,
    Incident,
}

/// Risk levels accepted as an IdP threshold; `informational` is not a risk level there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
}

impl RiskLevel {
    pub fn severity(self) -> Severity {
        match self {
            RiskLevel::Low => Severity::Low,
            RiskLevel::Medium => Severity::Medium,
            RiskLevel::High => Severity::High,
        }
    }
}

// ---- the file as written (exact schema; unknown keys refused) ----

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    pub id: String,
    pub name: String,
    pub azure_tenant_id: String,
    pub products: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<ContactsFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mde: Option<MdeFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdo: Option<MdoFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mda: Option<MdaFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdi: Option<MdiFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<IdpFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelFile>,
    /// First-response guardrails (optional; every action off by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<super::response::ResponseFile>,
    /// Log analysis over the customer's Sentinel workspace (R-LOG; optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_analysis: Option<LogAnalysisFile>,
    /// Kept by `mss tenant put/disable` in the stored record, never written in a tenant
    /// file (`Tenant::from_toml` refuses it): the operator's file says what was agreed, the
    /// store says what state the contract is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
}

/// Where a tenant's contract stands (seed §6.3, §6.4).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    /// Set by `mss tenant disable`: no fetch and no action from then on; data kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_by: Option<String>,
    /// A change of products agreed this month takes effect on the first day of the next
    /// JST month (§6.3): until `products_from`, the tenant keeps `products_before`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products_before: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products_from: Option<chrono::DateTime<chrono::Utc>>,
    /// The criteria of the products a scheduled change removes, kept in force with them
    /// until `products_from` (the new file no longer has their sections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<KeptSections>,
}

/// Sections of products on their way out (see [`Lifecycle::kept`]). First response for
/// such a product is off from the change on: only monitoring and tickets continue.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeptSections {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mde: Option<MdeFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdo: Option<MdoFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mda: Option<MdaFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdi: Option<MdiFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<IdpFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelFile>,
}

impl PartialEq for KeptSections {
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactsFile {
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdeFile {
    pub device_groups: Vec<String>,
    pub incident_min_severity: Severity,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub category: PolicyCategory,
    pub level: Level,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdoFile {
    pub policies: Vec<PolicyFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdaFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apps: Option<Vec<String>>,
    pub policies: Vec<PolicyFile>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdiFile {}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpFile {
    pub incident_min_risk: RiskLevel,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelFile {
    pub incident_min_severity: Severity,
}

/// How often the activity digest (R-LOG-ACTIVITY) goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestCadence {
    /// Every JST day, 00:00–24:00.
    #[default]
    Daily,
    /// Every JST week, Monday 00:00 to the next Monday 00:00.
    Weekly,
}

impl DigestCadence {
    pub fn as_str(self) -> &'static str {
        match self {
            DigestCadence::Daily => "daily",
            DigestCadence::Weekly => "weekly",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogAnalysisFile {
    /// The Log Analytics workspace (Sentinel) id, a GUID.
    pub workspace_id: String,
    #[serde(default)]
    pub digest: DigestCadence,
    /// UPNs of the customer's emergency-access accounts, bound into the activity rules.
    #[serde(default)]
    pub break_glass_accounts: Vec<String>,
    /// Activity rule ids (`// id:` of the rule files) not run for this customer.
    #[serde(default)]
    pub disabled_rules: Vec<String>,
}

// ---- the validated tenant ----

/// `[log_analysis]` as validated: ids lower-cased, lists trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAnalysis {
    pub workspace_id: String,
    pub digest: DigestCadence,
    pub break_glass_accounts: Vec<String>,
    pub disabled_rules: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub id: Option<String>,
    pub category: PolicyCategory,
    pub level: Level,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MdeCriteria {
    /// Lower-cased; compared case-insensitively with `rbacGroupName`.
    pub device_groups: Vec<String>,
    pub all_groups: bool,
    pub incident_min_severity: Severity,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MdaCriteria {
    /// Lower-cased connected-app names.
    pub apps: Vec<String>,
    pub policies: Vec<Policy>,
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub azure_tenant_id: String,
    pub products: Vec<Product>,
    pub contacts_to: Vec<String>,
    pub contacts_cc: Vec<String>,
    pub mde: Option<MdeCriteria>,
    pub mdo: Option<Vec<Policy>>,
    pub mda: Option<MdaCriteria>,
    pub idp_incident_min: Option<Severity>,
    pub sentinel_incident_min: Option<Severity>,
    pub response: super::response::ResponseFile,
    pub log_analysis: Option<LogAnalysis>,
    /// The file as given, kept so the tenant can be stored and shown exactly as agreed.
    pub source: TenantFile,
}

pub const MDA_APPS: [&str; 2] = ["Office 365", "Microsoft Azure"];

impl Tenant {
    pub fn from_toml(text: &str) -> Result<Tenant, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| err("(file)", toml_message(&e)))?;
        let file: TenantFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            err(
                if path == "." || path.is_empty() {
                    "(top level)".to_string()
                } else {
                    path
                },
                toml_message(e.inner()),
            )
        })?;
        if file.lifecycle.is_some() {
            return Err(err(
                "lifecycle",
                "is kept by `mss tenant put/disable`, not written in a tenant file",
            ));
        }
        Tenant::validate(file)
    }

    /// The same schema as JSON (scenario files embed tenant configs this way).
    pub fn from_json_value(v: &serde_json::Value) -> Result<Tenant, ConfigError> {
        let file: TenantFile = serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            err(
                if path == "." || path.is_empty() {
                    "(top level)".to_string()
                } else {
                    path
                },
                e.inner().to_string(),
            )
        })?;
        Tenant::validate(file)
    }

    pub fn subscribes(&self, p: Product) -> bool {
        self.products.contains(&p)
    }

    /// When the tenant was disabled (`mss tenant disable`); `None` while active.
    pub fn disabled_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.source.lifecycle.as_ref().and_then(|l| l.disabled_at)
    }

    /// The tenant as it stands at `now`: before a scheduled product change takes effect,
    /// the products it had before. Every step that loads a tenant goes through this.
    ///
    /// The products a pending change removes are monitored with the criteria kept for them
    /// ([`Lifecycle::kept`]); the products it adds are not monitored yet. Every other field
    /// (contacts, thresholds of unchanged products, …) is the new file's at once. `source`
    /// stays the stored record.
    pub fn at(mut self, now: chrono::DateTime<chrono::Utc>) -> Tenant {
        let Some((before, _)) = self.pending_change(now) else {
            return self;
        };
        let file = in_force_file(&self.source, &before, self.kept());
        match Tenant::validate(file) {
            Ok(mut t) => {
                t.source = self.source;
                t
            }
            // A record that does not rebuild (hand-edited): at least the product list holds.
            Err(_) => {
                self.products = before.iter().filter_map(|p| Product::parse(p)).collect();
                self
            }
        }
    }

    fn kept(&self) -> Option<&KeptSections> {
        self.source.lifecycle.as_ref().and_then(|l| l.kept.as_ref())
    }

    /// A product change that has not taken effect at `now`: (products until then, from when).
    pub fn pending_change(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<(Vec<String>, chrono::DateTime<chrono::Utc>)> {
        let l = self.source.lifecycle.as_ref()?;
        match (&l.products_before, l.products_from) {
            (Some(before), Some(from)) if now < from => Some((before.clone(), from)),
            _ => None,
        }
    }

    /// Who disabled the tenant, when it is disabled.
    pub fn disabled_by(&self) -> Option<&str> {
        self.source
            .lifecycle
            .as_ref()
            .and_then(|l| l.disabled_by.as_deref())
    }

    pub fn validate(file: TenantFile) -> Result<Tenant, ConfigError> {
        let f = &file;
        if !valid_id(&f.id) {
            return Err(err(
                "id",
                format!(
                    "{:?} is not allowed: 2–40 characters of a-z, 0-9 and '-', starting with a letter or digit",
                    f.id
                ),
            ));
        }
        if f.name.trim().is_empty() {
            return Err(err("name", "must not be empty"));
        }
        if !valid_guid(&f.azure_tenant_id) {
            return Err(err(
                "azure_tenant_id",
                format!(
                    "{:?} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                    f.azure_tenant_id
                ),
            ));
        }
        if f.products.is_empty() {
            return Err(err(
                "products",
                "must list at least one of mde, mdo, mda, mdi, idp, sentinel",
            ));
        }
        let mut products = Vec::new();
        for (i, p) in f.products.iter().enumerate() {
            let prod = Product::parse(p).ok_or_else(|| {
                err(
                    format!("products[{i}]"),
                    format!("{p:?} is not a product; allowed: mde, mdo, mda, mdi, idp, sentinel"),
                )
            })?;
            if products.contains(&prod) {
                return Err(err(
                    format!("products[{i}]"),
                    format!("{p:?} is listed twice"),
                ));
            }
            products.push(prod);
        }
        let (contacts_to, contacts_cc) = match &f.contacts {
            None => (vec![], vec![]),
            Some(c) => {
                for (list, name) in [(&c.to, "to"), (&c.cc, "cc")] {
                    for (i, a) in list.iter().enumerate() {
                        if !valid_email(a) {
                            return Err(err(
                                format!("contacts.{name}[{i}]"),
                                format!("{a:?} is not an e-mail address"),
                            ));
                        }
                    }
                }
                (c.to.clone(), c.cc.clone())
            }
        };
        let has = |p: Product| products.contains(&p);
        section_iff("mde", has(Product::Mde), f.mde.is_some())?;
        section_iff("mdo", has(Product::Mdo), f.mdo.is_some())?;
        section_iff("mda", has(Product::Mda), f.mda.is_some())?;
        section_iff("mdi", has(Product::Mdi), f.mdi.is_some())?;
        section_iff("idp", has(Product::Idp), f.idp.is_some())?;
        section_iff("sentinel", has(Product::Sentinel), f.sentinel.is_some())?;

        if let Some(r) = &f.response {
            let d = super::response::ResponseFile::default();
            if (r.mde != d.mde) && !has(Product::Mde) {
                return Err(err("response.mde", "is set but \"mde\" is not in products"));
            }
            if (r.idp != d.idp) && !has(Product::Idp) {
                return Err(err("response.idp", "is set but \"idp\" is not in products"));
            }
            if (r.mdo != d.mdo) && !has(Product::Mdo) {
                return Err(err("response.mdo", "is set but \"mdo\" is not in products"));
            }
            for (i, v) in r
                .mde
                .protected_device_ids
                .iter()
                .chain(&r.mde.protected_device_groups)
                .chain(&r.mde.protected_device_tags)
                .chain(&r.idp.protected_users)
                .enumerate()
            {
                if v.trim().is_empty() {
                    return Err(err(
                        "response",
                        format!("protected list entry {i} is empty"),
                    ));
                }
            }
        }
        let mde = match &f.mde {
            None => None,
            Some(m) => {
                if m.device_groups.is_empty() {
                    return Err(err(
                        "mde.device_groups",
                        "must list at least one device group, or \"*\" for every group",
                    ));
                }
                for (i, g) in m.device_groups.iter().enumerate() {
                    if g.trim().is_empty() {
                        return Err(err(format!("mde.device_groups[{i}]"), "must not be empty"));
                    }
                }
                Some(MdeCriteria {
                    all_groups: m.device_groups.iter().any(|g| g.trim() == "*"),
                    device_groups: m
                        .device_groups
                        .iter()
                        .map(|g| g.trim().to_lowercase())
                        .collect(),
                    incident_min_severity: m.incident_min_severity,
                })
            }
        };
        let mdo = match &f.mdo {
            None => None,
            Some(m) => Some(policies(
                "mdo",
                &m.policies,
                &[
                    PolicyCategory::ThreatManagement,
                    PolicyCategory::Permissions,
                ],
            )?),
        };
        let mda = match &f.mda {
            None => None,
            Some(m) => {
                let apps = match &m.apps {
                    None => MDA_APPS.iter().map(|a| a.to_lowercase()).collect(),
                    Some(list) => {
                        if list.is_empty() {
                            return Err(err(
                                "mda.apps",
                                "must not be empty; allowed: \"Office 365\", \"Microsoft Azure\" (omit for both)",
                            ));
                        }
                        let mut out = Vec::new();
                        for (i, a) in list.iter().enumerate() {
                            if !MDA_APPS.iter().any(|x| x.eq_ignore_ascii_case(a.trim())) {
                                return Err(err(
                                    format!("mda.apps[{i}]"),
                                    format!("{a:?} is not allowed; allowed: \"Office 365\", \"Microsoft Azure\""),
                                ));
                            }
                            out.push(a.trim().to_lowercase());
                        }
                        out
                    }
                };
                Some(MdaCriteria {
                    apps,
                    policies: policies(
                        "mda",
                        &m.policies,
                        &[
                            PolicyCategory::CloudDiscovery,
                            PolicyCategory::SharingControl,
                            PolicyCategory::ThreatDetection,
                        ],
                    )?,
                })
            }
        };
        let log_analysis = match &f.log_analysis {
            None => None,
            Some(l) => Some(log_analysis(l)?),
        };
        Ok(Tenant {
            id: f.id.clone(),
            name: f.name.trim().to_string(),
            azure_tenant_id: f.azure_tenant_id.to_lowercase(),
            products,
            contacts_to,
            contacts_cc,
            mde,
            mdo,
            mda,
            idp_incident_min: f.idp.as_ref().map(|i| i.incident_min_risk.severity()),
            sentinel_incident_min: f.sentinel.as_ref().map(|s| s.incident_min_severity),
            response: f.response.clone().unwrap_or_default(),
            log_analysis,
            source: file,
        })
    }
}

// ---- the contract's lifecycle (seed §6.3 契約変更, §6.4 解約) ----

/// How long a disabled tenant's data is kept before `mss tenant purge` may delete it: 90
/// days from `disabled_at`. Longer on request (`--retention-days`), never shorter.
pub const PURGE_RETENTION_DAYS: i64 = 90;

/// 00:00 JST of the first day of the JST month after `now`, as UTC (a product change agreed
/// in a month is billed, and so takes effect, from the next month: §6.3).
pub fn first_of_next_jst_month(
    now: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    use chrono::{Datelike, TimeZone};
    let jst = chrono::FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset");
    let local = now.with_timezone(&jst);
    let (y, m) = if local.month() == 12 {
        (local.year() + 1, 1)
    } else {
        (local.year(), local.month() + 1)
    };
    jst.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .expect("a fixed offset has no gaps")
        .with_timezone(&chrono::Utc)
}

const SECTIONS: [&str; 6] = ["mde", "mdo", "mda", "mdi", "idp", "sentinel"];

/// The file as in force with `products`: sections of other products dropped, sections of
/// products the file no longer has taken from `kept`, first response only for products in
/// both. No lifecycle.
fn in_force_file(src: &TenantFile, products: &[String], kept: Option<&KeptSections>) -> TenantFile {
    let mut f = src.clone();
    f.lifecycle = None;
    f.products = products.to_vec();
    let has = |name: &str| products.iter().any(|p| p == name);
    let kept = kept.cloned().unwrap_or_default();
    macro_rules! section {
        ($name:ident) => {
            if !has(stringify!($name)) {
                f.$name = None;
            } else if f.$name.is_none() {
                f.$name = kept.$name.clone();
            }
        };
    }
    section!(mde);
    section!(mdo);
    section!(mda);
    section!(mdi);
    section!(idp);
    section!(sentinel);
    let now_has = |name: &str| src.products.iter().any(|p| p == name);
    if let Some(r) = &mut f.response {
        let d = super::response::ResponseFile::default();
        if !(has("mde") && now_has("mde")) {
            r.mde = d.mde.clone();
        }
        if !(has("idp") && now_has("idp")) {
            r.idp = d.idp.clone();
        }
        if !(has("mdo") && now_has("mdo")) {
            r.mdo = d.mdo.clone();
        }
    }
    f
}

/// The sections of `f` for the products named.
fn sections_of(f: &TenantFile, names: &[&str]) -> KeptSections {
    let on = |n: &str| names.contains(&n);
    KeptSections {
        mde: f.mde.clone().filter(|_| on("mde")),
        mdo: f.mdo.clone().filter(|_| on("mdo")),
        mda: f.mda.clone().filter(|_| on("mda")),
        mdi: f.mdi.clone().filter(|_| on("mdi")),
        idp: f.idp.clone().filter(|_| on("idp")),
        sentinel: f.sentinel.clone().filter(|_| on("sentinel")),
    }
}

fn product_set(names: &[String]) -> std::collections::BTreeSet<&str> {
    names.iter().map(|p| p.as_str()).collect()
}

fn store_lifecycle(mut t: Tenant, l: Lifecycle) -> Tenant {
    t.source.lifecycle = (l != Lifecycle::default()).then_some(l);
    t
}

/// What `mss tenant put` stores: `new` (a validated tenant file) with the lifecycle carried
/// over from `old` (the stored record, if any).
///
/// - The disabled state is kept: a put never re-enables a tenant (`mss tenant enable` does).
/// - When the product set differs from the one in force at `now`, the change is scheduled
///   for [`first_of_next_jst_month`]: until then the products in force stay, removed ones
///   with their criteria. `immediate` (`--now`) makes it take effect at once.
/// - A put that restores the products in force cancels a pending change; a change already
///   in effect is forgotten.
pub fn schedule_put(
    old: Option<&Tenant>,
    new: Tenant,
    now: chrono::DateTime<chrono::Utc>,
    immediate: bool,
) -> Tenant {
    let Some(old) = old else {
        return store_lifecycle(new, Lifecycle::default());
    };
    let prev = old.source.lifecycle.clone().unwrap_or_default();
    let mut l = Lifecycle {
        disabled_at: prev.disabled_at,
        disabled_by: prev.disabled_by,
        ..Lifecycle::default()
    };
    // The agreement in force now: the old record's file as `at(now)` reads it.
    let in_force = match old.pending_change(now) {
        Some((before, _)) => in_force_file(&old.source, &before, old.kept()),
        None => TenantFile {
            lifecycle: None,
            ..old.source.clone()
        },
    };
    if !immediate && product_set(&in_force.products) != product_set(&new.source.products) {
        let removed: Vec<&str> = SECTIONS
            .iter()
            .copied()
            .filter(|n| {
                in_force.products.iter().any(|p| p == n)
                    && !new.source.products.iter().any(|p| p == n)
            })
            .collect();
        let kept = sections_of(&in_force, &removed);
        l.products_before = Some(in_force.products.clone());
        l.products_from = Some(first_of_next_jst_month(now));
        l.kept = (kept != KeptSections::default()).then_some(kept);
    }
    store_lifecycle(new, l)
}

/// Forgets a product change that has taken effect by `now` (the record then reads as the
/// file alone).
pub fn settle(t: Tenant, now: chrono::DateTime<chrono::Utc>) -> Tenant {
    let Some(mut l) = t.source.lifecycle.clone() else {
        return t;
    };
    if l.products_from.is_some_and(|from| from <= now) || l.products_before.is_none() {
        l.products_before = None;
        l.products_from = None;
        l.kept = None;
    }
    store_lifecycle(t, l)
}

/// `mss tenant disable`: no fetch and no action from `now` on; the data stays. Idempotent:
/// an already disabled tenant keeps its first `disabled_at` and `disabled_by` (and `false`
/// says nothing changed).
pub fn disable(t: Tenant, now: chrono::DateTime<chrono::Utc>, by: &str) -> (Tenant, bool) {
    if t.disabled_at().is_some() {
        return (t, false);
    }
    let mut l = t.source.lifecycle.clone().unwrap_or_default();
    l.disabled_at = Some(now);
    l.disabled_by = Some(by.to_string());
    (store_lifecycle(t, l), true)
}

/// `mss tenant enable`: fetching and actions resume; `false` when it was not disabled.
pub fn enable(t: Tenant) -> (Tenant, bool) {
    if t.disabled_at().is_none() {
        return (t, false);
    }
    let mut l = t.source.lifecycle.clone().unwrap_or_default();
    l.disabled_at = None;
    l.disabled_by = None;
    (store_lifecycle(t, l), true)
}

/// Why the tenant's data may not be purged at `now`, or `Ok(())`. `retention_days` below
/// [`PURGE_RETENTION_DAYS`] is refused.
pub fn purge_check(
    t: &Tenant,
    now: chrono::DateTime<chrono::Utc>,
    retention_days: i64,
) -> Result<(), PurgeRefusal> {
    if retention_days < PURGE_RETENTION_DAYS {
        return Err(PurgeRefusal::RetentionTooShort(retention_days));
    }
    let Some(at) = t.disabled_at() else {
        return Err(PurgeRefusal::NotDisabled);
    };
    let from = at + chrono::Duration::days(retention_days);
    if now < from {
        return Err(PurgeRefusal::TooEarly {
            disabled_at: at,
            from,
        });
    }
    Ok(())
}

/// The first moment a disabled tenant's data may be purged.
pub fn purge_from(t: &Tenant, retention_days: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    t.disabled_at()
        .map(|at| at + chrono::Duration::days(retention_days.max(PURGE_RETENTION_DAYS)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeRefusal {
    RetentionTooShort(i64),
    NotDisabled,
    TooEarly {
        disabled_at: chrono::DateTime<chrono::Utc>,
        from: chrono::DateTime<chrono::Utc>,
    },
}

/// serde's TOML messages carry a caret excerpt of the file; the first line is what the
/// operator needs once the field is named.
fn toml_message(e: &toml::de::Error) -> String {
    e.message().lines().next().unwrap_or("invalid").to_string()
}

fn section_iff(name: &str, subscribed: bool, present: bool) -> Result<(), ConfigError> {
    match (subscribed, present) {
        (true, false) => Err(err(
            name,
            format!("section [{name}] is required because \"{name}\" is in products"),
        )),
        (false, true) => Err(err(
            name,
            format!("section [{name}] is given but \"{name}\" is not in products; add it to products or remove the section"),
        )),
        _ => Ok(()),
    }
}

fn policies(
    product: &str,
    list: &[PolicyFile],
    allowed: &[PolicyCategory],
) -> Result<Vec<Policy>, ConfigError> {
    if list.is_empty() {
        return Err(err(
            format!("{product}.policies"),
            "must list at least one policy ([[".to_string() + product + ".policies]])",
        ));
    }
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        if p.name.trim().is_empty() {
            return Err(err(
                format!("{product}.policies[{i}].name"),
                "must not be empty",
            ));
        }
        if !allowed.contains(&p.category) {
            let names: Vec<_> = allowed.iter().map(|c| c.as_str()).collect();
            return Err(err(
                format!("{product}.policies[{i}].category"),
                format!(
                    "{} cannot be watched for {product}; allowed: {}",
                    p.category.as_str(),
                    names.join(" | ")
                ),
            ));
        }
        if let Some(id) = &p.id {
            if id.trim().is_empty() {
                return Err(err(
                    format!("{product}.policies[{i}].id"),
                    "must not be empty (omit it to match by name)",
                ));
            }
        }
        out.push(Policy {
            name: p.name.trim().to_string(),
            id: p.id.as_ref().map(|s| s.trim().to_string()),
            category: p.category,
            level: p.level,
        });
    }
    Ok(out)
}

fn log_analysis(l: &LogAnalysisFile) -> Result<LogAnalysis, ConfigError> {
    let ws = l.workspace_id.trim();
    if !valid_guid(ws) {
        return Err(err(
            "log_analysis.workspace_id",
            format!(
                "{:?} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx): the Log Analytics workspace id, shown as \"Workspace ID\" on the workspace's overview page",
                l.workspace_id
            ),
        ));
    }
    let mut accounts: Vec<String> = Vec::new();
    for (i, a) in l.break_glass_accounts.iter().enumerate() {
        let a = a.trim();
        if !valid_upn(a) {
            return Err(err(
                format!("log_analysis.break_glass_accounts[{i}]"),
                format!("{a:?} is not a user principal name (name@domain)"),
            ));
        }
        if accounts.iter().any(|x| x.eq_ignore_ascii_case(a)) {
            return Err(err(
                format!("log_analysis.break_glass_accounts[{i}]"),
                format!("{a:?} is listed twice"),
            ));
        }
        accounts.push(a.to_string());
    }
    let mut disabled: Vec<String> = Vec::new();
    for (i, r) in l.disabled_rules.iter().enumerate() {
        let r = r.trim();
        if r.is_empty()
            || !r
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(err(
                format!("log_analysis.disabled_rules[{i}]"),
                format!("{r:?} is not a rule id (lowercase letters, digits and '-', as in the rule file's `// id:`)"),
            ));
        }
        if disabled.iter().any(|x| x == r) {
            return Err(err(
                format!("log_analysis.disabled_rules[{i}]"),
                format!("{r:?} is listed twice"),
            ));
        }
        disabled.push(r.to_string());
    }
    Ok(LogAnalysis {
        workspace_id: ws.to_lowercase(),
        digest: l.digest,
        break_glass_accounts: accounts,
        disabled_rules: disabled,
    })
}

/// A UPN as Entra accepts it is stricter than this; only what would make the value
/// ambiguous is refused here (white space, control characters, a second `@`). Quotes are not
/// refused: the value reaches KQL only as an escaped string literal.
fn valid_upn(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && s.chars().count() <= 256
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=40).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn valid_guid(s: &str) -> bool {
    let parts: Vec<_> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Deliberately simple: one `@`, no white space, commas or angle brackets (OpsRamp's `cc`
/// is a comma-separated list, so a comma would smuggle in a second recipient).
fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ',' | ';' | '<' | '>' | '"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const FULL: &str = r#"
id = "kaede-shoji"
name = "楓商事株式会社"
azure_tenant_id = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
products = ["mde", "mdo", "mda", "mdi", "idp"]
[contacts]
to = ["soc@kaede.example"]
cc = ["it@kaede.example"]
[mde]
device_groups = ["東京本社PC"]
incident_min_severity = "medium"
[[mdo.policies]]
name = "Email messages containing malicious URL removed after delivery"
category = "threat_management"
level = "incident"
[mda]
apps = ["Office 365", "Microsoft Azure"]
[[mda.policies]]
name = "Mass download by a single user"
category = "threat_detection"
level = "monitored"
[mdi]
[idp]
incident_min_risk = "high"
"#;

    #[test]
    fn the_documented_example_is_accepted() {
        let t = Tenant::from_toml(FULL).unwrap();
        assert_eq!(t.id, "kaede-shoji");
        assert_eq!(t.products.len(), 5);
        assert_eq!(t.mde.as_ref().unwrap().device_groups, vec!["東京本社pc"]);
        assert_eq!(t.idp_incident_min, Some(Severity::High));
    }

    fn refused(text: &str) -> ConfigError {
        Tenant::from_toml(text).unwrap_err()
    }

    #[test]
    fn every_error_names_its_field() {
        let cases: Vec<(String, &str, &str)> = vec![
            (FULL.replace("id = \"kaede-shoji\"", "id = \"Kaede\""), "id", "a-z"),
            (FULL.replace("name = \"楓商事株式会社\"", "name = \"  \""), "name", "empty"),
            (FULL.replace("6f1c2d3e-4a5b", "6f1c2d3e4a5b"), "azure_tenant_id", "GUID"),
            (FULL.replace("\"mdi\", \"idp\"]", "\"mdi\", \"idp\", \"edr\"]"), "products[5]", "allowed: mde"),
            (FULL.replace("\"mdi\", \"idp\"]", "\"mdi\", \"idp\", \"mde\"]"), "products[5]", "twice"),
            (FULL.replace("category = \"threat_management\"", "category = \"threat_detection\""), "mdo.policies[0].category", "threat_management | permissions"),
            (FULL.replace("category = \"threat_detection\"", "category = \"permissions\""), "mda.policies[0].category", "cloud_discovery"),
            (FULL.replace("level = \"incident\"", "level = \"urgent\""), "mdo.policies[0].level", "monitored"),
            (FULL.replace("incident_min_severity = \"medium\"", "incident_min_severity = \"severe\""), "mde.incident_min_severity", "informational"),
            (FULL.replace("incident_min_risk = \"high\"", "incident_min_risk = \"informational\""), "idp.incident_min_risk", "low"),
            (FULL.replace("device_groups = [\"東京本社PC\"]", "device_groups = []"), "mde.device_groups", "\"*\""),
            (FULL.replace("apps = [\"Office 365\", \"Microsoft Azure\"]", "apps = [\"Office 365\", \"Salesforce\"]"), "mda.apps[1]", "Microsoft Azure"),
            (FULL.replace("[mdi]\n", ""), "mdi", "required"),
            (FULL.replace("\"mdi\", \"idp\"]", "\"mdi\"]"), "idp", "not in products"),
            (FULL.replace("to = [\"soc@kaede.example\"]", "to = [\"soc@kaede.example,evil@x.test\"]"), "contacts.to[0]", "e-mail"),
            (FULL.replace("[mdi]\n", "[mdi]\nhealth = true\n"), "mdi.health", "unknown field"),
            (FULL.replace("level = \"incident\"", "level = \"incident\"\nseverity = \"high\""), "mdo.policies[0].severity", "unknown field"),
            (FULL.replace("products = ", "colour = \"red\"\nproducts = "), "colour", "unknown field"),
            (FULL.replace("[[mdo.policies]]\nname = \"Email messages containing malicious URL removed after delivery\"\n", "[[mdo.policies]]\n"), "mdo.policies[0]", "name"),
        ];
        for (text, field, msg) in cases {
            let e = refused(&text);
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains(msg), "{e} should mention {msg}");
        }
    }

    #[test]
    fn response_policy_is_validated_like_the_rest() {
        let with = |extra: &str| Tenant::from_toml(&format!("{FULL}{extra}"));
        let t = with("[response]\nhours = \"business_hours\"\n[response.mde]\nisolate = \"auto\"\nprotected_device_tags = [\"VIP\"]\n").unwrap();
        assert_eq!(t.response.mde.isolate, crate::domain::response::Mode::Auto);
        assert_eq!(t.response.max_isolations_per_hour, 3);
        assert_eq!(
            Tenant::from_toml(FULL).unwrap().response,
            crate::domain::response::ResponseFile::default()
        );
        let e = with("[response.mde]\nisolat = \"auto\"\n").unwrap_err();
        assert_eq!(e.field, "response.mde.isolat", "{e}");
        let e = with("[response.idp]\nconfirm_compromised = \"sometimes\"\n").unwrap_err();
        assert_eq!(e.field, "response.idp.confirm_compromised", "{e}");
        assert!(e.message.contains("auto"), "{e}");
        let e = with("[response]\nmax_isolations_per_hour = -1\n").unwrap_err();
        assert_eq!(e.field, "response.max_isolations_per_hour", "{e}");
        let no_mdo = FULL.replace("[[mdo.policies]]\nname = \"Email messages containing malicious URL removed after delivery\"\ncategory = \"threat_management\"\nlevel = \"incident\"\n", "").replace("\"mde\", \"mdo\",", "\"mde\",");
        let e = Tenant::from_toml(&format!(
            "{no_mdo}[response.mdo]\nemail_remediation = \"auto\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.field, "response.mdo", "{e}");
    }

    #[test]
    fn log_analysis_is_optional_and_validated_like_the_rest() {
        assert!(Tenant::from_toml(FULL).unwrap().log_analysis.is_none());
        let with = |extra: &str| Tenant::from_toml(&format!("{FULL}[log_analysis]\n{extra}"));
        let t = with("workspace_id = \"1E2D3C4B-5A69-4788-9A0B-1C2D3E4F5A6B\"\n").unwrap();
        let l = t.log_analysis.unwrap();
        assert_eq!(l.workspace_id, "1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b");
        assert_eq!(l.digest, DigestCadence::Daily);
        assert!(l.break_glass_accounts.is_empty() && l.disabled_rules.is_empty());
        let t = with(
            "workspace_id = \"1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b\"\ndigest = \"weekly\"\n\
             break_glass_accounts = [\"bg-admin01@kaede.onmicrosoft.com\", \"o'hara.bg@kaede.example\"]\n\
             disabled_rules = [\"guest-invited\"]\n",
        )
        .unwrap();
        let l = t.log_analysis.as_ref().unwrap();
        assert_eq!(l.digest, DigestCadence::Weekly);
        assert_eq!(l.break_glass_accounts[1], "o'hara.bg@kaede.example");
        assert_eq!(l.disabled_rules, ["guest-invited"]);
        // Kept as given, so the stored tenant validates again.
        let again = Tenant::validate(t.source.clone()).unwrap();
        assert_eq!(again.log_analysis, t.log_analysis);

        let ws = "workspace_id = \"1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b\"\n";
        for (extra, field, msg) in [
            (
                "workspace_id = \"my-workspace\"\n".to_string(),
                "log_analysis.workspace_id",
                "GUID",
            ),
            (
                "digest = \"daily\"\n".to_string(),
                "log_analysis",
                "workspace_id",
            ),
            (
                format!("{ws}digest = \"monthly\"\n"),
                "log_analysis.digest",
                "weekly",
            ),
            (
                format!("{ws}break_glass_accounts = [\"bg admin@kaede.example\"]\n"),
                "log_analysis.break_glass_accounts[0]",
                "principal",
            ),
            (
                format!("{ws}break_glass_accounts = [\"a@kaede.example\", \"A@kaede.example\"]\n"),
                "log_analysis.break_glass_accounts[1]",
                "twice",
            ),
            (
                format!("{ws}disabled_rules = [\"Guest Invited\"]\n"),
                "log_analysis.disabled_rules[0]",
                "rule id",
            ),
            (
                format!("{ws}workspace = \"x\"\n"),
                "log_analysis.workspace",
                "unknown field",
            ),
        ] {
            let e = with(&extra).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains(msg), "{e} should mention {msg}");
        }
    }

    #[test]
    fn second_mdo_policy_error_is_indexed() {
        let text = FULL.replace(
            "[mda]\n",
            "[[mdo.policies]]\nname = \"x\"\ncategory = \"sharing_control\"\nlevel = \"monitored\"\n[mda]\n",
        );
        assert_eq!(refused(&text).field, "mdo.policies[1].category");
    }

    #[test]
    fn syntax_errors_are_refused_not_panicked() {
        assert!(Tenant::from_toml("id = ").is_err());
        assert!(Tenant::from_toml("").is_err());
        assert!(Tenant::from_toml("\u{0}").is_err());
    }

    #[test]
    fn json_shape_is_the_same_schema() {
        let v: serde_json::Value = serde_json::json!({
            "id": "aoba-bank", "name": "青葉銀行", "azure_tenant_id": "11111111-2222-3333-4444-555555555555",
            "products": ["mdi"], "mdi": {}, "mdx": {}
        });
        let e = Tenant::from_json_value(&v).unwrap_err();
        assert!(e.to_string().contains("mdx"), "{e}");
    }

    // ---- lifecycle ----

    fn utc(s: &str) -> chrono::DateTime<chrono::Utc> {
        s.parse().unwrap()
    }

    fn with_products(list: &str, extra: &str) -> Tenant {
        let mut text = format!(
            "id = \"kaede-shoji\"\nname = \"楓商事\"\nazure_tenant_id = \"6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f\"\nproducts = [{list}]\n{extra}"
        );
        for (p, section) in [
            ("mde", "[mde]\ndevice_groups = [\"*\"]\nincident_min_severity = \"medium\"\n"),
            ("mdo", "[[mdo.policies]]\nname = \"Phish\"\ncategory = \"threat_management\"\nlevel = \"incident\"\n"),
            ("mdi", "[mdi]\n"),
            ("idp", "[idp]\nincident_min_risk = \"high\"\n"),
        ] {
            if list.contains(&format!("\"{p}\"")) {
                text.push_str(section);
            }
        }
        Tenant::from_toml(&text).unwrap()
    }

    fn names(t: &Tenant) -> Vec<&'static str> {
        t.products.iter().map(|p| p.as_str()).collect()
    }

    #[test]
    fn next_jst_month_starts_at_jst_midnight() {
        // 2026-11-30T15:30Z is already 12-01 00:30 in Tokyo: the next month is January.
        assert_eq!(
            first_of_next_jst_month(utc("2026-11-30T15:30:00Z")),
            utc("2026-12-31T15:00:00Z")
        );
        // 14:59Z is still 11-30 23:59 JST.
        assert_eq!(
            first_of_next_jst_month(utc("2026-11-30T14:59:59Z")),
            utc("2026-11-30T15:00:00Z")
        );
        assert_eq!(
            first_of_next_jst_month(utc("2026-12-15T00:00:00Z")),
            utc("2026-12-31T15:00:00Z")
        );
        assert_eq!(
            first_of_next_jst_month(utc("2027-01-31T15:00:00Z")),
            utc("2027-02-28T15:00:00Z")
        );
    }

    #[test]
    fn a_product_change_waits_for_the_next_jst_month() {
        let now = utc("2026-11-30T15:30:00Z");
        let old = with_products("\"mde\", \"mdo\"", "");
        let new = with_products("\"mde\", \"mdo\", \"idp\"", "");
        let t = schedule_put(Some(&old), new, now, false);
        let l = t.source.lifecycle.clone().unwrap();
        assert_eq!(l.products_before, Some(vec!["mde".into(), "mdo".into()]));
        assert_eq!(l.products_from, Some(utc("2026-12-31T15:00:00Z")));
        assert!(l.kept.is_none(), "nothing removed, nothing kept");
        assert_eq!(names(&t.clone().at(now)), ["mde", "mdo"]);
        assert_eq!(
            names(&t.clone().at(utc("2026-12-31T14:59:59Z"))),
            ["mde", "mdo"]
        );
        assert_eq!(
            names(&t.clone().at(utc("2026-12-31T15:00:00Z"))),
            ["mde", "mdo", "idp"]
        );
        // Until then the added product's criteria are not in force.
        assert!(t.clone().at(now).idp_incident_min.is_none());
        // The record survives the store's JSON and validates again.
        let json = serde_json::to_string(&t.source).unwrap();
        let back = Tenant::validate(serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(back.source.lifecycle, t.source.lifecycle);
    }

    #[test]
    fn a_removed_product_is_monitored_with_its_criteria_until_the_change() {
        let now = utc("2026-11-10T00:00:00Z");
        let old = with_products(
            "\"mde\", \"mdo\"",
            "[response]\n[response.mde]\nisolate = \"auto\"\n",
        );
        let new = with_products("\"mdo\", \"idp\"", "");
        let t = schedule_put(Some(&old), new, now, false);
        let l = t.source.lifecycle.clone().unwrap();
        assert!(l.kept.as_ref().unwrap().mde.is_some(), "{l:?}");
        let in_force = t.clone().at(now);
        assert_eq!(names(&in_force), ["mde", "mdo"]);
        assert!(in_force.mde.as_ref().unwrap().all_groups);
        assert!(in_force.idp_incident_min.is_none());
        // First response of the product on its way out is off.
        assert_eq!(
            in_force.response.mde.isolate,
            crate::domain::response::Mode::Off
        );
        // The stored record is still the new file.
        assert_eq!(in_force.source.products, ["mdo", "idp"]);
        let later = t.at(utc("2026-11-30T15:00:00Z"));
        assert_eq!(names(&later), ["mdo", "idp"]);
        assert!(later.mde.is_none());
    }

    #[test]
    fn now_no_change_cancel_and_settled_changes() {
        let now = utc("2026-11-10T00:00:00Z");
        let old = with_products("\"mde\"", "");
        // --now: in force at once.
        let t = schedule_put(Some(&old), with_products("\"mde\", \"mdi\"", ""), now, true);
        assert!(t.source.lifecycle.is_none());
        assert_eq!(names(&t.at(now)), ["mde", "mdi"]);
        // The same products (another order, other criteria): nothing scheduled.
        let two = with_products("\"mde\", \"mdi\"", "");
        let t = schedule_put(
            Some(&two),
            with_products("\"mdi\", \"mde\"", ""),
            now,
            false,
        );
        assert!(t.source.lifecycle.is_none());
        // A new tenant: in force at once.
        let t = schedule_put(None, with_products("\"mde\", \"mdi\"", ""), now, false);
        assert!(t.source.lifecycle.is_none());
        // Scheduled, then put back to what is in force: cancelled.
        let pending = schedule_put(
            Some(&old),
            with_products("\"mde\", \"mdi\"", ""),
            now,
            false,
        );
        assert!(pending.pending_change(now).is_some());
        let back = schedule_put(Some(&pending), with_products("\"mde\"", ""), now, false);
        assert!(
            back.source.lifecycle.is_none(),
            "{:?}",
            back.source.lifecycle
        );
        // Scheduled twice in the month: the before stays what is in force.
        let again = schedule_put(
            Some(&pending),
            with_products("\"mde\", \"idp\"", ""),
            utc("2026-11-20T00:00:00Z"),
            false,
        );
        let l = again.source.lifecycle.clone().unwrap();
        assert_eq!(l.products_before, Some(vec!["mde".into()]));
        assert_eq!(l.products_from, Some(utc("2026-11-30T15:00:00Z")));
        // A put after the change took effect starts from the new products and forgets it.
        let after = utc("2026-12-02T00:00:00Z");
        let t = schedule_put(
            Some(&pending),
            with_products("\"mde\", \"mdi\"", ""),
            after,
            false,
        );
        assert!(t.source.lifecycle.is_none());
        assert!(settle(pending.clone(), after).source.lifecycle.is_none());
        assert!(settle(pending.clone(), now).pending_change(now).is_some());
    }

    #[test]
    fn disable_is_kept_by_put_and_idempotent() {
        let now = utc("2026-11-10T00:00:00Z");
        let (t, changed) = disable(with_products("\"mde\"", ""), now, "sato");
        assert!(changed);
        let (t, changed) = disable(t, utc("2026-11-11T00:00:00Z"), "suzuki");
        assert!(!changed);
        assert_eq!(t.disabled_at(), Some(now));
        assert_eq!(t.disabled_by(), Some("sato"));
        let put = schedule_put(Some(&t), with_products("\"mde\", \"mdi\"", ""), now, false);
        assert_eq!(put.disabled_at(), Some(now));
        assert!(put.pending_change(now).is_some());
        let (e, changed) = enable(put);
        assert!(changed);
        assert!(e.disabled_at().is_none() && e.disabled_by().is_none());
        assert!(e.pending_change(now).is_some(), "enable keeps the schedule");
        assert!(!enable(e).1);
    }

    #[test]
    fn purge_waits_for_the_retention_period() {
        let at = utc("2026-11-10T00:00:00Z");
        let active = with_products("\"mde\"", "");
        assert_eq!(
            purge_check(&active, at, PURGE_RETENTION_DAYS),
            Err(PurgeRefusal::NotDisabled)
        );
        let (t, _) = disable(active, at, "sato");
        let from = utc("2027-02-08T00:00:00Z");
        assert_eq!(purge_from(&t, PURGE_RETENTION_DAYS), Some(from));
        assert_eq!(
            purge_check(
                &t,
                from - chrono::Duration::seconds(1),
                PURGE_RETENTION_DAYS
            ),
            Err(PurgeRefusal::TooEarly {
                disabled_at: at,
                from
            })
        );
        assert_eq!(purge_check(&t, from, PURGE_RETENTION_DAYS), Ok(()));
        assert_eq!(
            purge_check(&t, from, 30),
            Err(PurgeRefusal::RetentionTooShort(30))
        );
        assert!(purge_check(&t, from, 120).is_err());
    }

    #[test]
    fn a_tenant_file_cannot_carry_a_lifecycle() {
        let e = refused(&format!("{FULL}[lifecycle]\ndisabled_by = \"x\"\n"));
        assert_eq!(e.field, "lifecycle", "{e}");
    }
}
