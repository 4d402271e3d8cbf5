//! Inquiries (問い合わせ, OpsRamp service requests) and their promised answer times (seed
//! §5.3.3): what is due when, and what the tracker must do about it now. Pure: the caller
//! passes the time.

use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::calendar::{Calendar, CalendarError, InquiryKind};
use super::incident::jst;

/// Custom field (on the service request) naming our tenant id.
pub const TENANT_FIELD: &str = "mss_tenant";
/// Custom field naming the kind: `general` / `一般` or `business-impact` / `業務影響`.
pub const KIND_FIELD: &str = "inquiry_kind";
/// A reminder goes out when this much service time (or less) is left before the due time.
pub const REMIND_WITHIN_HOURS: i64 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inquiry {
    pub id: String,
    pub subject: String,
    pub status: String,
    pub received: DateTime<Utc>,
    pub due: Option<DateTime<Utc>>,
    /// (name, value) of the request's custom fields.
    pub fields: Vec<(String, String)>,
}

impl Inquiry {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn tenant(&self) -> Option<&str> {
        self.field(TENANT_FIELD)
    }

    /// A missing kind is a general inquiry (the common case); a value we cannot read is
    /// treated as business-impact, the stricter promise, so nothing is answered late
    /// because of a typo.
    pub fn kind(&self) -> InquiryKind {
        match self.field(KIND_FIELD) {
            None => InquiryKind::General,
            Some(v) => match v.to_lowercase().as_str() {
                "general" | "一般" | "一般問い合わせ" => InquiryKind::General,
                _ => InquiryKind::BusinessImpact,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InquiryAction {
    SetDue,
    Remind,
    Escalate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InquiryPlan {
    pub due: DateTime<FixedOffset>,
    pub actions: Vec<InquiryAction>,
    pub business_time_left: Duration,
}

pub fn kind_ja(k: InquiryKind) -> &'static str {
    match k {
        InquiryKind::General => "一般",
        InquiryKind::BusinessImpact => "業務影響",
    }
}

/// What is due, and what to do at `now`: set the due date when the request has none,
/// remind when two service hours or less are left, escalate once it has passed. Whether a
/// reminder or escalation was already sent is the caller's record, not decided here.
pub fn plan(
    cal: &Calendar,
    inq: &Inquiry,
    now: DateTime<Utc>,
) -> Result<InquiryPlan, CalendarError> {
    let due = match inq.due {
        Some(d) => d.fixed_offset(),
        None => cal.sla_due(inq.kind(), inq.received.fixed_offset())?,
    };
    let mut actions = Vec::new();
    if inq.due.is_none() {
        actions.push(InquiryAction::SetDue);
    }
    let now_f = now.fixed_offset();
    let left = cal.business_time_between(now_f, due)?;
    if now_f >= due {
        actions.push(InquiryAction::Escalate);
    } else if left <= Duration::hours(REMIND_WITHIN_HOURS) {
        actions.push(InquiryAction::Remind);
    }
    Ok(InquiryPlan {
        due,
        actions,
        business_time_left: left,
    })
}

fn hm(d: Duration) -> String {
    let m = d.num_minutes().max(0);
    if m >= 60 {
        format!("{}時間{:02}分", m / 60, m % 60)
    } else {
        format!("{m}分")
    }
}

/// Internal note (not mailed to the customer): the answer is due soon.
pub fn reminder_text(inq: &Inquiry, p: &InquiryPlan) -> String {
    format!(
        "【SLAリマインダー】本問い合わせ（{}）の回答期限は {} です。残りの対応時間（営業時間内）は {} です。期限内の回答をお願いします。",
        kind_ja(inq.kind()),
        jst(p.due.with_timezone(&Utc)),
        hm(p.business_time_left)
    )
}

/// Internal note: the promised time has passed.
pub fn escalation_text(inq: &Inquiry, p: &InquiryPlan) -> String {
    format!(
        "【SLA超過・エスカレーション】本問い合わせ（{}）の回答期限 {} を過ぎています。至急、担当者とリーダーで対応状況を確認してください。",
        kind_ja(inq.kind()),
        jst(p.due.with_timezone(&Utc))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inq(received: &str, kind: Option<&str>, due: Option<&str>) -> Inquiry {
        let mut fields = vec![(TENANT_FIELD.to_string(), "kaede-shoji".to_string())];
        if let Some(k) = kind {
            fields.push((KIND_FIELD.to_string(), k.to_string()));
        }
        Inquiry {
            id: "SRQ0000000001".into(),
            subject: "問い合わせ".into(),
            status: "New".into(),
            received: received.parse().unwrap(),
            due: due.map(|d| d.parse().unwrap()),
            fields,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn kinds() {
        assert_eq!(
            inq("2026-11-25T01:00:00Z", None, None).kind(),
            InquiryKind::General
        );
        assert_eq!(
            inq("2026-11-25T01:00:00Z", Some("業務影響"), None).kind(),
            InquiryKind::BusinessImpact
        );
        assert_eq!(
            inq("2026-11-25T01:00:00Z", Some("General"), None).kind(),
            InquiryKind::General
        );
        assert_eq!(
            inq("2026-11-25T01:00:00Z", Some("urgent?"), None).kind(),
            InquiryKind::BusinessImpact
        );
    }

    #[test]
    fn plans_over_time() {
        let cal = Calendar::default();
        // Business impact, received Wed 2026-11-25 10:00 JST → due the same day 17:30.
        let i = inq("2026-11-25T01:00:00Z", Some("business-impact"), None);
        let p = plan(&cal, &i, at("2026-11-25T11:00:00+09:00")).unwrap();
        assert_eq!(p.due.to_rfc3339(), "2026-11-25T17:30:00+09:00");
        assert_eq!(p.actions, vec![InquiryAction::SetDue]);
        let p = plan(&cal, &i, at("2026-11-25T15:30:00+09:00")).unwrap();
        assert_eq!(
            p.actions,
            vec![InquiryAction::SetDue, InquiryAction::Remind]
        );
        assert!(reminder_text(&i, &p).contains("2時間00分"));
        let p = plan(&cal, &i, at("2026-11-25T17:30:00+09:00")).unwrap();
        assert_eq!(
            p.actions,
            vec![InquiryAction::SetDue, InquiryAction::Escalate]
        );
        assert!(escalation_text(&i, &p).contains("2026年11月25日 17:30:00 (JST)"));
        // A due date already on the request is respected and not set again.
        let i = inq("2026-11-25T01:00:00Z", None, Some("2026-11-30T01:30:00Z"));
        let p = plan(&cal, &i, at("2026-11-27T16:00:00+09:00")).unwrap();
        assert_eq!(p.actions, vec![]);
        // Friday 17:00 with 1.5 h of Monday's hours before a 10:30 due: remind on Friday.
        let p = plan(&cal, &i, at("2026-11-27T17:00:00+09:00")).unwrap();
        assert_eq!(p.actions, vec![InquiryAction::Remind]);
    }
}
