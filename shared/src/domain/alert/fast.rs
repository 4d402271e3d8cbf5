//! The fast path of alert parsing: one pass over the JSON text straight into [`AlertFields`]
//! and an index of the evidence strings, with no `serde_json::Value` tree.
//!
//! Contract (what `Alert::from_json_str` relies on): when this path accepts a text, parsing
//! the same text into a `Value` and calling `Alert::from_value` succeeds and gives the same
//! alert. Anything unusual — a wrong JSON type on a known field, a duplicated known field, a
//! blank id, an unreadable `lastUpdateDateTime`, an array instead of an object — makes this
//! path give up (`None`), and the caller takes the `Value` path, which decides exactly as
//! before and words the error. Everything this path skips is still validated the way
//! `serde_json` validates a `Value` (string escapes and surrogates, number ranges, the
//! recursion limit), so the lazily materialised `raw` can never fail to parse.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

use super::AlertFields;

/// `serde_json`'s recursion limit: the 128th nested array/object is an error.
const RECURSION_LIMIT: u32 = 128;

/// Opens one more container below `depth` open ones, as `serde_json` counts them.
fn enter<E: de::Error>(depth: u32) -> Result<u32, E> {
    let d = depth + 1;
    if d >= RECURSION_LIMIT {
        Err(E::custom("recursion limit exceeded"))
    } else {
        Ok(d)
    }
}

// ---------------------------------------------------------------------------------------------
// Skipping with validation
// ---------------------------------------------------------------------------------------------

/// Validates and drops any JSON value exactly as parsing it into a `Value` would (same
/// errors, same depth limit), without allocating. `depth`: containers open around it.
#[derive(Clone, Copy)]
struct Skip {
    depth: u32,
}

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = enter(self.depth)?;
        while seq.next_element_seed(Skip { depth })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let depth = enter(self.depth)?;
        while map.next_key_seed(Skip { depth })?.is_some() {
            map.next_value_seed(Skip { depth })?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The evidence index
// ---------------------------------------------------------------------------------------------

/// A string of the alert: a span of its text (no escapes in it) or a decoded copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum S {
    Span(u32, u32),
    Owned(u32),
}

#[derive(Debug, Clone, Copy)]
enum V {
    Str(S),
    Obj,
    Other,
}

/// One member of an evidence entry (`parent == TOP`) or of an object directly inside one.
#[derive(Debug, Clone, Copy)]
struct Node {
    parent: u32,
    key: S,
    val: V,
}

const TOP: u32 = u32::MAX;

/// Every member of every evidence entry, and of the objects directly inside an entry (e.g.
/// `userAccount`, `fileDetails`), in text order, keys and string values as spans of the
/// alert's text. Lookups take the last member of a name, as a JSON object (and `Value`) does.
#[derive(Debug, Clone, Default)]
pub(super) struct EvidenceIndex {
    nodes: Vec<Node>,
    /// The first node of each entry, one per element of `evidence`.
    starts: Vec<u32>,
    /// Each entry's last `@odata.type` member, when it is a string (what `kind` reads).
    kinds: Vec<Option<S>>,
    owned: Vec<Box<str>>,
}

impl EvidenceIndex {
    pub(super) fn len(&self) -> usize {
        self.starts.len()
    }

    /// `entry.get("@odata.type").and_then(Value::as_str)`.
    pub(super) fn odata_type<'a>(&'a self, text: &'a str, entry: usize) -> Option<&'a str> {
        self.kinds[entry].map(|s| self.s(text, s))
    }

    fn s<'a>(&'a self, text: &'a str, s: S) -> &'a str {
        match s {
            S::Span(at, len) => &text[at as usize..(at + len) as usize],
            S::Owned(i) => &self.owned[i as usize],
        }
    }

    fn nodes_of(&self, entry: usize) -> (usize, &[Node]) {
        let start = self.starts[entry] as usize;
        let end = self
            .starts
            .get(entry + 1)
            .map_or(self.nodes.len(), |&e| e as usize);
        (start, &self.nodes[start..end])
    }

    /// The last member `key` under `parent` in entry `entry`: its position and value.
    fn find(&self, text: &str, entry: usize, parent: u32, key: &str) -> Option<(usize, V)> {
        let (start, nodes) = self.nodes_of(entry);
        nodes
            .iter()
            .enumerate()
            .rev()
            .find(|(_, n)| n.parent == parent && self.s(text, n.key) == key)
            .map(|(i, n)| (start + i, n.val))
    }

    /// `entry.get(key).and_then(Value::as_str)`.
    pub(super) fn str<'a>(&'a self, text: &'a str, entry: usize, key: &str) -> Option<&'a str> {
        match self.find(text, entry, TOP, key)? {
            (_, V::Str(s)) => Some(self.s(text, s)),
            _ => None,
        }
    }

    /// `entry.get(outer).and_then(|o| o.get(key)).and_then(Value::as_str)`.
    pub(super) fn nested_str<'a>(
        &'a self,
        text: &'a str,
        entry: usize,
        outer: &str,
        key: &str,
    ) -> Option<&'a str> {
        let (at, V::Obj) = self.find(text, entry, TOP, outer)? else {
            return None;
        };
        match self.find(text, entry, at as u32, key)? {
            (_, V::Str(s)) => Some(self.s(text, s)),
            _ => None,
        }
    }
}

/// What the one pass builds besides the fields: the evidence index, with spans relative to
/// `base` (the text being parsed).
struct Ctx<'de> {
    base: &'de str,
    idx: EvidenceIndex,
}

impl<'de> Ctx<'de> {
    fn borrowed(&mut self, s: &'de str) -> S {
        let off = (s.as_ptr() as usize).wrapping_sub(self.base.as_ptr() as usize);
        if off <= self.base.len() && s.len() <= self.base.len() - off {
            S::Span(off as u32, s.len() as u32)
        } else {
            self.owned(s)
        }
    }

    fn owned(&mut self, s: &str) -> S {
        self.idx.owned.push(s.into());
        S::Owned(self.idx.owned.len() as u32 - 1)
    }

    fn is(&self, s: S, name: &str) -> bool {
        match s {
            S::Span(at, len) => {
                len as usize == name.len() && &self.base[at as usize..(at + len) as usize] == name
            }
            S::Owned(i) => &*self.idx.owned[i as usize] == name,
        }
    }

    fn push(&mut self, parent: u32, key: S) -> u32 {
        self.idx.nodes.push(Node {
            parent,
            key,
            val: V::Other,
        });
        self.idx.nodes.len() as u32 - 1
    }
}

/// A key of an evidence entry or of an object inside one.
struct KeySeed<'c, 'de> {
    ctx: &'c mut Ctx<'de>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_, 'de> {
    type Value = S;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, 'de> {
    type Value = S;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<S, E> {
        Ok(self.ctx.borrowed(s))
    }
    fn visit_str<E>(self, s: &str) -> Result<S, E> {
        Ok(self.ctx.owned(s))
    }
}

/// `evidence`: null or an array of anything (entries of any JSON type are kept, as the
/// `Value` path keeps them).
struct EvidenceSeed<'c, 'de> {
    ctx: &'c mut Ctx<'de>,
    depth: u32,
}

impl<'de> DeserializeSeed<'de> for EvidenceSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EvidenceSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = enter(self.depth)?;
        loop {
            let start = self.ctx.idx.nodes.len() as u32;
            self.ctx.idx.starts.push(start);
            self.ctx.idx.kinds.push(None);
            if seq
                .next_element_seed(EntrySeed {
                    ctx: &mut *self.ctx,
                    depth,
                })?
                .is_none()
            {
                self.ctx.idx.starts.pop();
                self.ctx.idx.kinds.pop();
                return Ok(());
            }
        }
    }
}

/// One evidence entry: its members are indexed; an entry that is not an object has none.
struct EntrySeed<'c, 'de> {
    ctx: &'c mut Ctx<'de>,
    depth: u32,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Skip { depth: self.depth }.visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let depth = enter(self.depth)?;
        while let Some(key) = map.next_key_seed(KeySeed {
            ctx: &mut *self.ctx,
        })? {
            let at = self.ctx.push(TOP, key);
            let val = map.next_value_seed(MemberSeed {
                ctx: &mut *self.ctx,
                depth,
                at,
                inner: true,
            })?;
            self.ctx.idx.nodes[at as usize].val = val;
            if self.ctx.is(key, "@odata.type") {
                let kind = match val {
                    V::Str(s) => Some(s),
                    _ => None,
                };
                *self
                    .ctx
                    .idx
                    .kinds
                    .last_mut()
                    .expect("pushed with the entry") = kind;
            }
        }
        Ok(())
    }
}

/// A member's value: strings are indexed; so are the members of an object directly inside
/// an entry (`inner`); anything deeper is validated and skipped.
struct MemberSeed<'c, 'de> {
    ctx: &'c mut Ctx<'de>,
    depth: u32,
    at: u32,
    inner: bool,
}

impl<'de> DeserializeSeed<'de> for MemberSeed<'_, 'de> {
    type Value = V;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<V, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MemberSeed<'_, 'de> {
    type Value = V;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<V, E> {
        Ok(V::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<V, E> {
        Ok(V::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<V, E> {
        Ok(V::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<V, E> {
        Ok(V::Other)
    }
    fn visit_unit<E>(self) -> Result<V, E> {
        Ok(V::Other)
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<V, E> {
        Ok(V::Str(self.ctx.borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<V, E> {
        Ok(V::Str(self.ctx.owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V, A::Error> {
        Skip { depth: self.depth }.visit_seq(seq)?;
        Ok(V::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<V, A::Error> {
        if !self.inner {
            Skip { depth: self.depth }.visit_map(map)?;
            return Ok(V::Other);
        }
        let depth = enter(self.depth)?;
        while let Some(key) = map.next_key_seed(KeySeed {
            ctx: &mut *self.ctx,
        })? {
            let at = self.ctx.push(self.at, key);
            let val = map.next_value_seed(MemberSeed {
                ctx: &mut *self.ctx,
                depth,
                at,
                inner: false,
            })?;
            self.ctx.idx.nodes[at as usize].val = val;
        }
        Ok(V::Obj)
    }
}

// ---------------------------------------------------------------------------------------------
// The alert object
// ---------------------------------------------------------------------------------------------

/// The members of an alert this path reads; the rest is validated and skipped.
enum Field {
    Id,
    LastUpdate,
    Evidence,
    Mitre,
    Str(fn(&mut AlertFields) -> &mut Option<String>),
    Other,
}

/// The `Option<String>` members of [`AlertFields`], by their JSON name. Kept in step with
/// the struct by the test `fast_path_reads_every_field`.
fn field(name: &str) -> Field {
    macro_rules! slot {
        ($f:ident) => {
            Field::Str(|a: &mut AlertFields| &mut a.$f)
        };
    }
    match name {
        "id" => Field::Id,
        "lastUpdateDateTime" => Field::LastUpdate,
        "evidence" => Field::Evidence,
        "mitreTechniques" => Field::Mitre,
        "providerAlertId" => slot!(provider_alert_id),
        "incidentId" => slot!(incident_id),
        "status" => slot!(status),
        "severity" => slot!(severity),
        "classification" => slot!(classification),
        "determination" => slot!(determination),
        "serviceSource" => slot!(service_source),
        "detectionSource" => slot!(detection_source),
        "detectorId" => slot!(detector_id),
        "tenantId" => slot!(tenant_id),
        "title" => slot!(title),
        "description" => slot!(description),
        "recommendedActions" => slot!(recommended_actions),
        "category" => slot!(category),
        "alertWebUrl" => slot!(alert_web_url),
        "incidentWebUrl" => slot!(incident_web_url),
        "alertPolicyId" => slot!(alert_policy_id),
        "productName" => slot!(product_name),
        "investigationState" => slot!(investigation_state),
        "createdDateTime" => slot!(created_date_time),
        "firstActivityDateTime" => slot!(first_activity_date_time),
        "resolvedDateTime" => slot!(resolved_date_time),
        "threatDisplayName" => slot!(threat_display_name),
        _ => Field::Other,
    }
}

struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, s: &str) -> Result<Field, E> {
        Ok(field(s))
    }
}

/// What one pass over an alert's text gives.
pub(super) struct Parsed {
    pub id: String,
    pub last_update: String,
    pub fields: AlertFields,
    pub evidence: EvidenceIndex,
}

struct AlertSeed<'c, 'de> {
    ctx: &'c mut Ctx<'de>,
    depth: u32,
}

/// A repeated known member gives up (the `Value` path keeps the last one; rare enough to
/// leave to it).
#[derive(Default)]
struct Seen(u64);

impl Seen {
    fn first<E: de::Error>(&mut self, bit: u32) -> Result<(), E> {
        if self.0 & (1 << bit) != 0 {
            return Err(E::custom("duplicate field"));
        }
        self.0 |= 1 << bit;
        Ok(())
    }
}

impl<'de> Visitor<'de> for AlertSeed<'_, 'de> {
    type Value = (Option<String>, Option<String>, AlertFields);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an alert object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let depth = enter(self.depth)?;
        let (mut id, mut last_update) = (None, None);
        let mut fields = AlertFields::default();
        let mut seen = Seen::default();
        while let Some(f) = map.next_key_seed(FieldSeed)? {
            match f {
                Field::Id => {
                    seen.first(0)?;
                    id = Some(map.next_value::<String>()?);
                }
                Field::LastUpdate => {
                    seen.first(1)?;
                    last_update = Some(map.next_value::<String>()?);
                }
                Field::Evidence => {
                    seen.first(2)?;
                    map.next_value_seed(EvidenceSeed {
                        ctx: &mut *self.ctx,
                        depth,
                    })?;
                }
                Field::Mitre => {
                    seen.first(3)?;
                    fields.mitre_techniques = map.next_value()?;
                }
                Field::Str(slot) => {
                    let s = slot(&mut fields);
                    // A repeated member: give up if it was already set. After a null the
                    // later value is simply taken, which is what the `Value` path (last
                    // one wins) gives too.
                    if s.is_some() {
                        return Err(de::Error::custom("duplicate field"));
                    }
                    *s = map.next_value()?;
                }
                Field::Other => map.next_value_seed(Skip { depth })?,
            }
        }
        Ok((id, last_update, fields))
    }
}

/// One pass over the text of an alert object that sits below `depth` open containers (0 for
/// an alert on its own, 2 for an element of a page's `value`). `None`: take the `Value` path.
pub(super) fn parse(text: &str, depth: u32) -> Option<Parsed> {
    u32::try_from(text.len()).ok()?;
    let mut ctx = Ctx {
        base: text,
        idx: EvidenceIndex {
            // Real alerts have a member per ~30 bytes; most of them are in the evidence.
            nodes: Vec::with_capacity(text.len() / 32),
            ..EvidenceIndex::default()
        },
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let (id, last_update, fields) = de
        .deserialize_map(AlertSeed {
            ctx: &mut ctx,
            depth,
        })
        .ok()?;
    de.end().ok()?;
    Some(Parsed {
        id: id?,
        last_update: last_update?,
        fields,
        evidence: ctx.idx,
    })
}

// ---------------------------------------------------------------------------------------------
// A Graph page
// ---------------------------------------------------------------------------------------------

/// A page read in one pass: the text of each element of `value`, `@odata.nextLink` (when a
/// string) and `@odata.count` (when a whole number), as `Value::as_str`/`as_u64` read them.
pub(super) struct Page<'a> {
    pub value: Vec<&'a RawValue>,
    pub next_link: Option<String>,
    pub count: Option<u64>,
}

enum PageKey {
    Value,
    NextLink,
    Count,
    Other,
}

struct PageKeySeed;

impl<'de> DeserializeSeed<'de> for PageKeySeed {
    type Value = PageKey;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<PageKey, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for PageKeySeed {
    type Value = PageKey;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, s: &str) -> Result<PageKey, E> {
        Ok(match s {
            "value" => PageKey::Value,
            "@odata.nextLink" => PageKey::NextLink,
            "@odata.count" => PageKey::Count,
            _ => PageKey::Other,
        })
    }
}

/// Any value, validated; a string or a whole number kept.
enum Scalar {
    Str(String),
    U64(u64),
    Other,
}

struct ScalarSeed {
    depth: u32,
}

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    // `Value` stores a non-negative i64 (serde_json says `-0` this way) as a u64.
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(u64::try_from(v).map_or(Scalar::Other, Scalar::U64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_str<E>(self, s: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(s.to_string()))
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar, A::Error> {
        Skip { depth: self.depth }.visit_seq(seq)?;
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar, A::Error> {
        Skip { depth: self.depth }.visit_map(map)?;
        Ok(Scalar::Other)
    }
}

struct PageSeed;

impl<'de> Visitor<'de> for PageSeed {
    type Value = Page<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a page object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Page<'de>, A::Error> {
        let depth = enter(0)?;
        let mut value = None;
        let (mut next_link, mut count) = (None, None);
        while let Some(k) = map.next_key_seed(PageKeySeed)? {
            match k {
                // The elements are only captured here (not validated): a second `value`
                // would hide the first from validation, so it gives up.
                PageKey::Value if value.is_some() => {
                    return Err(de::Error::custom("duplicate field"))
                }
                PageKey::Value => value = Some(map.next_value::<Vec<&'de RawValue>>()?),
                PageKey::NextLink => {
                    next_link = match map.next_value_seed(ScalarSeed { depth })? {
                        Scalar::Str(s) => Some(s),
                        _ => None,
                    }
                }
                PageKey::Count => {
                    count = match map.next_value_seed(ScalarSeed { depth })? {
                        Scalar::U64(n) => Some(n),
                        _ => None,
                    }
                }
                PageKey::Other => map.next_value_seed(Skip { depth })?,
            }
        }
        Ok(Page {
            value: value.ok_or_else(|| de::Error::custom("no value"))?,
            next_link,
            count,
        })
    }
}

/// The page envelope in one pass; `None`: take the `Value` path. The elements' texts are
/// not validated here: the caller parses each with [`parse`] at depth 2.
pub(super) fn page(body: &str) -> Option<Page<'_>> {
    let mut de = serde_json::Deserializer::from_str(body);
    let p = de.deserialize_map(PageSeed).ok()?;
    de.end().ok()?;
    Some(p)
}
