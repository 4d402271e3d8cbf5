//! track-inquiries: every open service request gets its due date, one reminder when two
//! service hours or less are left, and one escalation once the due time has passed.

use serde::{Deserialize, Serialize};

use super::Deps;
use crate::domain::calendar::Calendar;
use crate::domain::inquiry::{self, InquiryAction};
use crate::ports::{Inquiries, OnceState};

/// Once-records of inquiries without a tenant field are kept under the provider's own name.
pub const PROVIDER_TENANT: &str = "_provider";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InquiryOutcome {
    pub open: usize,
    pub due_set: usize,
    pub reminded: usize,
    pub escalated: usize,
    pub errors: Vec<String>,
}

pub async fn run(
    deps: &Deps,
    inq: &dyn Inquiries,
    cal: &Calendar,
) -> anyhow::Result<InquiryOutcome> {
    let now = deps.clock.now();
    let open = inq.open_inquiries().await?;
    let mut out = InquiryOutcome {
        open: open.len(),
        ..Default::default()
    };
    for i in &open {
        if let Err(e) = one(deps, inq, cal, i, now, &mut out).await {
            out.errors.push(format!("{}: {e:#}", i.id));
        }
    }
    Ok(out)
}

async fn one(
    deps: &Deps,
    inq: &dyn Inquiries,
    cal: &Calendar,
    i: &inquiry::Inquiry,
    now: chrono::DateTime<chrono::Utc>,
    out: &mut InquiryOutcome,
) -> anyhow::Result<()> {
    let p = inquiry::plan(cal, i, now)?;
    let tenant = i.tenant().unwrap_or(PROVIDER_TENANT);
    for a in &p.actions {
        match a {
            InquiryAction::SetDue => {
                inq.set_due(&i.id, p.due.with_timezone(&chrono::Utc))
                    .await?;
                out.due_set += 1;
            }
            InquiryAction::Remind | InquiryAction::Escalate => {
                let (what, text) = match a {
                    InquiryAction::Remind => ("remind", inquiry::reminder_text(i, &p)),
                    _ => ("escalate", inquiry::escalation_text(i, &p)),
                };
                let key = format!("inquiry:{}:{what}", i.id);
                let ext = format!("mss-{what}-{}", i.id);
                let post = match deps.store.once_begin(tenant, &key).await? {
                    OnceState::Done => false,
                    OnceState::New => true,
                    OnceState::Pending => !inq.has_note(&i.id, &ext).await?,
                };
                if post {
                    inq.add_internal_note(&i.id, &text, &ext).await?;
                    match a {
                        InquiryAction::Remind => out.reminded += 1,
                        _ => out.escalated += 1,
                    }
                }
                deps.store.once_finish(tenant, &key).await?;
            }
        }
    }
    Ok(())
}
