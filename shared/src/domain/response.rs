//! First response under guardrails (SPEC R-RESPOND, seed §5.3.2): the per-tenant policy
//! (tenant TOML `[response]`, exact schema, everything off by default) and the pure decision
//! whether an action may run now, must wait, or is refused — with the reason that goes on
//! the ticket. Calling the products and tracking actions is the respond step's job.

use serde::{Deserialize, Serialize};

/// How an action is allowed to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Auto,
    Approval,
    #[default]
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AutoOff {
    Auto,
    #[default]
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Hours {
    #[default]
    Always,
    BusinessHours,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IsolationType {
    #[default]
    Full,
    Selective,
}

impl IsolationType {
    /// The MDE API's spelling (`IsolationType` body parameter, case-sensitive).
    pub fn api_value(self) -> &'static str {
        match self {
            IsolationType::Full => "Full",
            IsolationType::Selective => "Selective",
        }
    }
}

fn three() -> u32 {
    3
}

/// `[response]` as written. Every key optional; unknown keys refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseFile {
    #[serde(default)]
    pub hours: Hours,
    #[serde(default = "three")]
    pub max_isolations_per_hour: u32,
    #[serde(default = "three")]
    pub max_user_confirmations_per_hour: u32,
    #[serde(default)]
    pub mde: ResponseMde,
    #[serde(default)]
    pub idp: ResponseIdp,
    #[serde(default)]
    pub mdo: ResponseMdo,
}

impl Default for ResponseFile {
    fn default() -> Self {
        ResponseFile {
            hours: Hours::Always,
            max_isolations_per_hour: 3,
            max_user_confirmations_per_hour: 3,
            mde: ResponseMde::default(),
            idp: ResponseIdp::default(),
            mdo: ResponseMdo::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseMde {
    pub isolate: Mode,
    pub scan: Mode,
    pub isolation_type: IsolationType,
    pub protected_device_groups: Vec<String>,
    pub protected_device_tags: Vec<String>,
    pub protected_device_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseIdp {
    pub confirm_compromised: Mode,
    pub protected_users: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseMdo {
    pub air_approval_task: AutoOff,
    pub email_remediation: Mode,
}

/// The kinds of action, as the demo JSON and the ticket name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Isolate,
    Scan,
    Unisolate,
    ConfirmCompromised,
    AirApprovalTask,
    EmailRemediation,
}

impl ActionKind {
    pub fn label_ja(self) -> &'static str {
        match self {
            ActionKind::Isolate => "ネットワーク分離",
            ActionKind::Scan => "フルスキャン",
            ActionKind::Unisolate => "ネットワーク分離の解除",
            ActionKind::ConfirmCompromised => "ユーザーの侵害確認（リスク: 高）",
            ActionKind::AirApprovalTask => "自動調査（AIR）の修復承認依頼",
            ActionKind::EmailRemediation => "メールの修復（削除）",
        }
    }
}

/// The device as MDE currently knows it (`GET /machines/{id}`): guards read this, not the
/// alert's evidence, which may be stale.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub id: String,
    pub rbac_group_name: Option<String>,
    pub machine_tags: Vec<String>,
    pub os_platform: Option<String>,
    /// e.g. "1709", "22H2"; MDE's `version`.
    pub version: Option<String>,
}

/// What the guardrails say about one planned action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict", content = "reason")]
pub enum Verdict {
    /// Run it now.
    Go,
    /// Policy `off`: nothing is done and nothing is said unless asked.
    Off,
    /// Posted as a request on the ticket; runs when an operator approves.
    PendingApproval(String),
    /// `auto`, but outside service hours under `hours = "business_hours"`.
    WaitingHours(String),
    /// Never: a protected target. Recorded with the reason.
    Refused(String),
    /// The product cannot do it for this target (e.g. OS); said on the ticket.
    Unsupported(String),
}

/// Inputs a guard needs besides the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardContext {
    pub in_service_hours: bool,
    /// Actions of the same cap already started for this tenant in the past hour.
    pub recent_in_hour: u32,
    /// An operator approved this action (approval mode, hours wait or cap overridden).
    pub approved: bool,
}

fn contains_ci(list: &[String], v: &str) -> bool {
    let v = v.trim();
    list.iter().any(|x| x.trim().eq_ignore_ascii_case(v))
}

/// Windows 10 builds below `min` ("1703", "1709") cannot take the action; other platforms
/// and unknown versions are left to the API, whose `OsPlatformNotSupported` is reported as
/// unsupported then (the API notes list no other platform rules, so none are invented).
/// Platforms the API notes leave out of isolation and scan support.
fn legacy_windows(d: &DeviceRecord) -> bool {
    d.os_platform.as_deref().is_some_and(|p| {
        [
            "Windows7",
            "Windows8",
            "Windows8.1",
            "WindowsXP",
            "WindowsVista",
        ]
        .iter()
        .any(|x| x.eq_ignore_ascii_case(p))
    })
}

fn windows10_too_old(d: &DeviceRecord, min: u32) -> bool {
    let is_w10 = d
        .os_platform
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("Windows10"));
    let ver = d
        .version
        .as_deref()
        .and_then(|v| v.get(..4))
        .and_then(|v| v.parse::<u32>().ok());
    is_w10 && ver.is_some_and(|v| v < min)
}

fn gate(
    mode: Mode,
    policy: &ResponseFile,
    ctx: GuardContext,
    cap: u32,
    what: ActionKind,
) -> Verdict {
    match mode {
        Mode::Off => Verdict::Off,
        _ if ctx.approved => Verdict::Go,
        Mode::Approval => Verdict::PendingApproval(format!(
            "{}は承認制です。担当者の承認後に実行します。",
            what.label_ja()
        )),
        Mode::Auto if ctx.recent_in_hour >= cap => Verdict::PendingApproval(format!(
            "直近 1 時間の{}が上限（{cap} 件）に達したため、承認を待ちます。",
            what.label_ja()
        )),
        Mode::Auto if policy.hours == Hours::BusinessHours && !ctx.in_service_hours => {
            Verdict::WaitingHours(format!(
                "{}は対応時間内（営業日 9:00〜17:30）に実行する設定のため、次の対応時間の開始か承認を待ちます。",
                what.label_ja()
            ))
        }
        Mode::Auto => Verdict::Go,
    }
}

/// Isolation of one device: protected devices are never isolated, whatever the mode or an
/// approval says.
pub fn guard_isolate(p: &ResponseFile, d: &DeviceRecord, ctx: GuardContext) -> Verdict {
    if p.mde.isolate == Mode::Off {
        return Verdict::Off;
    }
    if let Some(r) = protected_device(p, d) {
        return Verdict::Refused(r);
    }
    if legacy_windows(d) {
        return Verdict::Unsupported(format!(
            "{} はネットワーク分離に対応していません（Windows 10 1703 以降、Windows 11、対応 Linux が必要）。",
            d.os_platform.as_deref().unwrap_or("?")
        ));
    }
    let min = match p.mde.isolation_type {
        IsolationType::Full => 1703,
        IsolationType::Selective => 1709,
    };
    if windows10_too_old(d, min) {
        return Verdict::Unsupported(format!(
            "Windows 10 バージョン {} は{}分離に対応していません（{} 以降が必要）。",
            d.version.as_deref().unwrap_or("?"),
            match p.mde.isolation_type {
                IsolationType::Full => "完全",
                IsolationType::Selective => "選択的",
            },
            min
        ));
    }
    gate(
        p.mde.isolate,
        p,
        ctx,
        p.max_isolations_per_hour,
        ActionKind::Isolate,
    )
}

/// A full antivirus scan changes nothing on the device, so it has no blast-radius cap; a
/// protected device is still left alone (the customer asked for hands off).
pub fn guard_scan(p: &ResponseFile, d: &DeviceRecord, ctx: GuardContext) -> Verdict {
    if p.mde.scan == Mode::Off {
        return Verdict::Off;
    }
    if let Some(r) = protected_device(p, d) {
        return Verdict::Refused(r);
    }
    if legacy_windows(d) {
        return Verdict::Unsupported(format!(
            "{} はフルスキャンの API に対応していません（Windows 10 1709 以降、Windows 11 が必要）。",
            d.os_platform.as_deref().unwrap_or("?")
        ));
    }
    if windows10_too_old(d, 1709) {
        return Verdict::Unsupported(format!(
            "Windows 10 バージョン {} はフルスキャンの API に対応していません（1709 以降が必要）。",
            d.version.as_deref().unwrap_or("?")
        ));
    }
    gate(p.mde.scan, p, ctx, u32::MAX, ActionKind::Scan)
}

fn protected_device(p: &ResponseFile, d: &DeviceRecord) -> Option<String> {
    if contains_ci(&p.mde.protected_device_ids, &d.id) {
        return Some("保護対象のデバイス（protected_device_ids）のため実行しません。".into());
    }
    if let Some(g) = d.rbac_group_name.as_deref() {
        if contains_ci(&p.mde.protected_device_groups, g) {
            return Some(format!(
                "保護対象のデバイスグループ「{g}」のため実行しません。"
            ));
        }
    }
    if let Some(t) = d
        .machine_tags
        .iter()
        .find(|t| contains_ci(&p.mde.protected_device_tags, t))
    {
        return Some(format!(
            "保護対象のタグ「{t}」が付いたデバイスのため実行しません。"
        ));
    }
    None
}

/// Confirming a user compromised (user risk → high): protected users (break-glass admins)
/// never.
pub fn guard_confirm(
    p: &ResponseFile,
    user_id: &str,
    upn: Option<&str>,
    ctx: GuardContext,
) -> Verdict {
    if p.idp.confirm_compromised == Mode::Off {
        return Verdict::Off;
    }
    if contains_ci(&p.idp.protected_users, user_id)
        || upn.is_some_and(|u| contains_ci(&p.idp.protected_users, u))
    {
        return Verdict::Refused(
            "保護対象のユーザー（protected_users）のため侵害確認を行いません。".into(),
        );
    }
    gate(
        p.idp.confirm_compromised,
        p,
        ctx,
        p.max_user_confirmations_per_hour,
        ActionKind::ConfirmCompromised,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(toml_text: &str) -> ResponseFile {
        toml::from_str(toml_text).unwrap()
    }

    fn dev() -> DeviceRecord {
        DeviceRecord {
            id: "d1".into(),
            rbac_group_name: Some("東京本社PC".into()),
            machine_tags: vec!["VIP".into()],
            os_platform: Some("Windows11".into()),
            version: Some("23H2".into()),
        }
    }

    const NOW: GuardContext = GuardContext {
        in_service_hours: true,
        recent_in_hour: 0,
        approved: false,
    };

    #[test]
    fn defaults_are_all_off() {
        let p = policy("");
        assert_eq!(p, ResponseFile::default());
        assert_eq!(guard_isolate(&p, &dev(), NOW), Verdict::Off);
        assert_eq!(guard_scan(&p, &dev(), NOW), Verdict::Off);
        assert_eq!(guard_confirm(&p, "u1", None, NOW), Verdict::Off);
        assert_eq!(
            (p.max_isolations_per_hour, p.max_user_confirmations_per_hour),
            (3, 3)
        );
    }

    #[test]
    fn unknown_keys_and_values_are_refused() {
        assert!(toml::from_str::<ResponseFile>("hourz = \"always\"").is_err());
        assert!(toml::from_str::<ResponseFile>("[mde]\nisolate = \"yes\"").is_err());
        assert!(toml::from_str::<ResponseFile>("[mdo]\nair_approval_task = \"approval\"").is_err());
        assert!(toml::from_str::<ResponseFile>("[mde]\nisolation_type = \"partial\"").is_err());
    }

    #[test]
    fn isolation_guards() {
        let p = policy("[mde]\nisolate = \"auto\"\nprotected_device_groups = [\"サーバー\"]\nprotected_device_tags = [\"vip\"]\nprotected_device_ids = [\"D9\"]");
        // Protected by tag (case-insensitive), even when approved.
        let approved = GuardContext {
            approved: true,
            ..NOW
        };
        assert!(
            matches!(guard_isolate(&p, &dev(), approved), Verdict::Refused(r) if r.contains("VIP"))
        );
        let mut d = dev();
        d.machine_tags.clear();
        assert_eq!(guard_isolate(&p, &d, NOW), Verdict::Go);
        d.id = "d9".into();
        assert!(matches!(guard_isolate(&p, &d, NOW), Verdict::Refused(_)));
        d.id = "d1".into();
        d.rbac_group_name = Some("サーバー".into());
        assert!(
            matches!(guard_isolate(&p, &d, NOW), Verdict::Refused(r) if r.contains("サーバー"))
        );
        d.rbac_group_name = None;
        // Blast-radius cap: the 4th in an hour waits for approval; approval lets it go.
        let busy = GuardContext {
            recent_in_hour: 3,
            ..NOW
        };
        assert!(
            matches!(guard_isolate(&p, &d, busy), Verdict::PendingApproval(r) if r.contains("上限"))
        );
        assert_eq!(
            guard_isolate(
                &p,
                &d,
                GuardContext {
                    approved: true,
                    ..busy
                }
            ),
            Verdict::Go
        );
        // Old Windows 10 cannot be isolated.
        d.os_platform = Some("Windows10".into());
        d.version = Some("1607".into());
        assert!(matches!(
            guard_isolate(&p, &d, NOW),
            Verdict::Unsupported(_)
        ));
        d.version = Some("1703".into());
        assert_eq!(guard_isolate(&p, &d, NOW), Verdict::Go);
        let sel = policy("[mde]\nisolate = \"auto\"\nisolation_type = \"selective\"");
        assert!(
            matches!(guard_isolate(&sel, &d, NOW), Verdict::Unsupported(_)),
            "selective needs 1709"
        );
    }

    #[test]
    fn hours_and_approval_modes() {
        let p =
            policy("hours = \"business_hours\"\n[mde]\nisolate = \"auto\"\nscan = \"approval\"");
        let night = GuardContext {
            in_service_hours: false,
            ..NOW
        };
        assert!(matches!(
            guard_isolate(&p, &dev(), night),
            Verdict::WaitingHours(_)
        ));
        assert_eq!(guard_isolate(&p, &dev(), NOW), Verdict::Go);
        assert_eq!(
            guard_isolate(
                &p,
                &dev(),
                GuardContext {
                    approved: true,
                    ..night
                }
            ),
            Verdict::Go
        );
        assert!(matches!(
            guard_scan(&p, &dev(), NOW),
            Verdict::PendingApproval(_)
        ));
        assert_eq!(
            guard_scan(
                &p,
                &dev(),
                GuardContext {
                    approved: true,
                    ..NOW
                }
            ),
            Verdict::Go
        );
    }

    #[test]
    fn protected_users_are_never_confirmed() {
        let p = policy("[idp]\nconfirm_compromised = \"auto\"\nprotected_users = [\"BreakGlass@Kaede.example\", \"0000-1\"]");
        assert!(matches!(
            guard_confirm(&p, "u1", Some("breakglass@kaede.example"), NOW),
            Verdict::Refused(_)
        ));
        assert!(matches!(
            guard_confirm(
                &p,
                "0000-1",
                None,
                GuardContext {
                    approved: true,
                    ..NOW
                }
            ),
            Verdict::Refused(_)
        ));
        assert_eq!(
            guard_confirm(&p, "u2", Some("t.sato@kaede.example"), NOW),
            Verdict::Go
        );
        let busy = GuardContext {
            recent_in_hour: 3,
            ..NOW
        };
        assert!(matches!(
            guard_confirm(&p, "u2", None, busy),
            Verdict::PendingApproval(_)
        ));
    }
}
