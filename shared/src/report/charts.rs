//! SVG charts for the monthly advisory report.
//!
//! Written by hand rather than with a plotting crate because the report is a single HTML file
//! that has to look the same offline, as a mail attachment and on paper: plain inline SVG with
//! no scripts, no web fonts and no stylesheets is the one format that does that everywhere.
//! Text layout is left to the reader's browser, which is what lets Japanese labels work without
//! shipping font metrics. The price is that label widths are only *estimated* here (see
//! [`display_width`]), so labels are truncated conservatively instead of measured.
//!
//! Labels come from alert titles, device names and user names, i.e. from whoever manages to
//! make an alert fire, so every piece of text goes through [`esc`] on the way out and there is
//! deliberately no code path that writes caller text without it.
//!
//! Output is a pure function of the input (no clocks, no randomness, no hash-map order, numbers
//! printed with fixed precision) so a regenerated report diffs cleanly against the previous one
//! and tests can compare bytes.

use std::f64::consts::PI;
use std::fmt;

/// `write!` into a `String` cannot fail; this keeps the call sites free of dead error handling.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = write!($out, $($arg)*);
    }};
}

/// One coloured layer of a stacked bar chart (e.g. one product's daily alert counts).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

/// Okabe–Ito, reordered so that neighbours differ in hue *and* in lightness: stacked segments
/// and donut slices stay apart for colour-blind readers and on a black-and-white printer.
/// Yellow comes late because it almost vanishes on white paper; where it is used, swatches get
/// an outline and no text is ever drawn on top of a coloured area.
pub const PALETTE: [&str; 8] = [
    "#0072B2", // blue
    "#E69F00", // orange
    "#009E73", // bluish green
    "#56B4E9", // sky blue
    "#D55E00", // vermillion
    "#F0E442", // yellow
    "#CC79A7", // reddish purple
    "#000000", // black
];

/// Escapes text for XML and HTML alike, so the report's HTML and these SVGs share one rule.
///
/// Besides the five markup characters it drops what XML 1.0 cannot carry (C0 controls other
/// than tab/newline/CR) — one stray byte in an alert title must not make the whole report
/// unparsable — plus C1 controls and the bidi embedding/override/isolate marks, which attackers
/// use to make `gpj.exe` read as `exe.jpg`. `&#39;` rather than `&apos;` because HTML 4 mail
/// clients do not know the latter.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if is_stripped(c) => {}
            c => out.push(c),
        }
    }
    out
}

fn is_stripped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FFFE}'
                | '\u{FFFF}'
        )
}

/// Vertical stacked bars, one bar per category (e.g. days of the month "1".."30"), one colour
/// per series (e.g. per product), legend below.
///
/// Values missing at the end of a series count as zero so that a product first seen mid-month
/// does not need padding by the caller.
pub fn stacked_bars(
    title: &str,
    categories: &[String],
    series: &[Series],
    y_label: &str,
) -> String {
    let categories: Vec<String> = categories.iter().map(|c| clean(c)).collect();
    let series: Vec<(String, Vec<f64>)> = series
        .iter()
        .map(|s| {
            let vals = (0..categories.len())
                .map(|i| s.values.get(i).copied().map_or(0.0, value))
                .collect();
            (clean(&s.name), vals)
        })
        .collect();
    vbars(&VBars {
        kind: "stacked",
        title,
        categories,
        series,
        x_label: String::new(),
        y_label: clean(y_label),
        legend: true,
        gap: 0.25,
        label_zero: false,
    })
}

/// Horizontal bars, one per item, largest first as given (e.g. top-10 alert titles, devices,
/// users), value printed at the bar end.
///
/// Order is kept as given because the caller knows the tie-break rule of its own ranking.
pub fn hbar(title: &str, items: &[(String, f64)], x_label: &str) -> String {
    let items: Vec<(String, f64)> = items.iter().map(|(l, v)| (clean(l), value(*v))).collect();
    let x_label = clean(x_label);
    let id = chart_id("hbar", title, &items, &[]);
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max);
    if !drawable(max) {
        return no_data(&id, title);
    }

    const FS: f64 = 11.0;
    const ROW: f64 = 26.0;
    const BAR: f64 = 16.0;
    const TOP: f64 = 56.0;
    // Wide enough for ~18 full-width characters; the rest goes to the bars.
    const MAX_LABEL_PX: f64 = 240.0;

    let axis = nice_axis(max, items.iter().all(|i| is_integral(i.1)));
    let label_units = max_units(MAX_LABEL_PX, FS);
    let labels: Vec<String> = items
        .iter()
        .map(|(l, _)| truncate(l, label_units))
        .collect();
    let label_px = labels
        .iter()
        .map(|l| px(display_width(l), FS))
        .fold(0.0, f64::max);
    let values: Vec<String> = items.iter().map(|i| fmt_value(i.1)).collect();
    let value_px = values
        .iter()
        .map(|v| px(display_width(v), FS))
        .fold(0.0, f64::max);
    let tick_px = px(display_width(&axis.label(axis.ticks)), 10.0);

    let left = 16.0 + label_px.max(24.0) + 10.0;
    let right = W - 16.0 - value_px.max(tick_px / 2.0) - 6.0;
    let plot_w = right - left;
    let axis_y = TOP + ROW * items.len() as f64;
    let mut h = axis_y + 28.0;
    if !x_label.is_empty() {
        h += 20.0;
    }

    let mut out = String::new();
    open(&mut out, &id, title, h);
    out.push_str("<g class=\"grid\">");
    for i in 0..=axis.ticks {
        let x = left + plot_w * i as f64 / axis.ticks as f64;
        line(&mut out, x, TOP - 6.0, x, axis_y, GRID);
        text(
            &mut out,
            x,
            axis_y + 15.0,
            10.0,
            "middle",
            MUTED,
            "",
            &axis.label(i),
        );
    }
    out.push_str("</g><g class=\"bars\">");
    for (i, ((full, v), label)) in items.iter().zip(&labels).enumerate() {
        let cy = TOP + ROW * (i as f64 + 0.5);
        let w = v * plot_w / axis.max;
        text(&mut out, left - 8.0, cy + 4.0, FS, "end", TEXT, "", label);
        bar(
            &mut out,
            left,
            cy - BAR / 2.0,
            w,
            BAR,
            PALETTE[0],
            &format!("{full}: {}", values[i]),
        );
        text(
            &mut out,
            left + w + 5.0,
            cy + 4.0,
            FS,
            "start",
            TEXT,
            "",
            &values[i],
        );
    }
    out.push_str("</g>");
    line(&mut out, left, TOP - 6.0, left, axis_y, AXIS);
    if !x_label.is_empty() {
        let l = truncate(&x_label, max_units(plot_w, FS));
        text(
            &mut out,
            left + plot_w / 2.0,
            axis_y + 36.0,
            FS,
            "middle",
            MUTED,
            "",
            &l,
        );
    }
    out.push_str("</svg>");
    out
}

/// Donut with legend (label, value, percent), e.g. severity mix, incidents by status.
///
/// Percentages live in the legend, not on the slices, so nothing is ever printed on a coloured
/// background (yellow!) and thin slices stay readable. More than eight items reuse the palette.
pub fn donut(title: &str, items: &[(String, f64)]) -> String {
    let items: Vec<(String, f64)> = items.iter().map(|(l, v)| (clean(l), value(*v))).collect();
    let id = chart_id("donut", title, &items, &[]);
    let total: f64 = items.iter().map(|i| i.1).sum();
    if !drawable(total) {
        return no_data(&id, title);
    }

    const FS: f64 = 11.0;
    const ROW: f64 = 22.0;
    const TOP: f64 = 52.0;
    const R: f64 = 108.0;
    const R_IN: f64 = 66.0;

    let n = items.len() as f64;
    let body = (2.0 * R + 24.0).max(n * ROW + 12.0);
    let h = TOP + body + 12.0;
    let cx = 40.0 + R;
    let cy = TOP + body / 2.0;

    let values: Vec<String> = items.iter().map(|i| fmt_value(i.1)).collect();
    let pcts: Vec<String> = items
        .iter()
        .map(|i| format!("{:.1}%", i.1 / total * 100.0))
        .collect();
    let value_px = values
        .iter()
        .map(|v| px(display_width(v), FS))
        .fold(0.0, f64::max);
    let pct_px = px(display_width("100.0%"), FS);
    let legend_x = cx + R + 48.0;
    let label_x = legend_x + 18.0;
    // Columns sit right after the widest label (a table the eye can follow across) but never
    // past the frame; only then are labels truncated.
    let max_value_right = W - 24.0 - pct_px - 14.0;
    let label_units = max_units(max_value_right - value_px - 20.0 - label_x, FS);
    let labels: Vec<String> = items
        .iter()
        .map(|(l, _)| truncate(l, label_units))
        .collect();
    let label_px = labels
        .iter()
        .map(|l| px(display_width(l), FS))
        .fold(80.0, f64::max);
    let value_right = (label_x + label_px + 20.0 + value_px).min(max_value_right);
    let pct_right = value_right + 14.0 + pct_px;

    let mut out = String::new();
    open(&mut out, &id, title, h);
    out.push_str("<g class=\"slices\">");
    let mut acc = 0.0;
    for (i, (label, v)) in items.iter().enumerate() {
        if *v <= 0.0 {
            continue;
        }
        let a0 = -PI / 2.0 + 2.0 * PI * acc / total;
        acc += v;
        let a1 = -PI / 2.0 + 2.0 * PI * acc / total;
        let tip = format!("{label}: {} ({})", values[i], pcts[i]);
        let d = if v / total > 1.0 - 1e-9 {
            // An arc cannot start and end at the same point, so a 100 % ring is two halves;
            // the inner ring cuts the hole through `fill-rule="evenodd"`.
            let ring = |r: f64| {
                let (top, bottom) = (C(cy - r), C(cy + r));
                format!(
                    "M{x},{top}A{r},{r} 0 1 1 {x},{bottom}A{r},{r} 0 1 1 {x},{top}Z",
                    x = C(cx),
                    r = C(r)
                )
            };
            ring(R) + &ring(R_IN)
        } else {
            let large = u8::from(a1 - a0 > PI);
            let (x0, y0) = (cx + R * a0.cos(), cy + R * a0.sin());
            let (x1, y1) = (cx + R * a1.cos(), cy + R * a1.sin());
            let (x2, y2) = (cx + R_IN * a1.cos(), cy + R_IN * a1.sin());
            let (x3, y3) = (cx + R_IN * a0.cos(), cy + R_IN * a0.sin());
            format!(
                "M{},{}A{r},{r} 0 {large} 1 {},{}L{},{}A{ri},{ri} 0 {large} 0 {},{}Z",
                C(x0),
                C(y0),
                C(x1),
                C(y1),
                C(x2),
                C(y2),
                C(x3),
                C(y3),
                r = C(R),
                ri = C(R_IN),
            )
        };
        w!(
            out,
            "<path class=\"slice\" d=\"{d}\" fill=\"{}\" fill-rule=\"evenodd\" stroke=\"#ffffff\" stroke-width=\"1.5\"><title>{}</title></path>",
            PALETTE[i % PALETTE.len()],
            esc(&tip)
        );
    }
    out.push_str("</g>");

    let total_s = fmt_value(total);
    let total_fs = (2.0 * R_IN - 16.0) / px(display_width(&total_s), 1.0);
    text(
        &mut out,
        cx,
        cy + 5.0,
        total_fs.min(22.0),
        "middle",
        TEXT,
        " font-weight=\"bold\"",
        &total_s,
    );
    text(&mut out, cx, cy + 24.0, FS, "middle", MUTED, "", "合計");

    out.push_str("<g class=\"legend\">");
    let y_first = cy - n * ROW / 2.0 + ROW / 2.0;
    for (i, ((full, _), label)) in items.iter().zip(&labels).enumerate() {
        let y = y_first + ROW * i as f64;
        w!(out, "<g><title>{}</title>", esc(full));
        swatch(&mut out, legend_x, y - 6.0, PALETTE[i % PALETTE.len()]);
        text(&mut out, label_x, y + 4.0, FS, "start", TEXT, "", label);
        text(
            &mut out,
            value_right,
            y + 4.0,
            FS,
            "end",
            TEXT,
            "",
            &values[i],
        );
        text(&mut out, pct_right, y + 4.0, FS, "end", MUTED, "", &pcts[i]);
        out.push_str("</g>");
    }
    out.push_str("</g></svg>");
    out
}

/// Vertical bars over ordered buckets (e.g. time from alert to ticket: "5分未満", "5〜15分", …).
///
/// Bars nearly touch, as a histogram's should, but keep a hairline gap because the buckets are
/// usually of unequal width and must not read as a continuous scale.
pub fn histogram(title: &str, buckets: &[(String, f64)], x_label: &str, y_label: &str) -> String {
    let categories = buckets.iter().map(|(l, _)| clean(l)).collect();
    let values = buckets.iter().map(|(_, v)| value(*v)).collect();
    vbars(&VBars {
        kind: "histogram",
        title,
        categories,
        series: vec![(String::new(), values)],
        x_label: clean(x_label),
        y_label: clean(y_label),
        legend: false,
        gap: 0.06,
        label_zero: true,
    })
}

// ---------------------------------------------------------------------------------------------
// Shared layout
// ---------------------------------------------------------------------------------------------

/// Fixed logical width: A4 portrait minus margins is ~180 mm, so 720 units keep 10–11 unit text
/// at a legible 2.5–2.8 mm in print, and `width="100%"` scales it to the page on screen.
const W: f64 = 720.0;
const NO_DATA_H: f64 = 200.0;
const FONT: &str =
    "\"Noto Sans CJK JP\", \"Noto Sans JP\", \"Hiragino Sans\", \"Yu Gothic\", Meiryo, sans-serif";
const TEXT: &str = "#222222";
const MUTED: &str = "#555555";
/// Greys dark enough to survive a laser printer's halftoning yet lighter than the data.
const AXIS: &str = "#767676";
const GRID: &str = "#d9d9d9";
const FRAME: &str = "#cccccc";
/// Assumed advance of one half-width character, in em. Noto Sans' Latin average is ~0.55 em and
/// a full-width glyph (2 units) is 1 em, so 0.6 overestimates both and truncation errs on the
/// side of never overflowing.
const EM_PER_UNIT: f64 = 0.6;

struct VBars<'a> {
    kind: &'static str,
    title: &'a str,
    categories: Vec<String>,
    series: Vec<(String, Vec<f64>)>,
    x_label: String,
    y_label: String,
    legend: bool,
    gap: f64,
    label_zero: bool,
}

fn vbars(v: &VBars) -> String {
    let flat: Vec<(String, f64)> = v
        .series
        .iter()
        .flat_map(|(name, vals)| vals.iter().map(move |x| (name.clone(), *x)))
        .collect();
    let id = chart_id(v.kind, v.title, &flat, &v.categories);
    let n = v.categories.len();
    let totals: Vec<f64> = (0..n)
        .map(|i| v.series.iter().map(|s| s.1[i]).sum())
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max);
    if n == 0 || v.series.is_empty() || !drawable(max) {
        return no_data(&id, v.title);
    }

    const TOP: f64 = 60.0;
    const PLOT_H: f64 = 220.0;
    const BOTTOM: f64 = TOP + PLOT_H;
    const FS: f64 = 11.0;
    const FS_TICK: f64 = 10.0;

    let integral = v.series.iter().all(|s| s.1.iter().all(|x| is_integral(*x)));
    let axis = nice_axis(max, integral);
    let tick_px = (0..=axis.ticks)
        .map(|i| px(display_width(&axis.label(i)), FS_TICK))
        .fold(0.0, f64::max);
    let left = 12.0 + if v.y_label.is_empty() { 0.0 } else { 22.0 } + tick_px + 8.0;
    let right = W - 16.0;
    let slot = (right - left) / n as f64;
    let bar_w = slot * (1.0 - v.gap);
    let y_of = |x: f64| round1(BOTTOM - x * PLOT_H / axis.max);

    // Category labels: truncate to the slot, and if even a short label cannot fit (many
    // categories with long names) print every k-th one instead of letting them collide.
    let fs_cat = if n > 16 { 10.0 } else { FS };
    let widest = v
        .categories
        .iter()
        .map(|c| display_width(c))
        .max()
        .unwrap_or(0);
    let fit_units = max_units(slot - 4.0, fs_cat);
    let (cat_units, every) = if widest <= fit_units || fit_units >= 6 {
        (fit_units, 1)
    } else {
        let units = widest.min(8);
        (
            units,
            (px(units, fs_cat) + 6.0).div_euclid(slot) as usize + 1,
        )
    };

    let mut cursor = BOTTOM + 18.0;
    let x_label_y = cursor + 20.0;
    if !v.x_label.is_empty() {
        cursor = x_label_y + 4.0;
    }
    let names: Vec<&str> = v.series.iter().map(|s| s.0.as_str()).collect();
    let rows = if v.legend {
        legend_rows(&names, left, right)
    } else {
        Vec::new()
    };
    let legend_y = cursor + 24.0;
    if !rows.is_empty() {
        cursor = legend_y + 20.0 * (rows.len() - 1) as f64 + 6.0;
    }
    let h = cursor + 14.0;

    let mut out = String::new();
    open(&mut out, &id, v.title, h);
    out.push_str("<g class=\"grid\">");
    for i in 0..=axis.ticks {
        let y = y_of(axis.max * i as f64 / axis.ticks as f64);
        line(&mut out, left, y, right, y, GRID);
        text(
            &mut out,
            left - 6.0,
            y + 3.5,
            FS_TICK,
            "end",
            MUTED,
            "",
            &axis.label(i),
        );
    }
    out.push_str("</g><g class=\"bars\">");
    for (i, (cat, total)) in v.categories.iter().zip(&totals).enumerate() {
        let x = left + slot * i as f64 + (slot - bar_w) / 2.0;
        let mut acc = 0.0;
        for (k, (name, vals)) in v.series.iter().enumerate() {
            let val = vals[i];
            if val <= 0.0 {
                continue;
            }
            let (y0, y1) = (y_of(acc), y_of(acc + val));
            acc += val;
            let tip = if name.is_empty() {
                format!("{cat}: {}", fmt_value(val))
            } else {
                format!("{cat} / {name}: {}", fmt_value(val))
            };
            bar(
                &mut out,
                x,
                y1,
                bar_w,
                y0 - y1,
                PALETTE[k % PALETTE.len()],
                &tip,
            );
        }
        let label = fmt_value(*total);
        if (*total > 0.0 || v.label_zero) && px(display_width(&label), FS_TICK) <= slot {
            text(
                &mut out,
                x + bar_w / 2.0,
                y_of(*total) - 4.0,
                FS_TICK,
                "middle",
                TEXT,
                "",
                &label,
            );
        }
    }
    out.push_str("</g>");
    line(&mut out, left, BOTTOM, right, BOTTOM, AXIS);
    out.push_str("<g class=\"categories\">");
    for (i, cat) in v.categories.iter().enumerate() {
        if i % every == 0 {
            let x = left + slot * (i as f64 + 0.5);
            let l = truncate(cat, cat_units);
            text(&mut out, x, BOTTOM + 15.0, fs_cat, "middle", TEXT, "", &l);
        }
    }
    out.push_str("</g>");
    if !v.x_label.is_empty() {
        let l = truncate(&v.x_label, max_units(right - left, FS));
        text(
            &mut out,
            (left + right) / 2.0,
            x_label_y,
            FS,
            "middle",
            MUTED,
            "",
            &l,
        );
    }
    if !v.y_label.is_empty() {
        let (x, y) = (18.0, TOP + PLOT_H / 2.0);
        let l = truncate(&v.y_label, max_units(PLOT_H, FS));
        let rot = format!(" transform=\"rotate(-90 {} {})\"", C(x), C(y));
        text(&mut out, x, y, FS, "middle", MUTED, &rot, &l);
    }
    legend(&mut out, &rows, legend_y, (left + right) / 2.0);
    out.push_str("</svg>");
    out
}

struct LegendItem {
    index: usize,
    full: String,
    shown: String,
    width: f64,
}

const LEGEND_GAP: f64 = 18.0;

fn legend_rows(names: &[&str], left: f64, right: f64) -> Vec<Vec<LegendItem>> {
    let mut rows: Vec<Vec<LegendItem>> = Vec::new();
    let mut row_w = 0.0;
    for (index, name) in names.iter().enumerate() {
        let shown = truncate(name, max_units((right - left) / 2.0, 11.0));
        let width = 17.0 + px(display_width(&shown), 11.0);
        let item = LegendItem {
            index,
            full: (*name).to_string(),
            shown,
            width,
        };
        match rows.last_mut() {
            Some(row) if row_w + LEGEND_GAP + width <= right - left => {
                row_w += LEGEND_GAP + width;
                row.push(item);
            }
            _ => {
                row_w = width;
                rows.push(vec![item]);
            }
        }
    }
    rows
}

fn legend(out: &mut String, rows: &[Vec<LegendItem>], y0: f64, centre: f64) {
    if rows.is_empty() {
        return;
    }
    out.push_str("<g class=\"legend\">");
    for (r, row) in rows.iter().enumerate() {
        let y = y0 + 20.0 * r as f64;
        let total: f64 =
            row.iter().map(|i| i.width).sum::<f64>() + LEGEND_GAP * (row.len() - 1) as f64;
        let mut x = centre - total / 2.0;
        for item in row {
            w!(out, "<g><title>{}</title>", esc(&item.full));
            swatch(out, x, y - 6.0, PALETTE[item.index % PALETTE.len()]);
            text(out, x + 17.0, y + 4.0, 11.0, "start", TEXT, "", &item.shown);
            out.push_str("</g>");
            x += item.width + LEGEND_GAP;
        }
    }
    out.push_str("</g>");
}

/// Opens the root element. Ids must be unique per HTML page (several charts share one document
/// and `aria-labelledby` resolves document-wide), yet deterministic, hence derived from the data.
fn open(out: &mut String, id: &str, title: &str, h: f64) {
    let title = clean(title);
    w!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100%\" viewBox=\"0 0 {} {}\" role=\"img\" aria-labelledby=\"{id}-t\" font-family='{FONT}'>",
        C(W),
        C(h)
    );
    w!(out, "<title id=\"{id}-t\">{}</title>", esc(&title));
    w!(
        out,
        "<rect class=\"frame\" x=\"0.5\" y=\"0.5\" width=\"{}\" height=\"{}\" rx=\"4\" fill=\"#ffffff\" stroke=\"{FRAME}\"/>",
        C(W - 1.0),
        C(h - 1.0)
    );
    let shown = truncate(&title, max_units(W - 32.0, 15.0));
    text(
        out,
        16.0,
        30.0,
        15.0,
        "start",
        TEXT,
        " font-weight=\"bold\"",
        &shown,
    );
}

fn no_data(id: &str, title: &str) -> String {
    let mut out = String::new();
    open(&mut out, id, title, NO_DATA_H);
    text(
        &mut out,
        W / 2.0,
        (44.0 + NO_DATA_H) / 2.0 + 5.0,
        14.0,
        "middle",
        MUTED,
        " class=\"no-data\"",
        "データなし",
    );
    out.push_str("</svg>");
    out
}

/// The single place caller text becomes markup: it always goes through [`esc`].
#[allow(clippy::too_many_arguments)]
fn text(
    out: &mut String,
    x: f64,
    y: f64,
    size: f64,
    anchor: &str,
    fill: &str,
    extra: &str,
    content: &str,
) {
    w!(
        out,
        "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"{anchor}\" fill=\"{fill}\"{extra}>{}</text>",
        C(x),
        C(y),
        C(size),
        esc(content)
    );
}

/// A data rectangle; the `<title>` child is the tooltip carrying the untruncated label.
fn bar(out: &mut String, x: f64, y: f64, w: f64, h: f64, fill: &str, tip: &str) {
    w!(
        out,
        "<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\"><title>{}</title></rect>",
        C(x),
        C(y),
        C(w),
        C(h),
        esc(tip)
    );
}

/// Legend swatches are outlined so the yellow one is still visible on white paper.
fn swatch(out: &mut String, x: f64, y: f64, fill: &str) {
    w!(
        out,
        "<rect class=\"swatch\" x=\"{}\" y=\"{}\" width=\"11.0\" height=\"11.0\" fill=\"{fill}\" stroke=\"#444444\" stroke-width=\"0.5\"/>",
        C(x),
        C(y)
    );
}

fn line(out: &mut String, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str) {
    w!(
        out,
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{stroke}\" stroke-width=\"1\"/>",
        C(x1),
        C(y1),
        C(x2),
        C(y2)
    );
}

// ---------------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------------

/// A coordinate printed with one decimal: enough for print resolution, and it keeps output
/// byte-stable (no `1.0000000000000002`, no `-0.0`).
struct C(f64);

impl fmt::Display for C {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", round1(self.0) + 0.0)
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Counts cannot be negative and NaN/∞ cannot be scaled; treating them as zero keeps one bad
/// upstream value from blanking the whole report.
fn value(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        0.0
    }
}

/// A scale needs a finite, positive maximum; anything else (all zeros, or sums so large they
/// overflow) is drawn as "no data" rather than as a division by zero.
fn drawable(max: f64) -> bool {
    max.is_finite() && max > 0.0
}

fn is_integral(v: f64) -> bool {
    (v - v.round()).abs() < 1e-9
}

/// Counts print as `1,234`; anything fractional (hours, averages) with one decimal.
fn fmt_value(v: f64) -> String {
    if is_integral(v) {
        fmt_num(v.round(), 0)
    } else {
        fmt_num(v, 1)
    }
}

fn fmt_num(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s.as_str(), None),
    };
    let mut out = String::with_capacity(s.len() + int.len() / 3 + 1);
    if v < 0.0 && s.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// A value axis from 0 with a 1/2/5×10ⁿ step, which people can read off without arithmetic.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axis {
    max: f64,
    step: f64,
    ticks: usize,
    decimals: usize,
}

impl Axis {
    fn label(&self, i: usize) -> String {
        fmt_num(self.step * i as f64, self.decimals)
    }
}

/// Aims at about five intervals. `integral` data never gets fractional steps: "0.5 alerts" as a
/// tick label would look like a bug to the customer.
fn nice_axis(max: f64, integral: bool) -> Axis {
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let mut step = mag
        * if norm <= 1.0 {
            1.0
        } else if norm <= 2.0 {
            2.0
        } else if norm <= 5.0 {
            5.0
        } else {
            10.0
        };
    if integral && step < 1.0 {
        step = 1.0;
    }
    let ticks = (max / step - 1e-9).ceil().max(1.0);
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10() - 1e-9).ceil() as usize
    };
    Axis {
        max: ticks * step,
        step,
        ticks: ticks as usize,
        decimals,
    }
}

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

/// Folds line breaks and tabs to single spaces and drops other control characters: a label is
/// one line, and a newline smuggled into an alert title must not break the layout.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if matches!(
            c,
            ' ' | '\t' | '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
        ) {
            space = !out.is_empty();
        } else if !is_stripped(c) {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

/// Estimated width in half-width units: East Asian wide/fullwidth characters count 2, combining
/// marks and zero-width characters 0, everything else 1. Good enough to budget space without
/// font metrics, which the browser owns.
fn display_width(s: &str) -> usize {
    s.chars().map(char_units).sum()
}

fn char_units(c: char) -> usize {
    match c as u32 {
        0x0300..=0x036F | 0x200B..=0x200D | 0x3099..=0x309A | 0xFE00..=0xFE0F => 0,
        0xE0100..=0xE01EF => 0,
        // CJK fonts draw the ellipsis full-width; budget for the worst case.
        0x2026 => 2,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xA960..=0xA97F
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE10..=0xFE19
        | 0xFE30..=0xFE6F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x2FFFD
        | 0x30000..=0x3FFFD => 2,
        _ => 1,
    }
}

fn px(units: usize, font_size: f64) -> f64 {
    units as f64 * font_size * EM_PER_UNIT
}

fn max_units(px: f64, font_size: f64) -> usize {
    (px.max(0.0) / (font_size * EM_PER_UNIT)).floor() as usize
}

/// Shortens `s` to at most `max` units including the trailing "…"; the caller keeps the full
/// text for the tooltip.
fn truncate(s: &str, max: usize) -> String {
    if display_width(s) <= max {
        return s.to_string();
    }
    let budget = max.saturating_sub(char_units('…'));
    let mut used = 0;
    let mut out = String::new();
    for c in s.chars() {
        let w = char_units(c);
        if used + w > budget {
            break;
        }
        used += w;
        out.push(c);
    }
    let mut out = out.trim_end().to_string();
    out.push('…');
    out
}

/// FNV-1a over everything drawn: stable across runs and platforms (unlike `DefaultHasher`), and
/// two different charts on one page get different ids.
fn chart_id(kind: &str, title: &str, items: &[(String, f64)], extra: &[String]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // Separator, so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    feed(kind.as_bytes());
    feed(title.as_bytes());
    for (label, v) in items {
        feed(label.as_bytes());
        feed(&v.to_bits().to_le_bytes());
    }
    for e in extra {
        feed(e.as_bytes());
    }
    format!("chart-{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> String {
        x.to_string()
    }

    fn items(v: &[(&str, f64)]) -> Vec<(String, f64)> {
        v.iter().map(|(l, x)| (s(l), *x)).collect()
    }

    fn days(n: usize) -> Vec<String> {
        (1..=n).map(|d| d.to_string()).collect()
    }

    fn sample_series() -> Vec<Series> {
        vec![
            Series {
                name: s("Defender for Endpoint"),
                values: (0..30).map(|d| f64::from((d * 7 % 11) as u8)).collect(),
            },
            Series {
                name: s("Defender for Office 365"),
                values: (0..30).map(|d| f64::from((d * 3 % 5) as u8)).collect(),
            },
            Series {
                name: s("Entra ID Protection"),
                values: (0..30).map(|d| f64::from((d % 4) as u8)).collect(),
            },
        ]
    }

    /// One of each chart with ordinary data.
    fn all_charts() -> Vec<(&'static str, String)> {
        let top = items(&[
            ("不審なサインイン", 1234.0),
            ("マルウェア検出", 321.0),
            ("Suspicious PowerShell", 12.0),
        ]);
        vec![
            (
                "日別アラート件数",
                stacked_bars("日別アラート件数", &days(30), &sample_series(), "件数"),
            ),
            ("上位アラート", hbar("上位アラート", &top, "件数")),
            (
                "重大度の内訳",
                donut(
                    "重大度の内訳",
                    &items(&[("高", 5.0), ("中", 12.0), ("低", 30.0), ("情報", 2.0)]),
                ),
            ),
            (
                "アラートからチケットまでの時間",
                histogram(
                    "アラートからチケットまでの時間",
                    &items(&[("5分未満", 40.0), ("5〜15分", 25.0), ("15分以上", 3.0)]),
                    "経過時間",
                    "件数",
                ),
            ),
        ]
    }

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed: {e}\n{svg}"))
    }

    fn titles(doc: &roxmltree::Document) -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name("title"))
            .map(|n| n.text().unwrap_or("").to_string())
            .collect()
    }

    fn texts(doc: &roxmltree::Document) -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or("").to_string())
            .collect()
    }

    fn bars<'a>(doc: &'a roxmltree::Document) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("class") == Some("bar"))
            .collect()
    }

    fn num(n: &roxmltree::Node, attr: &str) -> f64 {
        n.attribute(attr).unwrap().parse().unwrap()
    }

    #[test]
    fn every_chart_is_a_standalone_svg_with_accessible_title() {
        for (title, svg) in all_charts() {
            let doc = parse(&svg);
            let root = doc.root_element();
            assert_eq!(root.tag_name().name(), "svg");
            assert_eq!(
                root.tag_name().namespace(),
                Some("http://www.w3.org/2000/svg")
            );
            assert_eq!(root.attribute("width"), Some("100%"));
            assert_eq!(root.attribute("role"), Some("img"));
            assert!(root.attribute("viewBox").unwrap().starts_with("0 0 720.0 "));
            assert!(root
                .attribute("font-family")
                .unwrap()
                .starts_with("\"Noto Sans CJK JP\""));
            let label_id = root.attribute("aria-labelledby").unwrap();
            let t = root.first_element_child().unwrap();
            assert!(t.has_tag_name("title"));
            assert_eq!(t.attribute("id"), Some(label_id));
            assert_eq!(t.text(), Some(title));
            assert!(texts(&doc).iter().any(|x| x == title), "visible title");
            assert!(!svg.contains("NaN") && !svg.contains("inf"));
            assert!(!svg.contains("<script") && !svg.contains("href"));
        }
    }

    #[test]
    fn ids_differ_between_charts_on_one_page() {
        let ids: Vec<String> = all_charts()
            .iter()
            .map(|(_, svg)| {
                parse(svg)
                    .root_element()
                    .attribute("aria-labelledby")
                    .unwrap()
                    .to_string()
            })
            .collect();
        let mut dedup = ids.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), ids.len());
    }

    #[test]
    fn esc_escapes_markup_and_drops_what_xml_cannot_carry() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("&amp;"), "&amp;amp;");
        assert_eq!(esc("a\u{0}b\u{7}c\u{1b}[31m\u{9b}"), "abc[31m");
        assert_eq!(esc("line1\nline2\tx"), "line1\nline2\tx");
        assert_eq!(esc("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(esc("日本語ラベル"), "日本語ラベル");
    }

    #[test]
    fn hostile_labels_are_escaped_and_round_trip() {
        let hostile = [
            "<script>alert(1)</script>",
            "\"onload=\"x",
            "' onmouseover='y",
            "&amp;",
            "]]><svg onload=alert(2)>",
            "line1\nline2\u{7}end",
        ];
        let expected = [
            "<script>alert(1)</script>",
            "\"onload=\"x",
            "' onmouseover='y",
            "&amp;",
            "]]><svg onload=alert(2)>",
            "line1 line2end",
        ];
        let hitems: Vec<(String, f64)> = hostile
            .iter()
            .enumerate()
            .map(|(i, l)| (s(l), (i + 1) as f64))
            .collect();
        let series: Vec<Series> = hostile
            .iter()
            .map(|l| Series {
                name: s(l),
                values: vec![1.0, 2.0],
            })
            .collect();
        let cats: Vec<String> = hostile.iter().take(2).map(|l| s(l)).collect();
        let charts = [
            stacked_bars(hostile[0], &cats, &series, hostile[1]),
            hbar(hostile[0], &hitems, hostile[3]),
            donut(hostile[0], &hitems),
            histogram(hostile[0], &hitems, hostile[1], hostile[4]),
        ];
        for svg in &charts {
            assert!(!svg.contains("<script"), "{svg}");
            assert!(!svg.contains("<svg onload"), "{svg}");
            assert!(!svg.contains('\u{7}') && !svg.contains('\n'));
            let doc = parse(svg);
            assert_eq!(
                doc.descendants().filter(|n| n.has_tag_name("svg")).count(),
                1
            );
            for n in doc.descendants().filter(|n| n.is_element()) {
                assert!(!n.has_tag_name("script"));
                for a in n.attributes() {
                    assert!(!a.name().starts_with("on"), "attribute {}", a.name());
                }
            }
            let all_titles = titles(&doc).join("\n");
            for e in expected {
                assert!(all_titles.contains(e), "{e:?} missing in {all_titles:?}");
            }
        }
    }

    #[test]
    fn empty_or_zero_input_shows_no_data() {
        let zeros = items(&[("a", 0.0), ("b", 0.0)]);
        let bad = items(&[("a", -3.0), ("b", f64::NAN), ("c", f64::INFINITY)]);
        let zero_series = [Series {
            name: s("x"),
            values: vec![0.0, 0.0],
        }];
        let charts = [
            stacked_bars("t", &[], &[], "件数"),
            stacked_bars("t", &days(2), &[], "件数"),
            stacked_bars("t", &days(2), &zero_series, "件数"),
            hbar("t", &[], "件数"),
            hbar("t", &zeros, "件数"),
            hbar("t", &bad, "件数"),
            donut("t", &[]),
            donut("t", &zeros),
            donut("t", &bad),
            histogram("t", &[], "x", "y"),
            histogram("t", &zeros, "x", "y"),
        ];
        for svg in &charts {
            let doc = parse(svg);
            let msg: Vec<_> = doc
                .descendants()
                .filter(|n| n.attribute("class") == Some("no-data"))
                .collect();
            assert_eq!(msg.len(), 1, "{svg}");
            assert_eq!(msg[0].text(), Some("データなし"));
            assert_eq!(msg[0].attribute("text-anchor"), Some("middle"));
            assert_eq!(msg[0].attribute("x"), Some("360.0"));
            assert!(bars(&doc).is_empty());
            assert!(!svg.contains("NaN") && !svg.contains("inf"));
        }
    }

    #[test]
    fn negative_and_nan_values_count_as_zero() {
        let svg = hbar(
            "t",
            &items(&[("a", 10.0), ("b", -5.0), ("c", f64::NAN)]),
            "",
        );
        assert!(!svg.contains("NaN") && !svg.contains("\"-") && !svg.contains(">-"));
        let doc = parse(&svg);
        let widths: Vec<f64> = bars(&doc).iter().map(|b| num(b, "width")).collect();
        assert_eq!(widths.len(), 3);
        assert!(widths[0] > 0.0);
        assert_eq!(&widths[1..], &[0.0, 0.0]);
        // Value labels at the bar ends (plus the axis' own "0" tick).
        assert_eq!(texts(&doc).iter().filter(|t| *t == "0").count(), 3);
    }

    #[test]
    fn long_japanese_label_is_truncated_and_kept_whole_in_tooltip() {
        let long = "重大：管理者アカウントによる通常と異なる場所からの不審なサインインが複数回検出されました（要確認）";
        let svg = hbar(
            "上位アラート",
            &items(&[(long, 42.0), ("短い", 3.0)]),
            "件数",
        );
        let doc = parse(&svg);
        let shown = texts(&doc)
            .into_iter()
            .find(|t| t.ends_with('…'))
            .expect("truncated label");
        assert!(long.starts_with(shown.trim_end_matches('…')));
        assert!(display_width(&shown) <= max_units(240.0, 11.0));
        assert!(
            texts(&doc).iter().any(|t| t == "短い"),
            "short label intact"
        );
        assert!(titles(&doc).iter().any(|t| t == &format!("{long}: 42")));

        // Same rule in the other charts' legends and category axes.
        let svg = donut("t", &items(&[(long, 1.0), ("b", 1.0)]));
        let doc = parse(&svg);
        assert!(texts(&doc).iter().any(|t| t.ends_with('…')));
        assert!(titles(&doc).iter().any(|t| t == long));
        let svg = histogram("t", &items(&[(long, 1.0); 8]), "", "");
        let doc = parse(&svg);
        assert!(texts(&doc).iter().any(|t| t.ends_with('…')));
        assert!(titles(&doc).iter().any(|t| t.starts_with(long)));
    }

    #[test]
    fn truncation_counts_wide_characters_twice() {
        assert_eq!(display_width("abc"), 3);
        assert_eq!(display_width("日本"), 4);
        assert_eq!(display_width("ｱｲ"), 2); // half-width katakana
        assert_eq!(display_width("ＡＢ"), 4); // full-width Latin
        assert_eq!(truncate("日本語のラベル", 14), "日本語のラベル");
        assert_eq!(truncate("日本語のラベル", 9), "日本語…");
        assert_eq!(truncate("abcdefghij", 6), "abcd…");
        assert_eq!(truncate("ab cdefgh", 5), "ab…");
    }

    #[test]
    fn stacked_segments_are_proportional_and_sum_to_the_bar() {
        let series = [
            Series {
                name: s("A"),
                values: vec![3.0, 1.0],
            },
            Series {
                name: s("B"),
                values: vec![2.0], // shorter than the categories: missing = 0
            },
        ];
        let svg = stacked_bars("t", &[s("x"), s("y")], &series, "件数");
        let doc = parse(&svg);
        let b = bars(&doc);
        assert_eq!(b.len(), 3);
        // Axis 0..5 (step 1) over a 220-unit plot: 3 → 132, 2 → 88, together the full height.
        let (a, bb) = (&b[0], &b[1]);
        assert_eq!(a.attribute("height"), Some("132.0"));
        assert_eq!(bb.attribute("height"), Some("88.0"));
        assert_eq!(num(bb, "y") + num(bb, "height"), num(a, "y"), "B sits on A");
        assert_eq!(num(a, "height") + num(bb, "height"), 220.0);
        assert_eq!(b[2].attribute("height"), Some("44.0"));
        assert!(texts(&doc).iter().any(|t| t == "5"), "total on top");
        assert!(titles(&doc).iter().any(|t| t == "x / B: 2"));
    }

    #[test]
    fn series_take_palette_colours_in_order() {
        let series: Vec<Series> = (0..10)
            .map(|i| Series {
                name: format!("s{i}"),
                values: vec![1.0],
            })
            .collect();
        let svg = stacked_bars("t", &[s("1")], &series, "");
        let doc = parse(&svg);
        let fills: Vec<&str> = bars(&doc)
            .iter()
            .map(|b| b.attribute("fill").unwrap())
            .collect();
        let expected: Vec<&str> = (0..10).map(|i| PALETTE[i % 8]).collect();
        assert_eq!(fills, expected);
        let swatches: Vec<&str> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("swatch"))
            .map(|n| n.attribute("fill").unwrap())
            .collect();
        assert_eq!(swatches, expected, "legend matches bars");

        let svg = donut("t", &items(&[("a", 1.0), ("b", 0.0), ("c", 2.0)]));
        let doc = parse(&svg);
        let slices: Vec<&str> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("slice"))
            .map(|n| n.attribute("fill").unwrap())
            .collect();
        // A zero item draws no slice but keeps its colour, so the legend still matches.
        assert_eq!(slices, [PALETTE[0], PALETTE[2]]);
    }

    #[test]
    fn palette_is_okabe_ito_with_yellow_not_early() {
        let mut p = PALETTE.to_vec();
        p.sort_unstable();
        assert_eq!(
            p,
            [
                "#000000", "#0072B2", "#009E73", "#56B4E9", "#CC79A7", "#D55E00", "#E69F00",
                "#F0E442"
            ]
        );
        assert!(PALETTE.iter().position(|c| *c == "#F0E442").unwrap() >= 4);
    }

    #[test]
    fn donut_legend_has_value_and_percent_and_full_ring_is_drawable() {
        let svg = donut("t", &items(&[("高", 1500.0), ("低", 500.0)]));
        let doc = parse(&svg);
        let t = texts(&doc);
        for want in ["1,500", "75.0%", "500", "25.0%", "2,000", "合計"] {
            assert!(t.iter().any(|x| x == want), "{want} in {t:?}");
        }
        let svg = donut("t", &items(&[("only", 3.0), ("none", 0.0)]));
        let doc = parse(&svg);
        let d = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("slice"))
            .unwrap()
            .attribute("d")
            .unwrap();
        assert_eq!(d.matches('A').count(), 4, "two outer + two inner half arcs");
        assert!(texts(&doc).iter().any(|x| x == "100.0%"));
    }

    #[test]
    fn axis_ticks_are_nice_and_numbers_have_separators() {
        let a = nice_axis(5.0, true);
        assert_eq!((a.max, a.step, a.ticks), (5.0, 1.0, 5));
        let a = nice_axis(7.0, true);
        assert_eq!((a.max, a.step, a.ticks), (8.0, 2.0, 4));
        let a = nice_axis(1234.0, true);
        assert_eq!((a.max, a.step, a.ticks), (1500.0, 500.0, 3));
        assert_eq!(a.label(3), "1,500");
        let a = nice_axis(1.0, true);
        assert_eq!((a.max, a.step), (1.0, 1.0), "no 0.2-alert ticks");
        let a = nice_axis(0.9, false);
        assert_eq!((a.step, a.decimals), (0.2, 1));
        assert_eq!(a.label(5), "1.0");
        let a = nice_axis(0.07, false);
        assert_eq!(a.decimals, 2);

        assert_eq!(fmt_value(0.0), "0");
        assert_eq!(fmt_value(999.0), "999");
        assert_eq!(fmt_value(1234.0), "1,234");
        assert_eq!(fmt_value(1_234_567.0), "1,234,567");
        assert_eq!(fmt_value(12.25), "12.2");
        assert_eq!(fmt_value(1234.56), "1,234.6");

        let svg = hbar("t", &items(&[("a", 1234.0)]), "");
        assert!(svg.contains(">1,234</text>") && svg.contains(">1,500</text>"));
    }

    #[test]
    fn output_is_deterministic() {
        let a = all_charts();
        let b = all_charts();
        for ((_, x), (_, y)) in a.iter().zip(&b) {
            assert_eq!(x, y);
        }
        // Coordinates use one fixed decimal everywhere.
        let doc = parse(&a[0].1);
        for n in doc.descendants().filter(|n| n.has_tag_name("rect")) {
            for attr in ["x", "y", "width", "height"] {
                let v = n.attribute(attr).unwrap();
                assert_eq!(v.split_once('.').map(|(_, f)| f.len()), Some(1), "{v}");
            }
        }
    }

    #[test]
    fn many_categories_thin_out_labels_instead_of_overlapping() {
        let cats: Vec<String> = (0..40).map(|i| format!("カテゴリ{i}")).collect();
        let svg = histogram(
            "t",
            &cats.iter().map(|c| (c.clone(), 1.0)).collect::<Vec<_>>(),
            "",
            "",
        );
        let doc = parse(&svg);
        let shown: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some("categories"))
            .flat_map(|g| g.children().filter(|c| c.is_element()))
            .collect();
        assert!(shown.len() < 40 && shown.len() > 1, "{}", shown.len());
        let xs: Vec<f64> = shown.iter().map(|n| num(n, "x")).collect();
        let width = px(display_width(shown[0].text().unwrap()), 10.0);
        assert!(xs.windows(2).all(|w| w[1] - w[0] > width), "{xs:?}");
        // Thirty days of the month all fit.
        let svg = stacked_bars("t", &days(31), &sample_series(), "");
        let doc = parse(&svg);
        for d in days(31) {
            assert!(texts(&doc).contains(&d), "day {d}");
        }
    }
}
