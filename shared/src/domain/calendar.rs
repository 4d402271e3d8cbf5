//! Japanese business calendar for the managed SOC service.
//!
//! Everything here is a pure function of its inputs. The caller passes the
//! instant, so the system clock is never read: SLA deadlines come out the same
//! in production, in tests, when replaying an incident and in an audit.
//!
//! National holidays are computed from the rules of the Act on National
//! Holidays (国民の祝日に関する法律) instead of being loaded from the Cabinet
//! Office CSV. That keeps the module free of I/O and lets it answer for years
//! the CSV does not cover yet. The unit tests check the computation against the
//! CSV for every year from 2000 to 2027.
//!
//! Only 2000–2099 are supported. Before 2000 the Happy-Monday rules did not
//! apply, and the equinox formula is only valid up to 2099. Rather than guess,
//! the calendar refuses to answer outside that range.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike,
    Weekday,
};
use chrono_tz::Asia::Tokyo;
use serde::{Deserialize, Serialize};

/// First year whose national holidays this module can compute.
pub const FIRST_SUPPORTED_YEAR: i32 = 2000;
/// Last year whose national holidays this module can compute.
pub const LAST_SUPPORTED_YEAR: i32 = 2099;

/// Name given to both 振替休日 (substitute holiday) and 国民の休日 (a day
/// sandwiched between two holidays).
///
/// The Act itself calls both of them just "休日" (Article 3(2) and 3(3));
/// "振替休日" and "国民の休日" are everyday names. The Cabinet Office CSV
/// follows the Act and lists both as "休日". Using the same name lets callers
/// compare our output with the CSV line for line, and avoids inventing a
/// distinction that the official data does not make.
pub const REST_DAY_NAME: &str = "休日";

/// The CSV's name for 2019-05-01 (即位の日) and 2019-10-22
/// (即位礼正殿の儀の行われる日).
///
/// A one-off 2018 law made those days 休日 and said they count as national
/// holidays (祝日扱い), but did not make them named 国民の祝日. The CSV labels
/// them "休日（祝日扱い）" with full-width parentheses, and we copy that label
/// exactly. They still count as holidays for the sandwich rule, which is why
/// 2019-04-30 and 2019-05-02 became 休日.
pub const DEEMED_HOLIDAY_NAME: &str = "休日（祝日扱い）";

/// The CSV's label for 2019-10-14. The law renaming 体育の日 to スポーツの日 was
/// passed in 2018 but took effect in 2020. For 2019 the Cabinet Office listed
/// both names, and we copy that label so the 2019 comparison stays exact.
const SPORTS_DAY_2019_NAME: &str = "体育の日（スポーツの日）";

/// The 2005 amendment, in force from 2007, lets a substitute holiday move past
/// a run of holidays. Before 2007 it could only fall on the Monday.
const EXTENDED_SUBSTITUTE_FROM: i32 = 2007;

const GENERAL_SLA_BUSINESS_DAYS: u32 = 3;
const REPORT_DUE_BUSINESS_DAY: u32 = 10;

/// Time between the business-impact cut-off and closing time. The contract
/// gives 17:00 and 17:30, so the margin is 30 minutes. Keeping the margin
/// rather than a fixed 17:00 stops the cut-off from landing after closing time
/// when the service hours are changed.
const IMPACT_CUTOFF_MARGIN_SECS: u32 = 30 * 60;

const DEFAULT_SERVICE_START: NaiveTime = match NaiveTime::from_hms_opt(9, 0, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};
const DEFAULT_SERVICE_END: NaiveTime = match NaiveTime::from_hms_opt(17, 30, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};
const DEFAULT_IMPACT_CUTOFF: NaiveTime = match NaiveTime::from_hms_opt(17, 0, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};

/// Why a calendar question could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarError {
    /// The answer would rely on a year outside 2000–2099, where the holiday
    /// rules are not known. A deadline based on guessed holidays would be
    /// worse than no deadline.
    YearOutOfRange(i32),
    /// The month and day are not a real calendar day (Feb 29 is accepted).
    InvalidProviderHoliday { month: u32, day: u32 },
    /// The provider holidays cover every day of the year, so no deadline
    /// could ever be reached.
    NoBusinessDays,
    /// Service hours must start before they end on the same day. Overnight
    /// service is not part of this contract.
    InvalidServiceHours { start: NaiveTime, end: NaiveTime },
    /// A cut-off after closing time would give a same-day due time that has
    /// already passed.
    InvalidImpactCutoff { cutoff: NaiveTime, end: NaiveTime },
    /// The month is not between 1 and 12.
    InvalidMonth(u32),
    /// The month after the reported one has fewer than 10 business days, so
    /// the contract does not define a due date. This only happens with an
    /// unusual set of provider holidays.
    TooFewBusinessDays { year: i32, month: u32 },
    /// The text was not "general" or "business-impact".
    UnknownInquiryKind(String),
}

impl fmt::Display for CalendarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::YearOutOfRange(y) => write!(
                f,
                "year {y} is outside the supported range {FIRST_SUPPORTED_YEAR}-{LAST_SUPPORTED_YEAR}"
            ),
            Self::InvalidProviderHoliday { month, day } => {
                write!(f, "provider holiday {month:02}-{day:02} is not a calendar day")
            }
            Self::NoBusinessDays => write!(f, "provider holidays cover every day of the year"),
            Self::InvalidServiceHours { start, end } => {
                write!(f, "service hours must start before they end (got {start}-{end})")
            }
            Self::InvalidImpactCutoff { cutoff, end } => write!(
                f,
                "business-impact cut-off {cutoff} must not be after the end of service hours {end}"
            ),
            Self::InvalidMonth(m) => write!(f, "month {m} is not in 1-12"),
            Self::TooFewBusinessDays { year, month } => write!(
                f,
                "{year}-{month:02} has fewer than {REPORT_DUE_BUSINESS_DAY} business days"
            ),
            Self::UnknownInquiryKind(s) => write!(
                f,
                "unknown inquiry kind {s:?} (expected \"general\" or \"business-impact\")"
            ),
        }
    }
}

impl std::error::Error for CalendarError {}

/// The two kinds of inquiry have different SLAs, so the kind has to be
/// recorded when an inquiry is received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InquiryKind {
    General,
    BusinessImpact,
}

impl InquiryKind {
    /// The same spelling as serde uses, so CLI input, config and stored
    /// records all agree.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::BusinessImpact => "business-impact",
        }
    }
}

impl fmt::Display for InquiryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InquiryKind {
    type Err = CalendarError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "general" => Ok(Self::General),
            "business-impact" => Ok(Self::BusinessImpact),
            other => Err(CalendarError::UnknownInquiryKind(other.to_owned())),
        }
    }
}

/// One day, the same every year, when the provider is closed (当社指定の休日).
///
/// Stored as a month and day rather than a date because provider holidays
/// such as the year-end break come back every year. A period is stored as its
/// separate days (see [`ProviderHoliday::range`]), so a period that crosses the
/// year end, like Dec 29 – Jan 3, needs no special case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProviderHoliday {
    pub month: u32,
    pub day: u32,
}

impl ProviderHoliday {
    /// Feb 29 is accepted (it is checked against a leap year). A provider may
    /// close on that day; in other years it simply never happens.
    pub fn new(month: u32, day: u32) -> Result<Self, CalendarError> {
        if NaiveDate::from_ymd_opt(2000, month, day).is_some() {
            Ok(Self { month, day })
        } else {
            Err(CalendarError::InvalidProviderHoliday { month, day })
        }
    }

    /// Every day from `first` to `last`, both included. If `last` comes before
    /// `first` in the year, the period wraps past Dec 31, because that is how
    /// year-end breaks are written.
    pub fn range(first: Self, last: Self) -> Result<Vec<Self>, CalendarError> {
        // Leap year, so a range that covers Feb 29 includes it.
        let start = first.in_year(2000)?;
        let end = last.in_year(2000)?;
        let days: Vec<NaiveDate> = if start <= end {
            start.iter_days().take_while(|d| *d <= end).collect()
        } else {
            let mut v: Vec<NaiveDate> =
                start.iter_days().take_while(|d| d.year() == 2000).collect();
            v.extend(
                NaiveDate::from_ymd_opt(2000, 1, 1)
                    .into_iter()
                    .flat_map(|jan1| jan1.iter_days().take_while(move |d| *d <= end)),
            );
            v
        };
        Ok(days
            .into_iter()
            .map(|d| Self {
                month: d.month(),
                day: d.day(),
            })
            .collect())
    }

    /// The contract's default break, Dec 29 – Jan 3 (年末年始). It has to be
    /// configured because only Jan 1 is a national holiday. Listed in sorted
    /// order, the same order [`Calendar::new`] stores.
    pub fn year_end_defaults() -> Vec<Self> {
        [(1, 1), (1, 2), (1, 3), (12, 29), (12, 30), (12, 31)]
            .into_iter()
            .map(|(month, day)| Self { month, day })
            .collect()
    }

    fn in_year(self, year: i32) -> Result<NaiveDate, CalendarError> {
        NaiveDate::from_ymd_opt(year, self.month, self.day).ok_or(
            CalendarError::InvalidProviderHoliday {
                month: self.month,
                day: self.day,
            },
        )
    }

    fn matches(self, d: NaiveDate) -> bool {
        d.month() == self.month && d.day() == self.day
    }
}

/// The calendar as it appears in configuration files.
///
/// It is kept separate from [`Calendar`] so that deserializing goes through the
/// same checks as [`Calendar::new`]. A config that has not been checked can
/// never be used to compute a deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarConfig {
    pub provider_holidays: Vec<ProviderHoliday>,
    pub service_start: NaiveTime,
    pub service_end: NaiveTime,
    /// Left out, it is 30 minutes before `service_end` (17:00 by default), for
    /// the reason given on [`Calendar::new`].
    pub impact_cutoff: Option<NaiveTime>,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        Self {
            provider_holidays: ProviderHoliday::year_end_defaults(),
            service_start: DEFAULT_SERVICE_START,
            service_end: DEFAULT_SERVICE_END,
            impact_cutoff: None,
        }
    }
}

/// The provider's business calendar. It decides business days, support hours
/// and SLA due times.
///
/// Every wall-clock time here is Asia/Tokyo, because the contract states its
/// times in JST whatever the customer's offset. Inputs may use any offset.
/// Outputs are in +09:00, so they can be shown to the customer as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CalendarConfig", into = "CalendarConfig")]
pub struct Calendar {
    provider_holidays: Vec<ProviderHoliday>,
    service_start: NaiveTime,
    service_end: NaiveTime,
    impact_cutoff: NaiveTime,
}

impl Default for Calendar {
    /// The contract's standard terms: closed Dec 29 – Jan 3, open 09:00–17:30,
    /// business-impact cut-off at 17:00.
    fn default() -> Self {
        Self {
            provider_holidays: ProviderHoliday::year_end_defaults(),
            service_start: DEFAULT_SERVICE_START,
            service_end: DEFAULT_SERVICE_END,
            impact_cutoff: DEFAULT_IMPACT_CUTOFF,
        }
    }
}

impl TryFrom<CalendarConfig> for Calendar {
    type Error = CalendarError;

    fn try_from(c: CalendarConfig) -> Result<Self, Self::Error> {
        let cal = Self::new(c.provider_holidays, c.service_start, c.service_end)?;
        match c.impact_cutoff {
            Some(cutoff) => cal.with_impact_cutoff(cutoff),
            None => Ok(cal),
        }
    }
}

impl From<Calendar> for CalendarConfig {
    fn from(c: Calendar) -> Self {
        Self {
            provider_holidays: c.provider_holidays,
            service_start: c.service_start,
            service_end: c.service_end,
            impact_cutoff: Some(c.impact_cutoff),
        }
    }
}

impl Calendar {
    /// The business-impact cut-off is set to 30 minutes before `service_end`
    /// (never before `service_start`). With the standard hours that gives the
    /// contract's 17:00. Keeping the 30 minutes, rather than a fixed 17:00,
    /// means that if the hours change the desk still has half an hour for a
    /// same-day deadline and the cut-off never falls after closing time. Use
    /// [`Calendar::with_impact_cutoff`] to set another time.
    pub fn new(
        provider_holidays: Vec<ProviderHoliday>,
        service_start: NaiveTime,
        service_end: NaiveTime,
    ) -> Result<Self, CalendarError> {
        if service_start >= service_end {
            return Err(CalendarError::InvalidServiceHours {
                start: service_start,
                end: service_end,
            });
        }
        let mut days = provider_holidays;
        for h in &days {
            ProviderHoliday::new(h.month, h.day)?;
        }
        days.sort_unstable();
        days.dedup();
        // 366 distinct valid month/days means every day of a leap year is
        // covered. Rejecting that here gives a clear error instead of a
        // search that runs to 2099 and then fails.
        if days.len() >= 366 {
            return Err(CalendarError::NoBusinessDays);
        }
        let cutoff_secs = service_end
            .num_seconds_from_midnight()
            .saturating_sub(IMPACT_CUTOFF_MARGIN_SECS)
            .max(service_start.num_seconds_from_midnight());
        let impact_cutoff =
            NaiveTime::from_num_seconds_from_midnight_opt(cutoff_secs, 0).unwrap_or(service_start);
        Ok(Self {
            provider_holidays: days,
            service_start,
            service_end,
            impact_cutoff,
        })
    }

    /// A business-impact inquiry received before this time on a business day
    /// is due the same day. The cut-off may be before opening time, but not
    /// after closing time.
    pub fn with_impact_cutoff(mut self, cutoff: NaiveTime) -> Result<Self, CalendarError> {
        if cutoff > self.service_end {
            return Err(CalendarError::InvalidImpactCutoff {
                cutoff,
                end: self.service_end,
            });
        }
        self.impact_cutoff = cutoff;
        Ok(self)
    }

    pub fn provider_holidays(&self) -> &[ProviderHoliday] {
        &self.provider_holidays
    }

    pub fn service_start(&self) -> NaiveTime {
        self.service_start
    }

    pub fn service_end(&self) -> NaiveTime {
        self.service_end
    }

    pub fn impact_cutoff(&self) -> NaiveTime {
        self.impact_cutoff
    }

    pub fn is_provider_holiday(&self, d: NaiveDate) -> bool {
        self.provider_holidays.iter().any(|h| h.matches(d))
    }

    /// Returns `false` for dates outside 2000–2099. The holidays of those
    /// years are not known, so the calendar will not claim the desk is open.
    /// The date-stepping methods return an error there instead of skipping
    /// ahead without notice.
    pub fn is_business_day(&self, d: NaiveDate) -> bool {
        self.check_business_day(d).unwrap_or(false)
    }

    /// The first business day strictly after `d`. Used for "next business
    /// day" rules, so `d` never counts, even when it is a business day itself.
    pub fn next_business_day(&self, d: NaiveDate) -> Result<NaiveDate, CalendarError> {
        let mut cur = d;
        loop {
            cur = cur
                .succ_opt()
                .ok_or(CalendarError::YearOutOfRange(cur.year()))?;
            if self.check_business_day(cur)? {
                return Ok(cur);
            }
        }
    }

    /// The `n`-th business day strictly after `d`. `d` never counts, so a
    /// Saturday plus 1 is the following Monday. `n == 0` returns `d`
    /// unchanged, whether or not it is a business day.
    ///
    /// Fails when the walk leaves 2000–2099, so even a huge `n` finishes
    /// after at most about 36,500 steps.
    pub fn add_business_days(&self, d: NaiveDate, n: u32) -> Result<NaiveDate, CalendarError> {
        let mut cur = d;
        for _ in 0..n {
            cur = self.next_business_day(cur)?;
        }
        Ok(cur)
    }

    /// The SLA due time for an inquiry received at `received` (any offset),
    /// given in +09:00.
    ///
    /// The rules use the JST calendar date of receipt. An inquiry sent at
    /// 23:30 UTC already belongs to the next day in Tokyo, and the contract
    /// counts days in Tokyo.
    /// - General: closing time on the 3rd business day after the day of
    ///   receipt. The day of receipt never counts, so a reply always has at
    ///   least three full business days.
    /// - Business impact: closing time the same day if received on a business
    ///   day before the cut-off (17:00 by default). Otherwise closing time on
    ///   the next business day. This leaves the desk at least 30 minutes
    ///   before a same-day deadline.
    pub fn sla_due(
        &self,
        kind: InquiryKind,
        received: DateTime<FixedOffset>,
    ) -> Result<DateTime<FixedOffset>, CalendarError> {
        let local = tokyo_local(received)?;
        let date = local.date();
        let due_date = match kind {
            InquiryKind::General => self.add_business_days(date, GENERAL_SLA_BUSINESS_DAYS)?,
            InquiryKind::BusinessImpact => {
                if self.check_business_day(date)? && local.time() < self.impact_cutoff {
                    date
                } else {
                    self.next_business_day(date)?
                }
            }
        };
        from_tokyo_local(due_date.and_time(self.service_end))
    }

    /// The due date of the monthly report for `year`-`month`: the 10th
    /// business day of the following month.
    ///
    /// Returns a date, not a time, because the contract gives no hour for
    /// reports. The following month's 1st counts if it is a business day.
    pub fn report_due(&self, year: i32, month: u32) -> Result<NaiveDate, CalendarError> {
        if !(1..=12).contains(&month) {
            return Err(CalendarError::InvalidMonth(month));
        }
        let (due_year, due_month) = if month == 12 {
            (
                year.checked_add(1)
                    .ok_or(CalendarError::YearOutOfRange(year))?,
                1,
            )
        } else {
            (year, month + 1)
        };
        let last_of_month = NaiveDate::from_ymd_opt(due_year, due_month, 1)
            .and_then(|first| first.pred_opt())
            .ok_or(CalendarError::YearOutOfRange(due_year))?;
        let due = self.add_business_days(last_of_month, REPORT_DUE_BUSINESS_DAY)?;
        if due.month() != due_month {
            return Err(CalendarError::TooFewBusinessDays {
                year: due_year,
                month: due_month,
            });
        }
        Ok(due)
    }

    /// Whether the support desk is open at `t` (any offset). It is open on
    /// business days from the start of service hours up to, but not
    /// including, the end. At 17:30:00 the desk is already closed, so an
    /// inquiry received then waits for the next opening. Outside 2000–2099
    /// this returns `false`, for the reason given on
    /// [`Calendar::is_business_day`].
    pub fn is_within_service_hours(&self, t: DateTime<FixedOffset>) -> bool {
        tokyo_local(t).is_ok_and(|local| {
            self.is_business_day(local.date())
                && local.time() >= self.service_start
                && local.time() < self.service_end
        })
    }

    /// The next moment the desk is open: `t` itself if it is open now,
    /// otherwise the next opening time. The result is in +09:00, so it is
    /// ready to tell a customer when someone will pick up.
    pub fn next_service_start(
        &self,
        t: DateTime<FixedOffset>,
    ) -> Result<DateTime<FixedOffset>, CalendarError> {
        let local = tokyo_local(t)?;
        let date = local.date();
        if self.check_business_day(date)? {
            if local.time() < self.service_start {
                return from_tokyo_local(date.and_time(self.service_start));
            }
            if local.time() < self.service_end {
                return from_tokyo_local(local);
            }
        }
        from_tokyo_local(self.next_business_day(date)?.and_time(self.service_start))
    }

    /// Service-hours time between `from` and `to` (zero if `to` is not later): how much
    /// of the support desk's working time is left before a due time. Counts only 9:00–17:30
    /// (as configured) on business days; a reminder "two business hours before" uses this.
    pub fn business_time_between(
        &self,
        from: DateTime<FixedOffset>,
        to: DateTime<FixedOffset>,
    ) -> Result<chrono::Duration, CalendarError> {
        if to <= from {
            return Ok(chrono::Duration::zero());
        }
        let (a, b) = (tokyo_local(from)?, tokyo_local(to)?);
        let mut total = chrono::Duration::zero();
        let mut day = a.date();
        // A due time is at most weeks away; the bound only stops a runaway loop.
        for _ in 0..800 {
            if day > b.date() {
                break;
            }
            if self.check_business_day(day)? {
                let open = day.and_time(self.service_start).max(a);
                let close = day.and_time(self.service_end).min(b);
                if close > open {
                    total += close - open;
                }
            }
            day = day
                .succ_opt()
                .ok_or(CalendarError::YearOutOfRange(day.year()))?;
        }
        Ok(total)
    }

    fn check_business_day(&self, d: NaiveDate) -> Result<bool, CalendarError> {
        let holidays = national_holidays(d.year())?;
        Ok(!matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
            && !self.is_provider_holiday(d)
            && !holidays.iter().any(|(h, _)| *h == d))
    }
}

/// Checks the year on the UTC side before converting, so an extreme
/// `DateTime` fails with an error instead of overflowing in the conversion.
fn tokyo_local(t: DateTime<FixedOffset>) -> Result<NaiveDateTime, CalendarError> {
    let utc_year = t.naive_utc().year();
    if !(FIRST_SUPPORTED_YEAR - 1..=LAST_SUPPORTED_YEAR).contains(&utc_year) {
        return Err(CalendarError::YearOutOfRange(utc_year));
    }
    Ok(t.with_timezone(&Tokyo).naive_local())
}

/// Goes through the IANA zone rather than a hard-coded +09:00. Japan has had
/// no DST since 1951, so this is +09:00 in practice, but the intent ("Tokyo
/// time") stays visible in the code.
fn from_tokyo_local(local: NaiveDateTime) -> Result<DateTime<FixedOffset>, CalendarError> {
    Tokyo
        .from_local_datetime(&local)
        .single()
        .map(|t| t.fixed_offset())
        .ok_or(CalendarError::YearOutOfRange(local.year()))
}

/// All national holidays of `year`, sorted by date, with the names the Cabinet
/// Office CSV uses, including the "休日" entries for 振替休日 and 国民の休日.
///
/// Returns an error outside 2000–2099 rather than an empty list, because an
/// empty list would read as "no holidays that year".
///
/// The equinox days come from the standard approximation. The legally binding
/// dates are announced each February for the following year (暦要項), and for
/// years after the latest announcement the result is a prediction.
pub fn national_holidays(year: i32) -> Result<Vec<(NaiveDate, &'static str)>, CalendarError> {
    if !(FIRST_SUPPORTED_YEAR..=LAST_SUPPORTED_YEAR).contains(&year) {
        return Err(CalendarError::YearOutOfRange(year));
    }
    let statutory = statutory_holidays(year);
    let is_statutory = |d: NaiveDate| statutory.iter().any(|(h, _)| *h == d);
    let extended = year >= EXTENDED_SUBSTITUTE_FROM;

    let mut all = statutory.clone();
    for &(d, _) in &statutory {
        if d.weekday() == Weekday::Sun {
            if let Some(sub) = substitute_for(d, extended, is_statutory) {
                all.push((sub, REST_DAY_NAME));
            }
        }
    }
    // 国民の休日: a day whose day before and day after are both 祝日 (not 休日).
    // Before 2007 the Act left out Sundays and substitute holidays. From 2007
    // it only requires that the day is not itself a 祝日. Checking `all` covers
    // both: a substitute day is never listed twice.
    for &(d, _) in &statutory {
        let Some(mid) = d.succ_opt() else { continue };
        let Some(after) = mid.succ_opt() else {
            continue;
        };
        let sandwiched = is_statutory(after) && !all.iter().any(|(h, _)| *h == mid);
        if sandwiched && (extended || mid.weekday() != Weekday::Sun) {
            all.push((mid, REST_DAY_NAME));
        }
    }
    all.sort_by_key(|(d, _)| *d);
    Ok(all)
}

/// The national holiday name for `d`, or `None` if it is not one. `None` is
/// also returned outside 2000–2099, where this module does not know. Use
/// [`national_holidays`] if the difference matters.
pub fn holiday_name(d: NaiveDate) -> Option<&'static str> {
    national_holidays(d.year())
        .ok()?
        .into_iter()
        .find(|(h, _)| *h == d)
        .map(|(_, name)| name)
}

/// Where the 振替休日 for a Sunday holiday falls, if anywhere.
///
/// From 2007 it is the first day after the Sunday that is not a 祝日. Before
/// 2007 it was only ever the Monday, and there was none if that Monday was
/// already a 祝日. For 2000–2006 the two rules give the same result, because
/// no Sunday holiday in those years was followed by a Monday holiday (checked
/// in the tests). Both rules are kept anyway so the code says what the Act
/// said.
fn substitute_for(
    sunday: NaiveDate,
    extended: bool,
    is_statutory: impl Fn(NaiveDate) -> bool,
) -> Option<NaiveDate> {
    let mut day = sunday.succ_opt()?;
    while is_statutory(day) {
        if !extended {
            return None;
        }
        day = day.succ_opt()?;
    }
    Some(day)
}

/// The 祝日 themselves, plus the 2019 days that counted as 祝日, without
/// 振替休日 or 国民の休日. Those two rules are worked out from this list.
fn statutory_holidays(year: i32) -> Vec<(NaiveDate, &'static str)> {
    let on = |month: u32, day: u32| NaiveDate::from_ymd_opt(year, month, day);
    let monday =
        |month: u32, nth: u8| NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Mon, nth);

    let mut days: Vec<(Option<NaiveDate>, &'static str)> = vec![
        (on(1, 1), "元日"),
        // Happy Monday since 2000.
        (monday(1, 2), "成人の日"),
        (on(2, 11), "建国記念の日"),
        (on(3, vernal_equinox_day(year)), "春分の日"),
        (
            on(4, 29),
            if year >= 2007 {
                "昭和の日"
            } else {
                "みどりの日"
            },
        ),
        (on(5, 3), "憲法記念日"),
        (on(5, 5), "こどもの日"),
        (
            match year {
                // Moved for the Tokyo Olympics by a one-off law.
                2020 => on(7, 23),
                2021 => on(7, 22),
                y if y >= 2003 => monday(7, 3),
                _ => on(7, 20),
            },
            "海の日",
        ),
        (
            if year >= 2003 {
                monday(9, 3)
            } else {
                on(9, 15)
            },
            "敬老の日",
        ),
        (on(9, autumnal_equinox_day(year)), "秋分の日"),
        match year {
            2020 => (on(7, 24), "スポーツの日"),
            2021 => (on(7, 23), "スポーツの日"),
            2019 => (monday(10, 2), SPORTS_DAY_2019_NAME),
            y if y >= 2022 => (monday(10, 2), "スポーツの日"),
            _ => (monday(10, 2), "体育の日"),
        },
        (on(11, 3), "文化の日"),
        (on(11, 23), "勤労感謝の日"),
    ];
    if year >= 2007 {
        // Before 2007, May 4 was a holiday only through the sandwich rule.
        days.push((on(5, 4), "みどりの日"));
    }
    if year >= 2016 {
        let mountain_day = match year {
            2020 => on(8, 10),
            // A Sunday. The general rule then makes Aug 9 a 振替休日.
            2021 => on(8, 8),
            _ => on(8, 11),
        };
        days.push((mountain_day, "山の日"));
    }
    // The Emperor's Birthday follows the reigning Emperor. 2019 had none:
    // Akihito abdicated on Apr 30 and Naruhito's birthday is in February.
    if year <= 2018 {
        days.push((on(12, 23), "天皇誕生日"));
    } else if year >= 2020 {
        days.push((on(2, 23), "天皇誕生日"));
    }
    if year == 2019 {
        days.push((on(5, 1), DEEMED_HOLIDAY_NAME));
        days.push((on(10, 22), DEEMED_HOLIDAY_NAME));
    }

    let mut out: Vec<(NaiveDate, &'static str)> = days
        .into_iter()
        .filter_map(|(d, name)| d.map(|d| (d, name)))
        .collect();
    out.sort_by_key(|(d, _)| *d);
    out
}

/// Day of March. Uses the standard formula
/// int(20.8431 + 0.242194·(y−1980) − int((y−1980)/4)), valid 1980–2099,
/// computed in millionths with integers so no floating-point rounding can move
/// a date (e.g. 2012's autumnal value is 22.999008).
fn vernal_equinox_day(year: i32) -> u32 {
    equinox_day(20_843_100, year)
}

/// Day of September. Same formula with 23.2488.
fn autumnal_equinox_day(year: i32) -> u32 {
    equinox_day(23_248_800, year)
}

fn equinox_day(base_millionths: i64, year: i32) -> u32 {
    let n = i64::from(year) - 1980;
    let micro = base_millionths + 242_194 * n - 1_000_000 * n.div_euclid(4);
    u32::try_from(micro.div_euclid(1_000_000)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Cabinet Office list (syukujitsu.csv), line for line, for 2000–2027.
    /// 2000–2025 are copied from the CSV. 2026–2027 are the entries in the
    /// version published in February 2026, which includes the 2027 equinoxes.
    /// They were also worked out by hand (see `hand_checked_2026_2027`).
    const OFFICIAL_CSV: &str = "\
2000/1/1,元日
2000/1/10,成人の日
2000/2/11,建国記念の日
2000/3/20,春分の日
2000/4/29,みどりの日
2000/5/3,憲法記念日
2000/5/4,休日
2000/5/5,こどもの日
2000/7/20,海の日
2000/9/15,敬老の日
2000/9/23,秋分の日
2000/10/9,体育の日
2000/11/3,文化の日
2000/11/23,勤労感謝の日
2000/12/23,天皇誕生日
2001/1/1,元日
2001/1/8,成人の日
2001/2/11,建国記念の日
2001/2/12,休日
2001/3/20,春分の日
2001/4/29,みどりの日
2001/4/30,休日
2001/5/3,憲法記念日
2001/5/4,休日
2001/5/5,こどもの日
2001/7/20,海の日
2001/9/15,敬老の日
2001/9/23,秋分の日
2001/9/24,休日
2001/10/8,体育の日
2001/11/3,文化の日
2001/11/23,勤労感謝の日
2001/12/23,天皇誕生日
2001/12/24,休日
2002/1/1,元日
2002/1/14,成人の日
2002/2/11,建国記念の日
2002/3/21,春分の日
2002/4/29,みどりの日
2002/5/3,憲法記念日
2002/5/4,休日
2002/5/5,こどもの日
2002/5/6,休日
2002/7/20,海の日
2002/9/15,敬老の日
2002/9/16,休日
2002/9/23,秋分の日
2002/10/14,体育の日
2002/11/3,文化の日
2002/11/4,休日
2002/11/23,勤労感謝の日
2002/12/23,天皇誕生日
2003/1/1,元日
2003/1/13,成人の日
2003/2/11,建国記念の日
2003/3/21,春分の日
2003/4/29,みどりの日
2003/5/3,憲法記念日
2003/5/5,こどもの日
2003/7/21,海の日
2003/9/15,敬老の日
2003/9/23,秋分の日
2003/10/13,体育の日
2003/11/3,文化の日
2003/11/23,勤労感謝の日
2003/11/24,休日
2003/12/23,天皇誕生日
2004/1/1,元日
2004/1/12,成人の日
2004/2/11,建国記念の日
2004/3/20,春分の日
2004/4/29,みどりの日
2004/5/3,憲法記念日
2004/5/4,休日
2004/5/5,こどもの日
2004/7/19,海の日
2004/9/20,敬老の日
2004/9/23,秋分の日
2004/10/11,体育の日
2004/11/3,文化の日
2004/11/23,勤労感謝の日
2004/12/23,天皇誕生日
2005/1/1,元日
2005/1/10,成人の日
2005/2/11,建国記念の日
2005/3/20,春分の日
2005/3/21,休日
2005/4/29,みどりの日
2005/5/3,憲法記念日
2005/5/4,休日
2005/5/5,こどもの日
2005/7/18,海の日
2005/9/19,敬老の日
2005/9/23,秋分の日
2005/10/10,体育の日
2005/11/3,文化の日
2005/11/23,勤労感謝の日
2005/12/23,天皇誕生日
2006/1/1,元日
2006/1/2,休日
2006/1/9,成人の日
2006/2/11,建国記念の日
2006/3/21,春分の日
2006/4/29,みどりの日
2006/5/3,憲法記念日
2006/5/4,休日
2006/5/5,こどもの日
2006/7/17,海の日
2006/9/18,敬老の日
2006/9/23,秋分の日
2006/10/9,体育の日
2006/11/3,文化の日
2006/11/23,勤労感謝の日
2006/12/23,天皇誕生日
2007/1/1,元日
2007/1/8,成人の日
2007/2/11,建国記念の日
2007/2/12,休日
2007/3/21,春分の日
2007/4/29,昭和の日
2007/4/30,休日
2007/5/3,憲法記念日
2007/5/4,みどりの日
2007/5/5,こどもの日
2007/7/16,海の日
2007/9/17,敬老の日
2007/9/23,秋分の日
2007/9/24,休日
2007/10/8,体育の日
2007/11/3,文化の日
2007/11/23,勤労感謝の日
2007/12/23,天皇誕生日
2007/12/24,休日
2008/1/1,元日
2008/1/14,成人の日
2008/2/11,建国記念の日
2008/3/20,春分の日
2008/4/29,昭和の日
2008/5/3,憲法記念日
2008/5/4,みどりの日
2008/5/5,こどもの日
2008/5/6,休日
2008/7/21,海の日
2008/9/15,敬老の日
2008/9/23,秋分の日
2008/10/13,体育の日
2008/11/3,文化の日
2008/11/23,勤労感謝の日
2008/11/24,休日
2008/12/23,天皇誕生日
2009/1/1,元日
2009/1/12,成人の日
2009/2/11,建国記念の日
2009/3/20,春分の日
2009/4/29,昭和の日
2009/5/3,憲法記念日
2009/5/4,みどりの日
2009/5/5,こどもの日
2009/5/6,休日
2009/7/20,海の日
2009/9/21,敬老の日
2009/9/22,休日
2009/9/23,秋分の日
2009/10/12,体育の日
2009/11/3,文化の日
2009/11/23,勤労感謝の日
2009/12/23,天皇誕生日
2010/1/1,元日
2010/1/11,成人の日
2010/2/11,建国記念の日
2010/3/21,春分の日
2010/3/22,休日
2010/4/29,昭和の日
2010/5/3,憲法記念日
2010/5/4,みどりの日
2010/5/5,こどもの日
2010/7/19,海の日
2010/9/20,敬老の日
2010/9/23,秋分の日
2010/10/11,体育の日
2010/11/3,文化の日
2010/11/23,勤労感謝の日
2010/12/23,天皇誕生日
2011/1/1,元日
2011/1/10,成人の日
2011/2/11,建国記念の日
2011/3/21,春分の日
2011/4/29,昭和の日
2011/5/3,憲法記念日
2011/5/4,みどりの日
2011/5/5,こどもの日
2011/7/18,海の日
2011/9/19,敬老の日
2011/9/23,秋分の日
2011/10/10,体育の日
2011/11/3,文化の日
2011/11/23,勤労感謝の日
2011/12/23,天皇誕生日
2012/1/1,元日
2012/1/2,休日
2012/1/9,成人の日
2012/2/11,建国記念の日
2012/3/20,春分の日
2012/4/29,昭和の日
2012/4/30,休日
2012/5/3,憲法記念日
2012/5/4,みどりの日
2012/5/5,こどもの日
2012/7/16,海の日
2012/9/17,敬老の日
2012/9/22,秋分の日
2012/10/8,体育の日
2012/11/3,文化の日
2012/11/23,勤労感謝の日
2012/12/23,天皇誕生日
2012/12/24,休日
2013/1/1,元日
2013/1/14,成人の日
2013/2/11,建国記念の日
2013/3/20,春分の日
2013/4/29,昭和の日
2013/5/3,憲法記念日
2013/5/4,みどりの日
2013/5/5,こどもの日
2013/5/6,休日
2013/7/15,海の日
2013/9/16,敬老の日
2013/9/23,秋分の日
2013/10/14,体育の日
2013/11/3,文化の日
2013/11/4,休日
2013/11/23,勤労感謝の日
2013/12/23,天皇誕生日
2014/1/1,元日
2014/1/13,成人の日
2014/2/11,建国記念の日
2014/3/21,春分の日
2014/4/29,昭和の日
2014/5/3,憲法記念日
2014/5/4,みどりの日
2014/5/5,こどもの日
2014/5/6,休日
2014/7/21,海の日
2014/9/15,敬老の日
2014/9/23,秋分の日
2014/10/13,体育の日
2014/11/3,文化の日
2014/11/23,勤労感謝の日
2014/11/24,休日
2014/12/23,天皇誕生日
2015/1/1,元日
2015/1/12,成人の日
2015/2/11,建国記念の日
2015/3/21,春分の日
2015/4/29,昭和の日
2015/5/3,憲法記念日
2015/5/4,みどりの日
2015/5/5,こどもの日
2015/5/6,休日
2015/7/20,海の日
2015/9/21,敬老の日
2015/9/22,休日
2015/9/23,秋分の日
2015/10/12,体育の日
2015/11/3,文化の日
2015/11/23,勤労感謝の日
2015/12/23,天皇誕生日
2016/1/1,元日
2016/1/11,成人の日
2016/2/11,建国記念の日
2016/3/20,春分の日
2016/3/21,休日
2016/4/29,昭和の日
2016/5/3,憲法記念日
2016/5/4,みどりの日
2016/5/5,こどもの日
2016/7/18,海の日
2016/8/11,山の日
2016/9/19,敬老の日
2016/9/22,秋分の日
2016/10/10,体育の日
2016/11/3,文化の日
2016/11/23,勤労感謝の日
2016/12/23,天皇誕生日
2017/1/1,元日
2017/1/2,休日
2017/1/9,成人の日
2017/2/11,建国記念の日
2017/3/20,春分の日
2017/4/29,昭和の日
2017/5/3,憲法記念日
2017/5/4,みどりの日
2017/5/5,こどもの日
2017/7/17,海の日
2017/8/11,山の日
2017/9/18,敬老の日
2017/9/23,秋分の日
2017/10/9,体育の日
2017/11/3,文化の日
2017/11/23,勤労感謝の日
2017/12/23,天皇誕生日
2018/1/1,元日
2018/1/8,成人の日
2018/2/11,建国記念の日
2018/2/12,休日
2018/3/21,春分の日
2018/4/29,昭和の日
2018/4/30,休日
2018/5/3,憲法記念日
2018/5/4,みどりの日
2018/5/5,こどもの日
2018/7/16,海の日
2018/8/11,山の日
2018/9/17,敬老の日
2018/9/23,秋分の日
2018/9/24,休日
2018/10/8,体育の日
2018/11/3,文化の日
2018/11/23,勤労感謝の日
2018/12/23,天皇誕生日
2018/12/24,休日
2019/1/1,元日
2019/1/14,成人の日
2019/2/11,建国記念の日
2019/3/21,春分の日
2019/4/29,昭和の日
2019/4/30,休日
2019/5/1,休日（祝日扱い）
2019/5/2,休日
2019/5/3,憲法記念日
2019/5/4,みどりの日
2019/5/5,こどもの日
2019/5/6,休日
2019/7/15,海の日
2019/8/11,山の日
2019/8/12,休日
2019/9/16,敬老の日
2019/9/23,秋分の日
2019/10/14,体育の日（スポーツの日）
2019/10/22,休日（祝日扱い）
2019/11/3,文化の日
2019/11/4,休日
2019/11/23,勤労感謝の日
2020/1/1,元日
2020/1/13,成人の日
2020/2/11,建国記念の日
2020/2/23,天皇誕生日
2020/2/24,休日
2020/3/20,春分の日
2020/4/29,昭和の日
2020/5/3,憲法記念日
2020/5/4,みどりの日
2020/5/5,こどもの日
2020/5/6,休日
2020/7/23,海の日
2020/7/24,スポーツの日
2020/8/10,山の日
2020/9/21,敬老の日
2020/9/22,秋分の日
2020/11/3,文化の日
2020/11/23,勤労感謝の日
2021/1/1,元日
2021/1/11,成人の日
2021/2/11,建国記念の日
2021/2/23,天皇誕生日
2021/3/20,春分の日
2021/4/29,昭和の日
2021/5/3,憲法記念日
2021/5/4,みどりの日
2021/5/5,こどもの日
2021/7/22,海の日
2021/7/23,スポーツの日
2021/8/8,山の日
2021/8/9,休日
2021/9/20,敬老の日
2021/9/23,秋分の日
2021/11/3,文化の日
2021/11/23,勤労感謝の日
2022/1/1,元日
2022/1/10,成人の日
2022/2/11,建国記念の日
2022/2/23,天皇誕生日
2022/3/21,春分の日
2022/4/29,昭和の日
2022/5/3,憲法記念日
2022/5/4,みどりの日
2022/5/5,こどもの日
2022/7/18,海の日
2022/8/11,山の日
2022/9/19,敬老の日
2022/9/23,秋分の日
2022/10/10,スポーツの日
2022/11/3,文化の日
2022/11/23,勤労感謝の日
2023/1/1,元日
2023/1/2,休日
2023/1/9,成人の日
2023/2/11,建国記念の日
2023/2/23,天皇誕生日
2023/3/21,春分の日
2023/4/29,昭和の日
2023/5/3,憲法記念日
2023/5/4,みどりの日
2023/5/5,こどもの日
2023/7/17,海の日
2023/8/11,山の日
2023/9/18,敬老の日
2023/9/23,秋分の日
2023/10/9,スポーツの日
2023/11/3,文化の日
2023/11/23,勤労感謝の日
2024/1/1,元日
2024/1/8,成人の日
2024/2/11,建国記念の日
2024/2/12,休日
2024/2/23,天皇誕生日
2024/3/20,春分の日
2024/4/29,昭和の日
2024/5/3,憲法記念日
2024/5/4,みどりの日
2024/5/5,こどもの日
2024/5/6,休日
2024/7/15,海の日
2024/8/11,山の日
2024/8/12,休日
2024/9/16,敬老の日
2024/9/22,秋分の日
2024/9/23,休日
2024/10/14,スポーツの日
2024/11/3,文化の日
2024/11/4,休日
2024/11/23,勤労感謝の日
2025/1/1,元日
2025/1/13,成人の日
2025/2/11,建国記念の日
2025/2/23,天皇誕生日
2025/2/24,休日
2025/3/20,春分の日
2025/4/29,昭和の日
2025/5/3,憲法記念日
2025/5/4,みどりの日
2025/5/5,こどもの日
2025/5/6,休日
2025/7/21,海の日
2025/8/11,山の日
2025/9/15,敬老の日
2025/9/23,秋分の日
2025/10/13,スポーツの日
2025/11/3,文化の日
2025/11/23,勤労感謝の日
2025/11/24,休日
2026/1/1,元日
2026/1/12,成人の日
2026/2/11,建国記念の日
2026/2/23,天皇誕生日
2026/3/20,春分の日
2026/4/29,昭和の日
2026/5/3,憲法記念日
2026/5/4,みどりの日
2026/5/5,こどもの日
2026/5/6,休日
2026/7/20,海の日
2026/8/11,山の日
2026/9/21,敬老の日
2026/9/22,休日
2026/9/23,秋分の日
2026/10/12,スポーツの日
2026/11/3,文化の日
2026/11/23,勤労感謝の日
2027/1/1,元日
2027/1/11,成人の日
2027/2/11,建国記念の日
2027/2/23,天皇誕生日
2027/3/21,春分の日
2027/3/22,休日
2027/4/29,昭和の日
2027/5/3,憲法記念日
2027/5/4,みどりの日
2027/5/5,こどもの日
2027/7/19,海の日
2027/8/11,山の日
2027/9/20,敬老の日
2027/9/23,秋分の日
2027/10/11,スポーツの日
2027/11/3,文化の日
2027/11/23,勤労感謝の日
";

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("valid RFC 3339 test instant")
    }

    fn official(year: i32) -> Vec<(NaiveDate, String)> {
        OFFICIAL_CSV
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (d, name) = l.split_once(',').expect("date,name");
                let d = NaiveDate::parse_from_str(d, "%Y/%m/%d").expect("CSV date");
                (d, name.to_owned())
            })
            .filter(|(d, _)| d.year() == year)
            .collect()
    }

    #[test]
    fn matches_official_list_2000_to_2027() {
        for year in 2000..=2027 {
            let want = official(year);
            let got: Vec<(NaiveDate, String)> = national_holidays(year)
                .expect("supported year")
                .into_iter()
                .map(|(d, n)| (d, n.to_owned()))
                .collect();
            assert!(want.len() >= 15, "test data for {year} looks truncated");
            assert_eq!(got.len(), want.len(), "holiday count for {year}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g, w, "year {year}");
            }
        }
    }

    #[test]
    fn official_counts_per_year() {
        // A second check on the test data: an edit that drops or adds a
        // line in a checked year shows up here as well.
        let counts: Vec<(i32, usize)> = (2016..=2027).map(|y| (y, official(y).len())).collect();
        assert_eq!(
            counts,
            vec![
                (2016, 17),
                (2017, 17),
                (2018, 20),
                (2019, 22),
                (2020, 18),
                (2021, 17),
                (2022, 16),
                (2023, 17),
                (2024, 21),
                (2025, 19),
                (2026, 18),
                (2027, 17),
            ]
        );
    }

    #[test]
    fn hand_checked_2026_2027() {
        // 2026: May 3 is a Sunday and May 4 and 5 are holidays, so the
        // substitute moves on to Wed May 6. Sep 22 sits between 敬老の日
        // (Mon 9/21) and 秋分の日 (Wed 9/23), so it is 国民の休日.
        assert_eq!(date(2026, 5, 3).weekday(), Weekday::Sun);
        assert_eq!(holiday_name(date(2026, 5, 6)), Some("休日"));
        assert_eq!(holiday_name(date(2026, 9, 21)), Some("敬老の日"));
        assert_eq!(holiday_name(date(2026, 9, 22)), Some("休日"));
        assert_eq!(holiday_name(date(2026, 9, 23)), Some("秋分の日"));
        // 2027: the formula gives March 21, a Sunday, so Mon 3/22 is a
        // substitute holiday.
        assert_eq!(vernal_equinox_day(2027), 21);
        assert_eq!(date(2027, 3, 21).weekday(), Weekday::Sun);
        assert_eq!(holiday_name(date(2027, 3, 22)), Some("休日"));
    }

    #[test]
    fn sandwich_days_and_2019_changes() {
        for d in [date(2009, 9, 22), date(2015, 9, 22), date(2026, 9, 22)] {
            assert_eq!(holiday_name(d), Some(REST_DAY_NAME), "{d}");
            assert_eq!(d.weekday(), Weekday::Tue);
        }
        assert_eq!(holiday_name(date(2019, 4, 30)), Some("休日"));
        assert_eq!(holiday_name(date(2019, 5, 1)), Some("休日（祝日扱い）"));
        assert_eq!(holiday_name(date(2019, 5, 2)), Some("休日"));
        assert_eq!(holiday_name(date(2019, 10, 22)), Some("休日（祝日扱い）"));
        assert_eq!(holiday_name(date(2019, 12, 23)), None);
        assert_eq!(holiday_name(date(2018, 12, 23)), Some("天皇誕生日"));
        assert_eq!(holiday_name(date(2020, 2, 23)), Some("天皇誕生日"));
        assert_eq!(holiday_name(date(2021, 8, 9)), Some("休日"));
        // 2003-05-04 was a Sunday between two 祝日. Before 2007 the Act left
        // Sundays out, so it was not a 休日.
        assert_eq!(holiday_name(date(2003, 5, 4)), None);
    }

    #[test]
    fn pre_2007_substitute_rule_equals_current_rule_2000_to_2006() {
        for year in 2000..2007 {
            let statutory = statutory_holidays(year);
            let is_statutory = |d: NaiveDate| statutory.iter().any(|(h, _)| *h == d);
            for &(d, _) in statutory
                .iter()
                .filter(|(d, _)| d.weekday() == Weekday::Sun)
            {
                assert_eq!(
                    substitute_for(d, false, is_statutory),
                    substitute_for(d, true, is_statutory),
                    "{d}"
                );
            }
        }
    }

    #[test]
    fn equinox_formula_is_exact_at_known_edges() {
        // 2012: 23.2488 + 0.242194*32 - 8 = 22.999008. A float version that
        // rounded up would give the 23rd instead of the 22nd.
        assert_eq!(autumnal_equinox_day(2012), 22);
        assert_eq!(vernal_equinox_day(2000), 20);
        assert_eq!(vernal_equinox_day(2099), 20);
        assert_eq!(autumnal_equinox_day(2099), 23);
    }

    #[test]
    fn every_supported_year_computes_and_is_sorted() {
        for year in FIRST_SUPPORTED_YEAR..=LAST_SUPPORTED_YEAR {
            let list = national_holidays(year).expect("supported year");
            assert!(list.len() >= 15, "{year}");
            assert!(
                list.windows(2).all(|w| w[0].0 < w[1].0),
                "{year} sorted, no duplicates"
            );
            assert!(list.iter().all(|(d, _)| d.year() == year));
        }
    }

    #[test]
    fn out_of_range_years_are_refused() {
        assert_eq!(
            national_holidays(1999),
            Err(CalendarError::YearOutOfRange(1999))
        );
        assert_eq!(
            national_holidays(2100),
            Err(CalendarError::YearOutOfRange(2100))
        );
        assert_eq!(holiday_name(date(2100, 1, 1)), None);
        let cal = Calendar::default();
        assert!(!cal.is_business_day(date(2100, 1, 4)));
        assert_eq!(
            cal.next_business_day(date(2099, 12, 31)),
            Err(CalendarError::YearOutOfRange(2100))
        );
        assert!(cal
            .sla_due(InquiryKind::General, at("2099-12-30T10:00:00+09:00"))
            .is_err());
        assert!(cal.next_business_day(date(1990, 1, 1)).is_err());
        assert!(cal.add_business_days(date(2026, 1, 5), u32::MAX).is_err());
        assert!(cal.report_due(i32::MAX, 12).is_err());
        assert!(cal.report_due(2099, 12).is_err());
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let cal = Calendar::default();
        for t in [
            DateTime::<chrono::Utc>::MAX_UTC.fixed_offset(),
            DateTime::<chrono::Utc>::MIN_UTC.fixed_offset(),
        ] {
            assert!(cal.sla_due(InquiryKind::General, t).is_err());
            assert!(cal.sla_due(InquiryKind::BusinessImpact, t).is_err());
            assert!(cal.next_service_start(t).is_err());
            assert!(!cal.is_within_service_hours(t));
        }
    }

    #[test]
    fn business_days() {
        let cal = Calendar::default();
        assert!(
            !cal.is_business_day(date(2026, 1, 2)),
            "Friday, provider holiday"
        );
        assert!(
            !cal.is_business_day(date(2025, 12, 29)),
            "Monday, provider holiday"
        );
        assert!(cal.is_business_day(date(2026, 1, 5)));
        assert!(!cal.is_business_day(date(2026, 1, 10)), "Saturday");
        assert!(!cal.is_business_day(date(2026, 1, 11)), "Sunday");
        assert!(!cal.is_business_day(date(2026, 1, 12)), "成人の日");
        assert!(!cal.is_business_day(date(2026, 2, 11)), "建国記念の日");
        assert_eq!(
            cal.next_business_day(date(2026, 1, 5)),
            Ok(date(2026, 1, 6))
        );
        assert_eq!(
            cal.next_business_day(date(2026, 1, 9)),
            Ok(date(2026, 1, 13))
        );
        assert_eq!(
            cal.add_business_days(date(2026, 1, 10), 0),
            Ok(date(2026, 1, 10))
        );
        assert_eq!(
            cal.add_business_days(date(2025, 12, 26), 1),
            Ok(date(2026, 1, 5))
        );
        // Golden Week 2019: Apr 27 (Sat) to May 6 (Mon) were all days off.
        assert_eq!(
            cal.add_business_days(date(2019, 4, 26), 1),
            Ok(date(2019, 5, 7))
        );
    }

    #[test]
    fn business_impact_cutoff() {
        let cal = Calendar::default();
        // 2026-02-06 is a Friday; Monday 2026-02-09 is an ordinary business day.
        assert_eq!(date(2026, 2, 6).weekday(), Weekday::Fri);
        let due = cal
            .sla_due(InquiryKind::BusinessImpact, at("2026-02-06T16:59:59+09:00"))
            .expect("in range");
        assert_eq!(due, at("2026-02-06T17:30:00+09:00"));
        let due = cal
            .sla_due(InquiryKind::BusinessImpact, at("2026-02-06T17:00:00+09:00"))
            .expect("in range");
        assert_eq!(due, at("2026-02-09T17:30:00+09:00"));
        // Early morning on a business day still counts as "before 17:00".
        let due = cal
            .sla_due(InquiryKind::BusinessImpact, at("2026-02-06T03:00:00+09:00"))
            .expect("in range");
        assert_eq!(due, at("2026-02-06T17:30:00+09:00"));
        // The same 17:00 JST boundary, given in New York time.
        let due = cal
            .sla_due(InquiryKind::BusinessImpact, at("2026-02-06T03:00:00-05:00"))
            .expect("in range");
        assert_eq!(due, at("2026-02-09T17:30:00+09:00"));
        // On a non-business day it rolls to the next business day,
        // whatever the time. Here that skips Wed 2/11 (建国記念の日).
        let due = cal
            .sla_due(InquiryKind::BusinessImpact, at("2026-02-11T10:00:00+09:00"))
            .expect("in range");
        assert_eq!(due, at("2026-02-12T17:30:00+09:00"));
    }

    #[test]
    fn general_inquiry() {
        let cal = Calendar::default();
        // Saturday: Mon 19, Tue 20, Wed 21.
        let due = cal
            .sla_due(InquiryKind::General, at("2026-01-17T11:00:00+09:00"))
            .expect("in range");
        assert_eq!(due, at("2026-01-21T17:30:00+09:00"));
        // Saturday before 建国記念の日: Mon 9, Tue 10, (Wed 11 holiday), Thu 12.
        let due = cal
            .sla_due(InquiryKind::General, at("2026-02-07T11:00:00+09:00"))
            .expect("in range");
        assert_eq!(due, at("2026-02-12T17:30:00+09:00"));
        // The day of receipt never counts, even at 08:00 on a business day.
        let due = cal
            .sla_due(InquiryKind::General, at("2026-01-19T08:00:00+09:00"))
            .expect("in range");
        assert_eq!(due, at("2026-01-22T17:30:00+09:00"));
    }

    #[test]
    fn received_dec_28_skips_year_end_and_january_holidays() {
        let cal = Calendar::default();
        // 2023-12-28 (Thu): Dec 29 – Jan 3 closed, Thu 1/4 (1), Fri 1/5 (2),
        // Mon 1/8 成人の日, Tue 1/9 (3).
        assert_eq!(holiday_name(date(2024, 1, 8)), Some("成人の日"));
        let due = cal
            .sla_due(InquiryKind::General, at("2023-12-28T10:00:00+09:00"))
            .expect("in range");
        assert_eq!(due, at("2024-01-09T17:30:00+09:00"));
        // 2026-12-28 (Mon) after the cut-off: next business day is Mon 2027-01-04.
        let due = cal
            .sla_due(InquiryKind::BusinessImpact, at("2026-12-28T17:15:00+09:00"))
            .expect("in range");
        assert_eq!(due, at("2027-01-04T17:30:00+09:00"));
        let due = cal
            .sla_due(InquiryKind::General, at("2026-12-28T10:00:00+09:00"))
            .expect("in range");
        assert_eq!(due, at("2027-01-06T17:30:00+09:00"));
    }

    #[test]
    fn utc_input_crossing_jst_date_line() {
        let cal = Calendar::default();
        // 2026-01-05T15:30Z is Tue 2026-01-06 00:30 in Tokyo, so the receipt
        // day is Jan 6 (not Jan 5): Wed 7, Thu 8, Fri 9.
        let received = at("2026-01-05T15:30:00Z");
        let due = cal
            .sla_due(InquiryKind::General, received)
            .expect("in range");
        assert_eq!(due, at("2026-01-09T17:30:00+09:00"));
        assert_eq!(due.offset().local_minus_utc(), 9 * 3600);
        let due = cal
            .sla_due(InquiryKind::BusinessImpact, received)
            .expect("in range");
        assert_eq!(due, at("2026-01-06T17:30:00+09:00"));
        assert_eq!(due.to_rfc3339(), "2026-01-06T17:30:00+09:00");
    }

    #[test]
    fn report_due_dates() {
        let cal = Calendar::default();
        // Feb 2026: 2,3,4,5,6 (5), 9,10 (7), 11 holiday, 12,13 (9), 16 (10).
        assert_eq!(cal.report_due(2026, 1), Ok(date(2026, 2, 16)));
        // Jan 2026: 1-3 closed, 5-9 (5), 12 成人の日, 13-16 (9), 19 (10).
        assert_eq!(cal.report_due(2025, 12), Ok(date(2026, 1, 19)));
        // Jan 2027: 1 closed, 4-8 (5), 11 成人の日, 12-15 (9), 18 (10).
        assert_eq!(cal.report_due(2026, 12), Ok(date(2027, 1, 18)));
        // May 2026: 1 (1), 4-6 holidays, 7,8 (3), 11-15 (8), 18,19 (10).
        assert_eq!(cal.report_due(2026, 4), Ok(date(2026, 5, 19)));
        // May 2019: Golden Week to May 6; 7-10 (4), 13-17 (9), 20 (10).
        assert_eq!(cal.report_due(2019, 4), Ok(date(2019, 5, 20)));
        // Sep 2026: 1-4 (4), 7-11 (9), 14 (10).
        assert_eq!(cal.report_due(2026, 8), Ok(date(2026, 9, 14)));
        assert_eq!(cal.report_due(2026, 0), Err(CalendarError::InvalidMonth(0)));
        assert_eq!(
            cal.report_due(2026, 13),
            Err(CalendarError::InvalidMonth(13))
        );
    }

    #[test]
    fn report_due_fails_when_month_is_too_short() {
        let closed_feb = ProviderHoliday::range(
            ProviderHoliday::new(2, 1).expect("valid"),
            ProviderHoliday::new(2, 20).expect("valid"),
        )
        .expect("valid range");
        let cal =
            Calendar::new(closed_feb, DEFAULT_SERVICE_START, DEFAULT_SERVICE_END).expect("valid");
        assert_eq!(
            cal.report_due(2026, 1),
            Err(CalendarError::TooFewBusinessDays {
                year: 2026,
                month: 2
            })
        );
    }

    #[test]
    fn service_hours_boundaries() {
        let cal = Calendar::default();
        assert!(!cal.is_within_service_hours(at("2026-01-06T08:59:59+09:00")));
        assert!(cal.is_within_service_hours(at("2026-01-06T09:00:00+09:00")));
        assert!(cal.is_within_service_hours(at("2026-01-06T17:29:59+09:00")));
        assert!(
            !cal.is_within_service_hours(at("2026-01-06T17:30:00+09:00")),
            "17:30 is closed"
        );
        assert!(
            cal.is_within_service_hours(at("2026-01-06T00:00:00Z")),
            "09:00 JST"
        );
        assert!(
            !cal.is_within_service_hours(at("2026-01-10T10:00:00+09:00")),
            "Saturday"
        );
        assert!(
            !cal.is_within_service_hours(at("2026-01-12T10:00:00+09:00")),
            "成人の日"
        );
        assert!(
            !cal.is_within_service_hours(at("2026-01-02T10:00:00+09:00")),
            "provider holiday"
        );
    }

    #[test]
    fn next_service_start_cases() {
        let cal = Calendar::default();
        let open = at("2026-01-06T01:15:00Z");
        let got = cal.next_service_start(open).expect("in range");
        assert_eq!(got, open, "open now: same instant");
        assert_eq!(got.offset().local_minus_utc(), 9 * 3600, "but shown in JST");
        assert_eq!(
            cal.next_service_start(at("2026-01-06T07:00:00+09:00")),
            Ok(at("2026-01-06T09:00:00+09:00"))
        );
        // Friday at closing time; Monday is 成人の日.
        assert_eq!(
            cal.next_service_start(at("2026-01-09T17:30:00+09:00")),
            Ok(at("2026-01-13T09:00:00+09:00"))
        );
        assert_eq!(
            cal.next_service_start(at("2026-01-17T12:00:00+09:00")),
            Ok(at("2026-01-19T09:00:00+09:00"))
        );
        // Dec 28 evening: closed until Mon 2027-01-04.
        assert_eq!(
            cal.next_service_start(at("2026-12-28T18:00:00+09:00")),
            Ok(at("2027-01-04T09:00:00+09:00"))
        );
    }

    #[test]
    fn construction_is_validated() {
        let nine = DEFAULT_SERVICE_START;
        let half_five = DEFAULT_SERVICE_END;
        assert_eq!(
            Calendar::new(vec![], half_five, nine),
            Err(CalendarError::InvalidServiceHours {
                start: half_five,
                end: nine
            })
        );
        assert!(Calendar::new(vec![], nine, nine).is_err());
        assert_eq!(
            Calendar::new(vec![ProviderHoliday { month: 2, day: 30 }], nine, half_five),
            Err(CalendarError::InvalidProviderHoliday { month: 2, day: 30 })
        );
        assert!(ProviderHoliday::new(13, 1).is_err());
        assert!(ProviderHoliday::new(0, 1).is_err());
        assert!(ProviderHoliday::new(2, 29).is_ok());
        let whole_year = ProviderHoliday::range(
            ProviderHoliday::new(1, 2).expect("valid"),
            ProviderHoliday::new(1, 1).expect("valid"),
        )
        .expect("valid range");
        assert_eq!(whole_year.len(), 366);
        assert_eq!(
            Calendar::new(whole_year, nine, half_five),
            Err(CalendarError::NoBusinessDays)
        );
        let late = NaiveTime::from_hms_opt(18, 0, 0).expect("valid");
        assert!(Calendar::default().with_impact_cutoff(late).is_err());
    }

    #[test]
    fn default_matches_new_with_standard_terms() {
        let built = Calendar::new(
            ProviderHoliday::year_end_defaults(),
            DEFAULT_SERVICE_START,
            DEFAULT_SERVICE_END,
        )
        .expect("valid");
        assert_eq!(built, Calendar::default());
        assert_eq!(built.impact_cutoff(), DEFAULT_IMPACT_CUTOFF);
        let range = ProviderHoliday::range(
            ProviderHoliday::new(12, 29).expect("valid"),
            ProviderHoliday::new(1, 3).expect("valid"),
        )
        .expect("valid range");
        let mut defaults = ProviderHoliday::year_end_defaults();
        defaults.sort_unstable();
        let mut range_sorted = range.clone();
        range_sorted.sort_unstable();
        assert_eq!(range_sorted, defaults);
        let config = CalendarConfig::default();
        assert_eq!(Calendar::try_from(config), Ok(Calendar::default()));
    }

    #[test]
    fn custom_configuration() {
        // A provider that also closes on its founding day (Jun 1) and keeps
        // 10:00–18:00 hours. The cut-off then follows the end: 17:30.
        let mut holidays = ProviderHoliday::year_end_defaults();
        holidays.push(ProviderHoliday::new(6, 1).expect("valid"));
        let ten = NaiveTime::from_hms_opt(10, 0, 0).expect("valid");
        let six = NaiveTime::from_hms_opt(18, 0, 0).expect("valid");
        let cal = Calendar::new(holidays, ten, six).expect("valid");
        assert_eq!(
            cal.impact_cutoff(),
            NaiveTime::from_hms_opt(17, 30, 0).expect("valid")
        );
        assert!(
            !cal.is_business_day(date(2026, 6, 1)),
            "Monday, founding day"
        );
        assert_eq!(
            cal.sla_due(InquiryKind::BusinessImpact, at("2026-06-02T17:29:00+09:00")),
            Ok(at("2026-06-02T18:00:00+09:00"))
        );
        assert_eq!(
            cal.sla_due(InquiryKind::BusinessImpact, at("2026-05-29T17:30:00+09:00")),
            Ok(at("2026-06-02T18:00:00+09:00"))
        );
        assert!(!cal.is_within_service_hours(at("2026-06-02T09:30:00+09:00")));
    }

    #[test]
    fn inquiry_kind_parsing() {
        use serde::de::value::{Error as DeError, StrDeserializer};
        use serde::de::IntoDeserializer;

        assert_eq!("general".parse::<InquiryKind>(), Ok(InquiryKind::General));
        assert_eq!(
            "business-impact".parse::<InquiryKind>(),
            Ok(InquiryKind::BusinessImpact)
        );
        assert_eq!(
            "urgent".parse::<InquiryKind>(),
            Err(CalendarError::UnknownInquiryKind("urgent".to_owned()))
        );
        for kind in [InquiryKind::General, InquiryKind::BusinessImpact] {
            assert_eq!(kind.to_string().parse::<InquiryKind>(), Ok(kind));
            let de: StrDeserializer<'_, DeError> = kind.as_str().into_deserializer();
            assert_eq!(
                InquiryKind::deserialize(de),
                Ok(kind),
                "serde uses the same spelling"
            );
        }
    }

    #[test]
    fn business_time_counts_only_service_hours_on_business_days() {
        let cal = Calendar::default();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
        let h = |x: f64| chrono::Duration::minutes((x * 60.0) as i64);
        // Same day, inside hours.
        assert_eq!(
            cal.business_time_between(
                t("2026-11-25T10:00:00+09:00"),
                t("2026-11-25T12:30:00+09:00")
            )
            .unwrap(),
            h(2.5)
        );
        // Friday 16:30 → Monday 10:00: one hour Friday, one hour Monday.
        assert_eq!(
            cal.business_time_between(
                t("2026-11-27T16:30:00+09:00"),
                t("2026-11-30T10:00:00+09:00")
            )
            .unwrap(),
            h(2.0)
        );
        // Across a holiday (11-23 勤労感謝の日, a Monday) and in another offset.
        assert_eq!(
            cal.business_time_between(t("2026-11-20T08:00:00Z"), t("2026-11-24T01:00:00Z"))
                .unwrap(),
            h(1.5)
        );
        // Reversed or equal: zero.
        assert_eq!(
            cal.business_time_between(
                t("2026-11-25T12:00:00+09:00"),
                t("2026-11-25T10:00:00+09:00")
            )
            .unwrap(),
            h(0.0)
        );
        // Year end is closed.
        assert_eq!(
            cal.business_time_between(
                t("2026-12-28T17:00:00+09:00"),
                t("2027-01-04T10:00:00+09:00")
            )
            .unwrap(),
            h(1.5)
        );
    }
}
